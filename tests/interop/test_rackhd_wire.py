"""Wire compatibility with RackHD's messenger, checked with another AMQP client (pika).

pika plays an old RackHD peer on the same broker, the way on-core's messenger
behaved (see docs REFERENCE-rackhd.md, sections 1.4 and 1.5):

* exchanges are declared ``topic``, ``durable``, not passive (a declaration
  that differs from rackbus's would fail with PRECONDITION_FAILED);
* a request goes out with ``type``, ``content_type`` and ``reply_to`` naming a
  per-request exclusive queue, and **no** ``correlation_id``;
* a reply goes to the default exchange with routing key = ``reply_to``:
  ``Result {"value": ...}``, ``ErrorEvent``, or an envelope such as ``MacAddress``.

Blocking pika runs in a worker thread; every wait is bounded. These tests wait
on real I/O, so they run on the real clock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pika
import pika.spec
import pytest
import trio

from runtime import (
    Actor,
    Address,
    CallTimeout,
    IpAddress,
    MacAddress,
    Runtime,
    handler,
)
from runtime.amqp_bus import AmqpBus
from runtime.amqp_url import AmqpAddress

JSON = "application/json"
DHCP = "on.dhcp"
TASK = "on.task"
MAC = "aa:bb:cc:dd:ee:ff"
LEASE_INFO = {"ip": "10.1.2.3", "mac": MAC, "lease": {"seconds": 3600, "static": False}}


def _broker_url() -> str:
    """The broker rackbus uses (``RACKBUS_AMQP_URL`` or the local default), without options."""
    return str(AmqpAddress.resolve().url.with_query(None))


def _connect() -> pika.BlockingConnection:
    params = pika.URLParameters(_broker_url())
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    return pika.BlockingConnection(params)


def _declare_like_rackhd(channel: Any, exchange: str) -> None:
    channel.exchange_declare(exchange, exchange_type="topic", durable=True, passive=False)


def _nanoid() -> str:
    return uuid.uuid4().hex[:7]


class Reply:
    """A reply as the RackHD peer received it."""

    def __init__(self, properties: pika.spec.BasicProperties, body: bytes) -> None:
        self.properties = properties
        self.body = body

    @property
    def type(self) -> str | None:
        return self.properties.type

    def json(self) -> Any:
        return json.loads(self.body)


def rackhd_request(
    exchange: str,
    routing_key: str,
    data: object,
    *,
    type_name: str,
    timeout: float = 5.0,
) -> Reply:
    """``Messenger.request`` as RackHD did it: a per-request queue, no correlation id.

    Blocking; run it in a worker thread. Raises ``TimeoutError`` if no reply
    arrives within ``timeout`` seconds.
    """
    with _connect() as connection:
        channel = connection.channel()
        _declare_like_rackhd(channel, exchange)
        # not bound to any exchange: replies reach it through the default exchange
        queue = f"{exchange}:{routing_key}.request:{_nanoid()}"
        channel.queue_declare(queue, exclusive=True, auto_delete=True)
        replies: list[Reply] = []

        def on_reply(
            _channel: Any, _method: Any, properties: pika.spec.BasicProperties, body: bytes
        ) -> None:
            replies.append(Reply(properties, body))

        channel.basic_consume(queue, on_reply, auto_ack=True, exclusive=True)
        channel.basic_publish(
            exchange,
            routing_key,
            json.dumps(data).encode(),
            pika.BasicProperties(content_type=JSON, type=type_name, reply_to=queue),
        )
        deadline = time.monotonic() + timeout
        while not replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {exchange}/{routing_key} within {timeout} s")
            connection.process_data_events(time_limit=min(remaining, 0.1))
        return replies[0]  # the first reply settles the request


class Request:
    """A request as the RackHD peer received it."""

    def __init__(self, properties: pika.spec.BasicProperties, body: bytes) -> None:
        self.properties = properties
        self.body = body


def rackhd_answer_one(
    routing_key: str,
    value: object,
    *,
    ready: Callable[[], None],
    copy_correlation_id: bool,
    timeout: float = 10.0,
) -> Request:
    """Subscribe to ``on.task``/``routing_key`` as a RackHD service and answer one request.

    The subscription is RackHD's: an exclusive, auto-deleted queue of its own,
    bound to one key, consumed without acks. The reply is
    ``Result {"value": value}`` on the default exchange to ``reply_to``; it
    carries the request's ``correlation_id`` only if ``copy_correlation_id``
    (RackHD never set one). ``ready()`` is called once the queue is bound.
    Blocking; run it in a worker thread.
    """
    with _connect() as connection:
        channel = connection.channel()
        _declare_like_rackhd(channel, TASK)
        queue = f"{TASK}:{routing_key}:{_nanoid()}"
        channel.queue_declare(queue, exclusive=True, auto_delete=True)
        channel.queue_bind(queue, TASK, routing_key=routing_key)
        ready()
        for method, properties, body in channel.consume(
            queue, auto_ack=True, exclusive=True, inactivity_timeout=timeout
        ):
            if method is None:
                raise TimeoutError(f"no request on {TASK}/{routing_key} within {timeout} s")
            assert properties.reply_to, "a call must name its reply queue"
            channel.basic_publish(
                "",
                properties.reply_to,
                json.dumps({"value": value}).encode(),
                pika.BasicProperties(
                    content_type=JSON,
                    type="Result",
                    correlation_id=properties.correlation_id if copy_correlation_id else None,
                ),
            )
            channel.cancel()
            return Request(properties, body)
        raise AssertionError("unreachable: consume() ended")


# -- rackbus side ----------------------------------------------------------------------


class LeaseFailed(Exception):
    """What the failing handler raises."""


class Dhcp(Actor):
    """The old on-dhcp service's RPC surface, as a rackbus actor."""

    def __init__(self, seen: list[object]) -> None:
        self.seen = seen

    @handler(DHCP, "methods.lookupIpLease")
    async def lookup_ip_lease(self, ip: IpAddress) -> MacAddress:
        self.seen.append(ip)
        return MacAddress(MAC.upper())

    @handler(DHCP, "methods.failingLookup.{key}")
    async def failing_lookup(self, ip: IpAddress) -> MacAddress:
        self.seen.append(ip)
        raise LeaseFailed(f"no lease for {ip.value}")

    @handler(DHCP, "methods.leaseInfo.{key}")
    async def lease_info(self, ip: IpAddress) -> dict[str, Any]:
        self.seen.append(ip)
        return {**LEASE_INFO, "ip": ip.value}


@pytest.fixture
async def rt() -> AsyncIterator[Runtime]:
    bus = AmqpBus(name=f"interop-{uuid.uuid4().hex[:8]}", persistent=False)
    async with Runtime(bus, name="interop") as runtime:
        yield runtime


@pytest.fixture
def dhcp_key() -> str:
    return f"dhcp{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def dhcp(rt: Runtime, dhcp_key: str) -> list[object]:
    """Spawn the DHCP actor; returns the list of messages its handlers received."""
    seen: list[object] = []
    await rt.spawn(Dhcp, seen, key=dhcp_key)
    return seen


async def _request(exchange: str, routing_key: str, data: object, *, type_name: str) -> Reply:
    with trio.fail_after(15):
        return await trio.to_thread.run_sync(
            lambda: rackhd_request(exchange, routing_key, data, type_name=type_name)
        )


# -- a RackHD peer calls rackbus ---------------------------------------------------------


async def test_rackhd_peer_calls_lookup_ip_lease(rt: Runtime, dhcp: list[object]) -> None:
    reply = await _request(
        DHCP, "methods.lookupIpLease", {"value": "10.1.2.3"}, type_name="IpAddress"
    )
    assert reply.type == "MacAddress"
    assert reply.properties.content_type == JSON
    assert reply.properties.correlation_id is None  # none asked, none invented
    assert reply.json() == {"value": MAC}
    assert IpAddress("10.1.2.3") in dhcp


async def test_rackhd_peer_gets_an_error_event_when_the_handler_raises(
    rt: Runtime, dhcp: list[object], dhcp_key: str
) -> None:
    reply = await _request(
        DHCP, f"methods.failingLookup.{dhcp_key}", {"value": "10.9.9.9"}, type_name="IpAddress"
    )
    assert reply.type == "ErrorEvent"
    assert reply.properties.content_type == JSON
    body = reply.json()
    assert {"name", "message", "stack", "context"} <= body.keys()
    assert body["name"] == "LeaseFailed"
    assert body["message"] == "no lease for 10.9.9.9"
    assert isinstance(body["stack"], str)
    assert "LeaseFailed" in body["stack"]
    assert isinstance(body["context"], dict)
    assert body["context"].get("exchange") == DHCP
    assert body["context"].get("routingKey") == f"methods.failingLookup.{dhcp_key}"
    assert body["status"] == 500
    assert set(body) <= {"name", "message", "stack", "context", "status"}


async def test_rackhd_peer_gets_a_result_for_a_plain_value(
    rt: Runtime, dhcp: list[object], dhcp_key: str
) -> None:
    reply = await _request(
        DHCP, f"methods.leaseInfo.{dhcp_key}", {"value": "10.1.2.7"}, type_name="IpAddress"
    )
    assert reply.type == "Result"
    assert reply.properties.content_type == JSON
    assert reply.json() == {"value": {**LEASE_INFO, "ip": "10.1.2.7"}}


async def test_rackhd_peer_gets_an_error_event_for_an_invalid_payload(
    rt: Runtime, dhcp: list[object], dhcp_key: str
) -> None:
    # RackHD validated Serializable payloads and answered a bad request with an ErrorEvent
    reply = await _request(
        DHCP, f"methods.leaseInfo.{dhcp_key}", {"value": "not-an-ip"}, type_name="IpAddress"
    )
    assert reply.type == "ErrorEvent"
    body = reply.json()
    assert {"name", "message", "stack", "context"} <= body.keys()
    assert body["name"] == "DecodeError"
    assert body["status"] == 400
    assert dhcp == []


# -- rackbus calls a RackHD peer -------------------------------------------------------


async def _call_rackhd_peer(
    rt: Runtime, routing_key: str, *, copy_correlation_id: bool, timeout: float
) -> tuple[Any, BaseException | None, Request]:
    """Start the RackHD responder, call it from rackbus; returns (value, error, request)."""
    ready = trio.Event()
    request: list[Request] = []

    def serve() -> None:
        request.append(
            rackhd_answer_one(
                routing_key,
                "linux.ipxe",
                ready=lambda: trio.from_thread.run_sync(ready.set),
                copy_correlation_id=copy_correlation_id,
            )
        )

    value: Any = None
    error: BaseException | None = None
    with trio.fail_after(timeout + 20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, serve)
            await ready.wait()
            try:
                value = await rt.call(Address(TASK, routing_key), {}, timeout=timeout)
            except CallTimeout as exc:
                error = exc
    [received] = request
    return value, error, received


async def test_rackbus_calls_a_rackhd_peer_that_copies_the_correlation_id(rt: Runtime) -> None:
    routing_key = f"methods.requestProfile.node{uuid.uuid4().hex[:12]}"
    value, error, request = await _call_rackhd_peer(
        rt, routing_key, copy_correlation_id=True, timeout=5
    )
    assert error is None
    assert value == "linux.ipxe"
    # what rackbus put on the wire for a call with a plain (Object) payload
    assert request.properties.type == "Object"
    assert request.properties.content_type == JSON
    assert request.properties.reply_to
    assert request.properties.correlation_id
    assert json.loads(request.body) == {}


async def test_a_reply_without_correlation_id_is_answered_with_a_reply_queue_per_call() -> None:
    """RackHD's services answer without ``correlation_id``: a queue per call handles that."""
    bus = AmqpBus(
        name=f"legacy-{uuid.uuid4().hex[:8]}", persistent=False, reply_queue_per_call=True
    )
    async with Runtime(bus, name="legacy") as legacy:
        routing_key = f"methods.requestProfile.node{uuid.uuid4().hex[:12]}"
        value, error, request = await _call_rackhd_peer(
            legacy, routing_key, copy_correlation_id=False, timeout=5
        )
    assert error is None
    assert value == "linux.ipxe"
    assert request.properties.reply_to.startswith("amq.gen-")  # a queue of its own


async def test_without_a_queue_per_call_such_a_reply_is_counted_and_the_call_times_out(
    rt: Runtime,
) -> None:
    """With the default (shared direct reply-to), replies are matched by ``correlation_id``.

    A reply without one cannot be matched: it is counted in ``unmatched_replies``
    and logged, and the call ends in ``CallTimeout``. Buses that call RackHD's
    own services use ``reply_queue_per_call=True`` (the test above).
    """
    routing_key = f"methods.requestProfile.node{uuid.uuid4().hex[:12]}"
    start = trio.current_time()
    value, error, request = await _call_rackhd_peer(
        rt, routing_key, copy_correlation_id=False, timeout=2
    )
    assert request.properties.reply_to
    assert value is None
    assert isinstance(error, CallTimeout)
    assert trio.current_time() - start >= 2
    assert rt.bus.statistics().unmatched_replies == 1  # type: ignore[attr-defined]
