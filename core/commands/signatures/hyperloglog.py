"""Signatures of Redis 7.0's ``hyperloglog`` commands: arguments, versions, and a summary in
this project's words.  See :mod:`trioredis.commands.signatures`."""

from .arguments import doc, key, string

GROUP = 'hyperloglog'

SIGNATURES = (
    doc('pfadd', 'Adds elements to a HyperLogLog.', '2.8.9',
        key('key', 0),
        string('element', optional=True, multiple=True)),
    doc('pfcount',
        'Estimates the number of distinct elements seen by one or more HyperLogLogs.',
        '2.8.9',
        key('key', 0, multiple=True)),
    doc('pfdebug', 'Inspects the internals of a HyperLogLog (for tests).', '2.8.9',
        string('subcommand'),
        key('key', 0),
        doc_flags='syscmd'),
    doc('pfmerge', 'Combines HyperLogLogs into one.', '2.8.9',
        key('destkey', 0),
        key('sourcekey', 1, multiple=True)),
    doc('pfselftest', 'Runs the HyperLogLog self test.', '2.8.9',
        doc_flags='syscmd'),
)
