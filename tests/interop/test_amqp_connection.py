"""``AmqpConnection`` against the real broker: framing, confirms, returns, refusals, closing."""

from __future__ import annotations

import uuid

import pytest
import trio
from pamqp.commands import Basic

from runtime.amqp_connection import AmqpClosed, AmqpConnection, AmqpMessage, Outcome
from runtime.amqp_url import AmqpAddress


def address(**config: str) -> AmqpAddress:
    return AmqpAddress.from_config(config, env={}, heartbeat=5)


async def test_messages_larger_than_a_frame_and_empty_ones_arrive_intact(
    nursery: trio.Nursery,
) -> None:
    connection = await nursery.start(AmqpConnection(address()).run, 10.0)
    queue = await connection.queue_declare("", exclusive=True, auto_delete=True)
    received: list[AmqpMessage] = []
    arrived = trio.Event()

    def on_message(message: AmqpMessage) -> None:
        received.append(message)
        connection.ack(message.delivery_tag)
        if len(received) == 2:
            arrived.set()

    await connection.basic_consume(queue, on_message, no_ack=False)
    big = bytes(range(256)) * (3 * connection.frame_max // 256 + 7)
    outcomes: list[Outcome] = []
    for body in (big, b""):
        connection.publish(
            "",
            queue,
            body,
            Basic.Properties(content_type="application/octet-stream", message_type="Blob"),
            mandatory=True,
            on_confirm=outcomes.append,
        )
    with trio.fail_after(10):
        await arrived.wait()
    assert [message.body for message in received] == [big, b""]
    assert received[0].properties.message_type == "Blob"
    assert received[0].routing_key == queue
    assert outcomes == [Outcome.ACKED, Outcome.ACKED]
    await connection.aclose()
    assert connection.closed.is_set()


async def test_an_unroutable_mandatory_message_is_returned(nursery: trio.Nursery) -> None:
    connection = await nursery.start(AmqpConnection(address()).run, 10.0)
    outcomes: dict[str, Outcome] = {}
    done = trio.Event()

    def settle(name: str) -> object:
        def on_confirm(outcome: Outcome) -> None:
            outcomes[name] = outcome
            if len(outcomes) == 2:
                done.set()

        return on_confirm

    queue = await connection.queue_declare("", exclusive=True, auto_delete=True)
    for name, key in (("routed", queue), ("returned", f"nobody-{uuid.uuid4().hex}")):
        connection.publish(
            "", key, b"{}", Basic.Properties(), mandatory=True, on_confirm=settle(name)
        )  # type: ignore[arg-type]
    with trio.fail_after(10):
        await done.wait()
    assert outcomes == {"routed": Outcome.ACKED, "returned": Outcome.RETURNED}
    await connection.aclose()


async def test_a_refused_method_raises_and_ends_the_connection(nursery: trio.Nursery) -> None:
    connection = await nursery.start(AmqpConnection(address()).run, 10.0)
    with pytest.raises(AmqpClosed, match="ACCESS_REFUSED") as refused:
        await connection.exchange_declare("amq.rackbus-reserved")  # amq.* names are the broker's
    assert refused.value.code == 403
    with trio.fail_after(5):
        await connection.closed.wait()
    assert "ACCESS_REFUSED" in connection.error
    lost: list[Outcome] = []
    connection.publish("", "x", b"", Basic.Properties(), mandatory=False, on_confirm=lost.append)
    assert lost == [Outcome.LOST]
    with pytest.raises(AmqpClosed):
        await connection.queue_declare("")


async def test_wrong_credentials_fail_the_handshake(nursery: trio.Nursery) -> None:
    connection = AmqpConnection(address(password=f"wrong-{uuid.uuid4().hex}"))
    with pytest.raises(AmqpClosed, match="ACCESS_REFUSED"):
        await nursery.start(connection.run, 10.0)


async def test_abort_ends_a_connection_at_once(nursery: trio.Nursery) -> None:
    connection = await nursery.start(AmqpConnection(address()).run, 10.0)
    assert connection.heartbeat == 5
    connection.abort()
    with trio.fail_after(5):
        await connection.closed.wait()
    assert connection.error == "connection aborted"


@pytest.mark.parametrize(
    ("exchange", "key", "headers"),
    [("x" * 300, "k", {}), ("", "k" * 300, {}), ("", "k", {"h": object()})],
)
async def test_a_publish_amqp_cannot_encode_raises_and_later_confirms_still_match(
    nursery: trio.Nursery, exchange: str, key: str, headers: dict[str, object]
) -> None:
    connection = await nursery.start(AmqpConnection(address()).run, 10.0)
    try:
        queue = await connection.queue_declare("", exclusive=True, auto_delete=True)
        outcomes: list[Outcome] = []
        confirmed = trio.Event()

        def on_confirm(outcome: Outcome) -> None:
            outcomes.append(outcome)
            confirmed.set()

        with pytest.raises((TypeError, ValueError)):
            connection.publish(
                exchange,
                key,
                b"{}",
                Basic.Properties(headers=headers),  # type: ignore[arg-type]
                mandatory=True,
                on_confirm=outcomes.append,
            )
        properties = Basic.Properties()
        connection.publish("", queue, b"{}", properties, mandatory=True, on_confirm=on_confirm)
        with trio.fail_after(10):
            await confirmed.wait()  # the broker's first confirm is this publish's
        assert outcomes == [Outcome.ACKED]
    finally:
        connection.abort()  # the connection is shielded: a failed test must end it
