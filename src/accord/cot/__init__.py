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
- *hub*: the fan-out that delivers events to sessions. *link*: one federation peer.
- *group*: a server-side channel with IN/OUT direction (not ``__group``, which is team colour).

Errors: a peer's bad event surfaces as :class:`~accord.cot.errors.MalformedEvent` (skip it,
count it, keep the stream); lost framing surfaces as a :class:`~accord.cot.connection.Closed`
value (close that stream only). Nothing else may escape the decoders.
"""
