"""Client and server engines joined by an in-memory link that drops, duplicates and reorders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.tftp import (
    Ack,
    BytesSource,
    ClientTransfer,
    ContentError,
    Data,
    Error,
    ErrorCode,
    LocalProtocolError,
    ReadRequest,
    ServerTransfer,
    TransferState,
    WriteRequest,
    decode,
    encode,
)
from protocols.tftp.strategies import transfer_parameters

from .link import Sink, run_read


@given(st.binary(max_size=3000), transfer_parameters())
def test_clean_link_delivers_exactly(data: bytes, params: dict[str, int]) -> None:
    client, server, sink, _ = run_read(data, **params)
    assert client.state is TransferState.SUCCEEDED
    assert server is not None and server.state is TransferState.SUCCEEDED
    assert sink.getvalue() == data


@settings(max_examples=150)
@given(
    st.binary(max_size=2000),
    transfer_parameters(),
    st.integers(0, 2**32),
    st.floats(0, 0.4),
    st.floats(0, 0.4),
    st.floats(0, 0.5),
)
def test_lossy_link_delivers_exactly_or_fails_in_time(
    data: bytes, params: dict[str, int], seed: int, drop: float, dup: float, jitter: float
) -> None:
    retries, timeout = 5, 1.0
    client, server, sink, end = run_read(
        data,
        **params,
        seed=seed,
        drop=drop,
        duplicate=dup,
        jitter=jitter,
        retries=retries,
        timeout=timeout,
    )
    assert client.finished
    if client.state is TransferState.SUCCEEDED:
        assert sink.getvalue() == data
    else:
        assert client.error is not None and client.error[1]
        assert data.startswith(sink.getvalue())
    # each side gives up after (retries + 1) timeouts without progress
    assert end < 10_000
    if server is not None:
        assert server.finished or server.state is TransferState.TRANSFERRING
        if server.state is TransferState.SUCCEEDED:
            assert client.state is TransferState.SUCCEEDED


def test_failure_comes_before_the_deadline() -> None:
    # nothing ever arrives: the client fails after retries + 1 timeouts, not later
    client, server, _, end = run_read(b"x" * 100, blksize=None, windowsize=None, drop=1.0)
    assert server is None
    assert client.state is TransferState.FAILED
    assert client.error == (0, "no answer from the server")
    assert end <= 6 * 1.0 + 1e-9


def _data_packets(out: list[bytes | memoryview]) -> list[int]:
    blocks = []
    for datagram in out:
        packet = decode(datagram)
        if isinstance(packet, Data):
            blocks.append(packet.block)
    return blocks


@pytest.mark.parametrize("windowsize", [1, 4])
def test_duplicate_acks_send_nothing(windowsize: int) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes, 20 blocks of 512
    request = ReadRequest("f", "octet", {"windowsize": str(windowsize)} if windowsize > 1 else {})
    server = ServerTransfer(request, source=BytesSource(data), size=len(data))
    now = 0.0
    out, _ = server.start(now)
    if windowsize > 1:
        out, _ = server.receive(encode(Ack(0)), now)
    sent = _data_packets(out)
    while server.state is TransferState.TRANSFERRING:
        ack = encode(Ack(sent[-1]))
        out, _ = server.receive(ack, now)
        sent += _data_packets(out)
        for _ in range(3):  # the network duplicated this ACK
            again, _ = server.receive(ack, now)
            assert again == []
        now += 0.001
    assert server.state is TransferState.SUCCEEDED
    assert len(sent) == len(data) // 512 + 1  # every block exactly once


def test_stale_acks_are_ignored() -> None:
    data = b"y" * 5000
    server = ServerTransfer(ReadRequest("f"), source=BytesSource(data), size=len(data))
    server.start(0.0)
    server.receive(encode(Ack(1)), 0.0)
    server.receive(encode(Ack(2)), 0.0)
    for block in (0, 1, 2, 7, 9000):
        assert server.receive(encode(Ack(block)), 0.0)[0] == []


def test_timeout_resends_then_fails() -> None:
    server = ServerTransfer(ReadRequest("f"), source=BytesSource(b"z" * 600), size=600, retries=2)
    out, deadline = server.start(0.0)
    assert _data_packets(out) == [1]
    for _ in range(2):
        assert deadline is not None
        out, deadline = server.timeout(deadline)
        assert _data_packets(out) == [1]
    assert deadline is not None
    out, deadline = server.timeout(deadline)
    assert out == [] and deadline is None
    assert server.state is TransferState.FAILED


def test_block_numbers_roll_over_to_zero() -> None:
    blksize = 8
    data = bytes(i % 251 for i in range(blksize * 70_000 + 3))
    client, _, sink, _ = run_read(data, blksize=blksize, windowsize=4)
    assert client.state is TransferState.SUCCEEDED
    assert sink.getvalue() == data


def test_rollover_wire_numbers() -> None:
    request = ReadRequest("f", "octet", {"blksize": "8"})
    data = b"\1" * (8 * 65537)
    server = ServerTransfer(request, source=BytesSource(data), size=len(data))
    server.start(0.0)
    out, _ = server.receive(encode(Ack(0)), 0.0)
    seen = []
    for _ in range(65_537):
        (block,) = _data_packets(out)
        seen.append(block)
        out, _ = server.receive(encode(Ack(block)), 0.0)
    assert seen[65_534:] == [65_535, 0, 1]
    assert server.state is TransferState.TRANSFERRING  # the final empty block is still due
    (block,) = _data_packets(out)
    assert block == 2
    server.receive(encode(Ack(2)), 0.0)
    assert server.state is TransferState.SUCCEEDED


def test_options_negotiated() -> None:
    request = ReadRequest(
        "f", "octet", {"BLKSIZE": "1468", "tsize": "0", "timeout": "3", "windowsize": "16"}
    )
    server = ServerTransfer(request, source=BytesSource(b"a" * 10), size=10)
    out, deadline = server.start(0.0)
    oack = decode(out[0])
    assert oack == decode(b"\0\6blksize\x001468\0timeout\x003\0tsize\x0010\0windowsize\x0016\0")
    assert deadline == 3.0


def test_a_timeout_above_the_servers_maximum_is_declined() -> None:
    """A client's 255 s (times the retries) would hold a session for minutes: past
    ``max_timeout`` the option is left out of the OACK and the server's own timeout applies."""
    request = ReadRequest("f", "octet", {"timeout": "255", "blksize": "1024"})
    server = ServerTransfer(request, source=BytesSource(b"a" * 10), size=10)
    out, deadline = server.start(0.0)
    assert decode(out[0]) == decode(b"\0\6blksize\x001024\0")
    assert server.options.timeout == 1.0 and deadline == 1.0


def test_window_capped_by_bytes() -> None:
    request = ReadRequest("f", "octet", {"blksize": "65464", "windowsize": "16"})
    server = ServerTransfer(request, source=BytesSource(b""), size=0)
    assert server.options.windowsize == 2


def test_netascii_refused() -> None:
    with pytest.raises(ContentError) as info:
        ServerTransfer(ReadRequest("f", "netascii"), source=BytesSource(b""), size=0)
    assert info.value.code is ErrorCode.ILLEGAL_OPERATION


def test_engine_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        ServerTransfer(ReadRequest("f"))
    with pytest.raises(LocalProtocolError):
        ClientTransfer("f")


def test_client_refuses_bad_oack() -> None:
    client = ClientTransfer("f", sink=Sink(), options={"blksize": "512"})
    client.start(0.0)
    out, deadline = client.receive(b"\0\6blksize\x009000\0", 0.0)
    assert deadline is None and client.state is TransferState.FAILED
    packet = decode(out[0])
    assert isinstance(packet, Error) and packet.code == ErrorCode.OPTION_NEGOTIATION_FAILED


def test_write_through_server_engine() -> None:
    data = b"w" * 1500
    sink = Sink()
    server = ServerTransfer(WriteRequest("up", "octet", {"blksize": "512"}), sink=sink)
    client = ClientTransfer("up", source=BytesSource(data), options={"blksize": "512"})
    out, _ = client.start(0.0)
    assert isinstance(decode(out[0]), WriteRequest)
    to_client, _ = server.start(0.0)
    while not (client.finished and server.finished):
        to_server: list[bytes | memoryview] = []
        for datagram in to_client:
            got, _ = client.receive(bytes(datagram), 0.0)
            to_server += [bytes(d) for d in got]
        to_client = []
        for datagram in to_server:
            got, _ = server.receive(datagram, 0.0)
            to_client += [bytes(d) for d in got]
        if not to_client and not to_server:
            break
    assert server.state is TransferState.SUCCEEDED
    assert client.state is TransferState.SUCCEEDED
    assert sink.getvalue() == data
