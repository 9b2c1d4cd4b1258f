"""Signatures of Redis 7.0's ``hyperloglog`` commands: arguments, versions, and a summary in
this project's words.  See :mod:`trioredis.commands.signatures`."""

from .arguments import at, doc, key, keyspec, span, string

GROUP = 'hyperloglog'

SIGNATURES = (
    doc('pfadd', 'Adds elements to a HyperLogLog.', '2.8.9',
        key('key', 0),
        string('element', optional=True, multiple=True),
        keys=(keyspec('RW insert', at(1), span(0)),)),
    doc('pfcount',
        'Estimates the number of distinct elements seen by one or more HyperLogLogs.',
        '2.8.9',
        key('key', 0, multiple=True),
        keys=(keyspec('RW access', at(1), span(-1),
                "May rewrite the HyperLogLog's representation (and propagate it), hence RW."),)),
    doc('pfdebug', 'Inspects the internals of a HyperLogLog (for tests).', '2.8.9',
        string('subcommand'),
        key('key', 0),
        doc_flags='syscmd',
        keys=(keyspec('RW access', at(2), span(0)),)),
    doc('pfmerge', 'Combines HyperLogLogs into one.', '2.8.9',
        key('destkey', 0),
        key('sourcekey', 1, multiple=True),
        keys=(keyspec('RW access insert', at(1), span(0)),
              keyspec('RO access', at(2), span(-1)))),
    doc('pfselftest', 'Runs the HyperLogLog self test.', '2.8.9',
        doc_flags='syscmd'),
)
