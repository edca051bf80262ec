"""How a connection that breaks before the AMQP handshake is done is reported: as an
``OSError`` (so the bus retries it like a refused connection) that names its cause."""

from __future__ import annotations

import socket
import ssl
import struct

import pytest
import trio

from runtime.amqp_connection import AmqpConnection, stream_failure
from runtime.amqp_url import AmqpAddress


def broken_by(cause: BaseException) -> trio.BrokenResourceError:
    try:
        raise trio.BrokenResourceError from cause
    except trio.BrokenResourceError as exc:
        return exc


def test_a_certificate_verify_failure_is_named() -> None:
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify")
    cause.verify_message = "unable to get local issuer certificate"
    reason = stream_failure(broken_by(cause))
    assert reason == "TLS: certificate verify failed: unable to get local issuer certificate"


def test_a_tls_alert_is_named_without_the_library_noise() -> None:
    cause = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate "
                            "required (_ssl.c:2580)")  # fmt: skip
    assert stream_failure(broken_by(cause)) == "TLS: tlsv13 alert certificate required"


def test_a_bare_break_is_named_by_its_cause_or_its_type() -> None:
    assert stream_failure(broken_by(ConnectionResetError(104, "reset"))) == "[Errno 104] reset"
    assert stream_failure(trio.BrokenResourceError()) == "BrokenResourceError"
    assert stream_failure(trio.BrokenResourceError("socket broken")) == "socket broken"


@pytest.mark.parametrize("scheme", ["amqp", "amqps"])
async def test_a_peer_that_resets_during_the_handshake_raises_connection_error(
    scheme: str,
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    listener.setblocking(False)

    async def reset_the_first_connection() -> None:
        await trio.lowlevel.wait_readable(listener)
        conn, _ = listener.accept()
        with conn:
            await trio.lowlevel.wait_readable(conn)  # the AMQP header, or the TLS ClientHello
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # closed with unread data and no linger: an RST, as from a broker that refuses the
        # connection once it has read the first bytes

    address = AmqpAddress.from_config({}, url=f"{scheme}://u:secret@127.0.0.1:{port}/", env={})
    with listener:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reset_the_first_connection)
            with pytest.raises(ConnectionError) as failed:
                await AmqpConnection(address).run(5.0)
    assert "secret" not in str(failed.value)
    if scheme == "amqps":
        assert "may not accept the client certificate" not in str(failed.value)
