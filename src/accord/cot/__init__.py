"""The Cursor-on-Target wire protocol, sans-IO.

Vocabulary (one word, one meaning, everywhere in Accord):

- *event*: one CoT event (:class:`~accord.cot.model.CotEvent`), nothing else.
- *frame*: the bytes of one event on the wire, in one *wire format*: XML (TAK protocol
  version 0) or PROTOBUF (version 1, ``0xBF`` + varint length + ``TakMessage``).
- *detail*: the children of ``<detail>``, kept as XML text plus the few facts routing reads
  (:class:`~accord.cot.model.Detail`).
- *splitter*: an incremental cutter of a byte stream into frames (:mod:`accord.cot.framing`).
- *connection*: the protocol state of one stream, with no I/O
  (:class:`~accord.cot.connection.StreamConnection`): bytes in, events out, events in, bytes out.
- *negotiation*: the ``t-x-takp-v/q/r`` exchange that moves a stream from XML to protobuf.
- *session*: one connected client (a server-side object, :mod:`accord.server`).
- *hub*: the fan-out that delivers events to sessions and links (:mod:`accord.server.hub`).
- *group*: a server-side channel with IN/OUT direction (not ``__group``, which is team colour).
- *party*: anything the hub hears from or delivers to, as the hub knows it
  (:class:`~accord.domain.contacts.Party`): a session, a UDP sender (which cannot be sent
  back to), or a partner link (which relays others' events). It carries the group
  membership, and the uid and callsign once its first SA names them.
- *roster*: the parties the hub knows and their indexes by uid and callsign, with the latest
  SA of each, which newcomers are given (:class:`~accord.domain.contacts.Roster`).
- *sink*: what the hub writes events to (:class:`~accord.domain.ports.Sink`): a session's
  stream, or a partner link, which encodes its own frames.
- *partner*: another organisation's server we federate with, pinned by the SHA-256 of its CA
  certificate (:class:`~accord.domain.partners.Partner`).
- *link*: one live federation connection to a partner (gRPC over mutual TLS,
  :mod:`accord.federation`): a party and a sink on our side, federation frames on theirs.
- *gate*: the release decision on a link: a partner's *policy* (its release rules, or
  ``share_all``, else nothing) applied to each event going out and coming in: released
  (perhaps a transformed copy), withheld, or delayed (:class:`~accord.domain.ports.ReleaseGate`).
- *ledger*: the append-only, verifiable log of what was released to and received from each
  partner: a Merkle log per partner and direction, signed checkpoints that the partner
  cosigns, and receipts (:mod:`accord.ledger`, pure).
- *journal*: what feeds the ledger from the links: every decision and frame, appended on the
  hot path and stored in batches (:class:`~accord.domain.ports.LinkJournal`).
- *outbox*: a link's store-and-forward queue: released frames kept, by sequence number, until
  the partner acknowledges them, and resent after a reconnect.
- *bridge*: a translator from non-TAK telemetry (MAVLink, ...) to events, with no I/O
  (:mod:`accord.bridges`); a *feed* is the adapter that moves its bytes (:mod:`accord.feeds`).

Errors: a peer's bad event surfaces as :class:`~accord.cot.errors.MalformedEvent` (skip it,
count it, keep the stream); lost framing surfaces as a :class:`~accord.cot.connection.Closed`
value (close that stream only). Nothing else may escape the decoders.
"""
