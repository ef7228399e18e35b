"""The sharing ledger: what was released to a partner and received from it, verifiably.

Per partner and direction, an append-only RFC 9162 Merkle log of entries
(:mod:`~accord.ledger.entry`): ``out`` holds every release decision (released items by the
SHA-256 of the exact bytes sent, withheld or dropped items by a keyed hash only), ``in`` is the
mirror of what the partner sent. Checkpoints are C2SP signed notes (Ed25519); the partner
cosigns them (``cosignature/v1``) and returns a signed receipt per item. :mod:`verify` replays
the stored log and names the first inconsistency. Pure: no I/O, no clock, no event loop.
"""
