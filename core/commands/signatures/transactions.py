"""Signatures of Redis 7.0's ``transactions`` commands: arguments, versions, and a summary in
this project's words.  See :mod:`trioredis.commands.signatures`."""

from .arguments import at, doc, key, keyspec, span

GROUP = 'transactions'

SIGNATURES = (
    doc('discard', 'Drops the commands queued since MULTI and leaves the transaction.', '2.0.0'),
    doc('exec', 'Runs the commands queued since MULTI, all together.', '1.2.0'),
    doc('multi', 'Starts a transaction: the following commands are queued until EXEC.', '1.2.0'),
    doc('unwatch', 'Stops watching every key this connection watches.', '2.2.0'),
    doc('watch', 'Watches keys: a later EXEC fails when any of them changes first.', '2.2.0',
        key('key', 0, multiple=True),
        keys=(keyspec('RO', at(1), span(-1)),)),
)
