"""DNS messages (RFC 1035), as much as the embedded server needs: read a query's header and
question, write an answer. Pure; anything malformed is a ``ValueError``, never another error."""

from __future__ import annotations

import struct

from rootless.base.valuetype import KeywordRecord, record

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 41, 255
IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
HEADER = struct.Struct("!HHHHHH")
MAX_UDP = 512  # without EDNS
_MAX_POINTERS = 32  # more compression pointers than a 512-byte name needs: a loop


@record
class Query(KeywordRecord):
    """A query's header and first question (the name lower-cased, without the final dot)."""
    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes  # the question as it was sent (copied into the answer)
    udp_size: int = MAX_UDP  # the client's EDNS buffer size


def opcode(query: Query) -> int:
    return (query.flags >> 11) & 0xF


def read_name(data: bytes, pos: int) -> tuple[str, int]:
    """The name at ``pos`` (following compression pointers) and the position after it."""
    labels: list[str] = []
    end = -1
    hops = 0
    total = 0
    while True:
        if pos >= len(data):
            raise ValueError("name runs past the message")
        n = data[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise ValueError("truncated compression pointer")
            hops += 1
            if hops > _MAX_POINTERS:
                raise ValueError("compression loop")
            if end < 0:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | data[pos + 1]
            continue
        if n & 0xC0:
            raise ValueError("unknown label type")
        pos += 1
        if n == 0:
            break
        if pos + n > len(data):
            raise ValueError("label runs past the message")
        total += n + 1
        if total > 254:
            raise ValueError("name too long")
        labels.append(data[pos:pos + n].decode("latin-1"))
        pos += n
    return ".".join(labels), (end if end >= 0 else pos)


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        raw = label.encode("latin-1", "replace")
        if not raw or len(raw) > 63:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_query(data: bytes) -> Query:
    """The header and first question of ``data``; ``ValueError`` if it is not a readable query."""
    if len(data) < HEADER.size:
        raise ValueError("shorter than a header")
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if flags & QR:
        raise ValueError("a response, not a query")
    if qd < 1:
        raise ValueError("no question")
    name, pos = read_name(data, HEADER.size)
    if pos + 4 > len(data):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    question = data[HEADER.size:pos + 4]
    udp_size = MAX_UDP
    if qd == 1 and an == 0 and ns == 0 and ar:  # an EDNS OPT record says the client's buffer size
        try:
            _name, p = read_name(data, pos + 4)
            rtype, size = struct.unpack_from("!HH", data, p)
            if rtype == OPT:
                udp_size = max(MAX_UDP, size)
        except (ValueError, struct.error):
            pass
    return Query(id=qid, flags=flags, name=name.lower(), qtype=qtype, qclass=qclass, question=question,
                 udp_size=udp_size)


def answer(query: Query, rcode: int = NOERROR, records: tuple = (), ttl: int = 600) -> bytes:
    """The response to ``query``: ``records`` are (type, rdata) pairs for its name (the name is
    written once, as a pointer to the question's)."""
    flags = QR | (query.flags & (0x7800 | RD)) | RA | (rcode & 0xF)
    out = HEADER.pack(query.id, flags, 1, len(records), 0, 0) + query.question
    for rtype, rdata in records:
        out += struct.pack("!HHHIH", 0xC000 | HEADER.size, rtype, IN, ttl, len(rdata)) + rdata
    return out


def error(data: bytes, rcode: int) -> bytes | None:
    """A bare response with ``rcode`` to a message whose header at least is readable (its
    question copied when it can be read); None if there is not even a header."""
    if len(data) < HEADER.size:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    if flags & QR:
        return None  # never answer a response
    try:
        _name, pos = read_name(data, HEADER.size)
        question = data[HEADER.size:pos + 4] if pos + 4 <= len(data) else b""
    except ValueError:
        question = b""
    return HEADER.pack(qid, QR | (flags & (0x7800 | RD)) | RA | (rcode & 0xF), 1 if question else 0,
                       0, 0, 0) + question


def truncate(response: bytes, size: int) -> bytes:
    """A UDP response that fits ``size``: the header with TC set and the question only."""
    if len(response) <= size:
        return response
    qid, flags, qd, _an, _ns, _ar = HEADER.unpack_from(response)
    try:
        _name, pos = read_name(response, HEADER.size)
        question = response[HEADER.size:pos + 4] if qd else b""
    except ValueError:
        question = b""
    return HEADER.pack(qid, flags | TC, 1 if question else 0, 0, 0, 0) + question


def response_id(data: bytes) -> int | None:
    """The id of a response (None if ``data`` is not one)."""
    if len(data) < HEADER.size:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    return qid if flags & QR else None
