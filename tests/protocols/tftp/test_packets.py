"""The codec: round trips, and arbitrary bytes never raise anything but MalformedPacket."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.tftp import (
    MAX_DATAGRAM,
    Ack,
    Data,
    Error,
    LocalProtocolError,
    MalformedPacket,
    OptionAck,
    Packet,
    ProtocolError,
    ReadRequest,
    RemoteProtocolError,
    decode,
    encode,
)
from protocols.tftp.strategies import packets


@given(packets())
def test_round_trip(packet: Packet) -> None:
    assert decode(encode(packet)) == packet


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_malformed(datagram: bytes) -> None:
    try:
        packet = decode(datagram)
    except MalformedPacket:
        return
    assert decode(encode(packet)) == packet


@given(st.sampled_from([b"\0\1", b"\0\2", b"\0\6"]), st.binary(max_size=600))
def test_request_like_bytes_only_raise_malformed(opcode: bytes, body: bytes) -> None:
    try:
        decode(opcode + body)
    except MalformedPacket:
        pass


def test_error_hierarchy() -> None:
    assert issubclass(MalformedPacket, RemoteProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)


def test_known_encodings() -> None:
    assert encode(ReadRequest("a", "octet", {"blksize": "1468"})) == (
        b"\0\1a\0octet\0blksize\x001468\0"
    )
    assert encode(Ack(65535)) == b"\0\4\xff\xff"
    assert encode(Data(0, b"xy")) == b"\0\3\0\0xy"
    assert encode(Error(1, "nope")) == b"\0\5\0\1nope\0"
    assert encode(OptionAck({"tsize": "5"})) == b"\0\6tsize\x005\0"


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\0",
        b"\0\7",  # unknown opcode
        b"\0\4\0",  # short ACK
        b"\0\4\0\0\0",  # long ACK
        b"\0\1name",  # no NUL
        b"\0\1\0octet\0",  # empty filename
        b"\0\1name\0octet\0blksize\0",  # option without value
        b"\0\1name\0oct\xffet\0",  # mode not ASCII
        b"\0\1name\0octet\0a\0" + b"1\0" + b"A\x001\0",  # the same option twice
        b"\0\1" + b"n" * 600 + b"\0octet\0",  # overlong filename
        b"\0\1n\0octet\0" + b"".join(b"o%d\x001\0" % i for i in range(17)),  # too many options
        b"\0\3\0\1" + b"x" * MAX_DATAGRAM,  # oversized DATA
    ],
)
def test_malformed(datagram: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode(datagram)


@pytest.mark.parametrize(
    "packet",
    [
        Ack(65536),
        Ack(-1),
        Data(1, b"x" * 65465),
        ReadRequest("", "octet"),
        ReadRequest("a\0b", "octet"),
        ReadRequest("a", "octet", {"é": "1"}),
        Error(70000, ""),
    ],
)
def test_unencodable(packet: Packet) -> None:
    with pytest.raises(LocalProtocolError):
        encode(packet)
