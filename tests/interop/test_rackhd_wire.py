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

import attrs
import pika
import pika.spec
import pytest
import trio

from actors.convention import KeyDef, Kind
from actors.exchanges import ALL as ALL_EXCHANGES
from actors.exchanges import configuration, events, http, scheduler, task
from actors.exchanges import dhcp as dhcp_ex
from actors.exchanges import logging as logs
from actors.exchanges import task_graph_runner as tgr
from runtime import (
    Actor,
    Address,
    CallTimeout,
    Codec,
    IpAddress,
    LogEvent,
    MacAddress,
    Result,
    Runtime,
    handler,
)
from runtime.amqp_bus import AmqpBus
from runtime.amqp_url import AmqpAddress
from runtime.testing import Inbox

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


# -- every key of the nine exchanges, between rackbus's clients and a RackHD peer ----------

CODEC = Codec()


@attrs.frozen
class Marked:
    """Ids and addresses unique to one test run, so that other users of the broker
    neither disturb the test nor get disturbed by it."""

    u: str
    node: str
    task: str
    graph: str
    poller: str
    section: str
    ip: str
    mac: str

    @classmethod
    def new(cls) -> Marked:
        raw = uuid.uuid4()
        u = raw.hex[:10]
        b = raw.bytes
        return cls(
            u=u,
            node=f"n{u}",
            task=f"t{u}",
            graph=f"g{u}",
            poller=f"p{u}",
            section=f"s{u}",
            ip=f"10.{b[0]}.{b[1]}.{max(1, b[2] % 255)}",
            mac=":".join(f"{x:02x}" for x in b[3:9]),
        )

    def in_message(self, routing_key: str, body: bytes) -> bool:
        text = body.decode(errors="replace")
        return any(mark in routing_key or mark in text for mark in (self.u, self.ip, self.mac))


def _on_wire(message: object) -> tuple[str, Any]:
    """The AMQP ``type`` and the JSON body a message travels as."""
    type_name, body = CODEC.encode(message)
    return type_name, json.loads(body)


def rackhd_listen(
    bindings: list[tuple[str, str]],
    count: int,
    accept: Callable[[str, bytes], bool],
    *,
    ready: Callable[[], None],
    timeout: float = 20.0,
) -> list[tuple[str, str, pika.spec.BasicProperties, bytes]]:
    """Subscribe like a RackHD service (one exclusive queue, one key per binding) and
    collect ``count`` accepted messages as ``(exchange, routing key, properties, body)``."""
    got: list[tuple[str, str, pika.spec.BasicProperties, bytes]] = []
    with _connect() as connection:
        channel = connection.channel()
        queue = f"rackhd-listen:{_nanoid()}"
        channel.queue_declare(queue, exclusive=True, auto_delete=True)
        for exchange, routing_key in bindings:
            _declare_like_rackhd(channel, exchange)
            channel.queue_bind(queue, exchange, routing_key=routing_key)
        ready()
        for method, properties, body in channel.consume(
            queue, auto_ack=True, exclusive=True, inactivity_timeout=timeout
        ):
            if method is None:
                break
            if accept(method.routing_key, body):
                got.append((method.exchange, method.routing_key, properties, body))
                if len(got) == count:
                    break
        channel.cancel()
    return got


def rackhd_serve(
    answers: dict[tuple[str, str], object],
    accept: Callable[[str, bytes], bool],
    *,
    ready: Callable[[], None],
    timeout: float = 20.0,
) -> dict[tuple[str, str], Request]:
    """Answer one accepted request per ``(exchange, routing key)`` of ``answers`` with
    ``Result {"value": answer}`` and no ``correlation_id``, as RackHD's services did."""
    seen: dict[tuple[str, str], Request] = {}
    with _connect() as connection:
        channel = connection.channel()
        queue = f"rackhd-serve:{_nanoid()}"
        channel.queue_declare(queue, exclusive=True, auto_delete=True)
        for exchange, routing_key in answers:
            _declare_like_rackhd(channel, exchange)
            channel.queue_bind(queue, exchange, routing_key=routing_key)
        ready()
        for method, properties, body in channel.consume(
            queue, auto_ack=True, exclusive=True, inactivity_timeout=timeout
        ):
            if method is None:
                break
            where = (method.exchange, method.routing_key)
            if where not in answers or where in seen or not accept(method.routing_key, body):
                continue
            seen[where] = Request(properties, body)
            channel.basic_publish(
                "",
                properties.reply_to,
                json.dumps({"value": answers[where]}).encode(),
                pika.BasicProperties(content_type=JSON, type="Result"),
            )
            if len(seen) == len(answers):
                break
        channel.cancel()
    return seen


def one_way_examples(m: Marked) -> list[tuple[KeyDef, str, object, Callable[[Runtime], Any]]]:
    """``(key, routing key, payload, publish)`` for every event and command key."""
    tftp = events.TftpSuccess(f"{m.u}.ipxe", m.ip, 2070, 1024, "12.345")
    failure = events.TftpFailure(f"{m.u}.efi", m.ip, 2070, 0, "1.000", 1, "File not found")
    http_event = events.HttpResponse(m.ip, "GET", f"/api/current/profiles?{m.u}", 200, "3.250")
    bind = events.DhcpBindSuccess(m.mac, m.ip, 1_700_000_000_000, m.node, "PXEClient", 7)
    finished = events.TaskFinished(m.task, "Task.Noop", m.graph, "Graph.Noop", "succeeded")
    started = events.GraphStarted(m.graph, "Graph.Noop")
    graph_done = events.GraphFinished(m.graph, "Graph.Noop", "failed")
    sku = events.SkuAssigned(m.u)
    reach = events.NodeAccessibility(m.node, m.poller, "power poll answered", "2024-05-01T12:00Z")
    changed = configuration.ConfigurationChanged(f"{m.section}.level", "debug", "info")
    run = task.RunTask(m.task, m.graph, {"profile": "linux.ipxe"})
    cancel = task.CancelTask(m.task, "TaskTimeoutError", "ran for 24 h")
    body = {"identifier": m.node, "tasks": [{"cmd": "ls", "stdout": "", "exitCode": 0}]}
    ipmi_cmd = task.IpmiCommand(m.poller, m.node, "sdr", "obm-1")
    ipmi_res = task.IpmiCommandResult(m.poller, m.node, "sdr", [{"sensor": "Fan1"}], "T")
    snmp_cmd = task.SnmpCommand(m.poller, m.node, m.ip, "snmp-ro", [".1.3.6.1.2.1.1.5.0"])
    snmp_res = task.SnmpCommandResult(m.poller, m.node, {".1.3": 1}, "T")
    alert = task.PollerAlert(m.poller, m.node, "sel", "critical", "PSU failed", "T")

    def log(level: str) -> tuple[KeyDef, str, object, Callable[[Runtime], Any]]:
        event = LogEvent(level, f"line {m.u}", "2024-05-01T12:00:00Z", "x.py:1", m.node)
        return (logs.KEYS[level], level, event, lambda rt: logs.LoggingClient(rt).log(event))

    def ev(rt: Runtime) -> events.EventsClient:
        return events.EventsClient(rt)

    def tc(rt: Runtime) -> task.TaskClient:
        return task.TaskClient(rt)

    n, g_, t_ = m.node, m.graph, m.task
    return [
        (
            configuration.CHANGED,
            f"changed.{m.section}",
            changed,
            lambda rt: configuration.ConfigurationClient(rt).changed(changed),
        ),
        (events.TFTP_SUCCESS, f"tftp.success.{n}", tftp, lambda rt: ev(rt).tftp_success(n, tftp)),
        (
            events.TFTP_FAILURE,
            f"tftp.failure.{n}",
            failure,
            lambda rt: ev(rt).tftp_failure(n, failure),
        ),
        (
            events.HTTP_RESPONSE,
            f"http.response.{n}",
            http_event,
            lambda rt: ev(rt).http_response(n, http_event),
        ),
        (
            events.DHCP_BIND_SUCCESS,
            f"dhcp.bind.success.{n}",
            bind,
            lambda rt: ev(rt).dhcp_bind_success(n, bind),
        ),
        (
            events.TASK_FINISHED,
            f"task.finished.{t_}",
            finished,
            lambda rt: ev(rt).task_finished(finished),
        ),
        (
            events.GRAPH_STARTED,
            f"graph.started.{g_}",
            started,
            lambda rt: ev(rt).graph_started(started),
        ),
        (
            events.GRAPH_FINISHED,
            f"graph.finished.{g_}",
            graph_done,
            lambda rt: ev(rt).graph_finished(graph_done),
        ),
        (events.SKU_ASSIGNED, f"sku.assigned.{n}", sku, lambda rt: ev(rt).sku_assigned(n, sku)),
        (
            events.NODE_ACCESSIBLE,
            f"node.accessible.information.{n}.{n}",
            reach,
            lambda rt: ev(rt).node_accessible(reach),
        ),
        (
            events.NODE_INACCESSIBLE,
            f"node.inaccessible.information.{n}.{n}",
            reach,
            lambda rt: ev(rt).node_inaccessible(reach),
        ),
        (
            http.RESPONSE,
            "http.response",
            http_event,
            lambda rt: http.HttpClient(rt).response(http_event),
        ),
        *(log(level) for level in logs.LEVELS),
        (task.RUN, f"run.{t_}", run, lambda rt: tc(rt).run(t_, run)),
        (task.CANCEL, f"cancel.{t_}", cancel, lambda rt: tc(rt).cancel(t_, *cancel_args)),
        (
            task.RESPOND_COMMANDS,
            f"methods.respondCommands.{n}",
            Result(body),
            lambda rt: tc(rt).respond_commands(n, body),
        ),
        (
            task.IPMI_COMMAND,
            f"ipmi.command.sdr.{g_}",
            ipmi_cmd,
            lambda rt: tc(rt).ipmi_command("sdr", g_, ipmi_cmd),
        ),
        (
            task.IPMI_COMMAND_RESULT,
            f"ipmi.command.sdr.result.{g_}",
            ipmi_res,
            lambda rt: tc(rt).ipmi_command_result("sdr", g_, ipmi_res),
        ),
        (
            task.RUN_SNMP_COMMAND,
            f"run.snmp.command.{g_}",
            snmp_cmd,
            lambda rt: tc(rt).run_snmp_command(g_, snmp_cmd),
        ),
        (
            task.SNMP_COMMAND_RESULT,
            f"snmp.command.result.{g_}",
            snmp_res,
            lambda rt: tc(rt).snmp_command_result(g_, snmp_res),
        ),
        (
            task.POLLER_ALERT,
            f"poller.alert.{g_}",
            alert,
            lambda rt: tc(rt).poller_alert(g_, alert),
        ),
    ]


cancel_args = ("TaskTimeoutError", "ran for 24 h")


def _keys(kind: Callable[[KeyDef], bool]) -> set[tuple[str, str]]:
    return {(key.exchange, key.template) for ex in ALL_EXCHANGES for key in ex.keys if kind(key)}


def test_every_exchange_is_a_durable_topic_exchange_as_rackhd_declared_it() -> None:
    assert len(ALL_EXCHANGES) == 9
    for exchange in ALL_EXCHANGES:
        assert exchange.name.startswith("on.")
        assert (exchange.type, exchange.durable) == ("topic", True)


async def test_rackbus_and_a_rackhd_peer_declare_every_exchange_alike(rt: Runtime) -> None:
    inbox = Inbox()
    for exchange in ALL_EXCHANGES:  # binding declares the exchange on the broker
        binding = await inbox.bind(rt.bus, exchange.name, f"unused.{uuid.uuid4().hex}")
        await rt.bus.unbind(binding)

    def declare_all() -> None:
        with _connect() as connection:
            channel = connection.channel()
            for exchange in ALL_EXCHANGES:
                # a differing type or durability closes the channel with PRECONDITION_FAILED
                _declare_like_rackhd(channel, exchange.name)

    with trio.fail_after(15):
        await trio.to_thread.run_sync(declare_all)


async def test_a_rackhd_peer_receives_every_event_and_command_as_rackhd_sends_them(
    rt: Runtime,
) -> None:
    m = Marked.new()
    examples = one_way_examples(m)
    assert {(key.exchange, key.template) for key, *_ in examples} == _keys(
        lambda key: key.kind is not Kind.RPC
    )
    bindings = [(key.exchange, routing_key) for key, routing_key, *_ in examples]
    ready = trio.Event()
    got: list[tuple[str, str, pika.spec.BasicProperties, bytes]] = []

    def listen() -> None:
        got.extend(
            rackhd_listen(
                bindings,
                len(examples),
                m.in_message,
                ready=lambda: trio.from_thread.run_sync(ready.set),
            )
        )

    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, listen)
            await ready.wait()
            for *_, publish in examples:
                await publish(rt)
    received = {(exchange, key): (props, body) for exchange, key, props, body in got}
    for key, routing_key, payload, _ in examples:
        assert (key.exchange, routing_key) in received, f"{key.exchange}/{routing_key} not received"
        props, body = received[(key.exchange, routing_key)]
        type_name, wire = _on_wire(payload)
        assert props.type == type_name, routing_key
        assert props.content_type == JSON
        assert props.reply_to is None
        assert json.loads(body) == wire, routing_key
    assert len(got) == len(examples)


def rpc_examples(
    m: Marked,
) -> list[tuple[KeyDef, str, object, Callable[[Runtime], Any], object, tuple[str, Any]]]:
    """``(key, routing key, RackHD's answer, call, expected return, request on the wire)``."""
    lease = dhcp_ex.Lease(m.mac, m.ip, leaseExpiresAt=1_700_000_000_000, boundFlag=True)
    lease_wire = CODEC.to_wire(lease)
    instance = {
        "instanceId": m.graph,
        "name": "Graph.Discovery",
        "status": "running",
        "target": m.node,
        "tasks": {m.task: {"state": "running", "name": "Task.Linux.Bootstrap"}},
    }
    graph = CODEC.convert(instance, tgr.GraphInstance)
    graph_def = {"injectableName": f"Graph.{m.u}", "tasks": []}
    task_def = {"injectableName": f"Task.{m.u}"}
    commands = {"identifier": m.node, "tasks": [{"cmd": "sudo dmidecode", "timeout": 30}]}
    active = {"taskId": m.task, "graphId": m.graph, "nodeId": m.node, "options": {}}
    entry = {"pollerId": m.poller, "timestamp": "2024-05-01T12:00Z", "result": {"power": "on"}}
    setting = f"{m.section}.level"
    empty = ("Object", {})

    def cfg(rt: Runtime) -> configuration.ConfigurationClient:
        return configuration.ConfigurationClient(rt)

    def dc(rt: Runtime) -> dhcp_ex.DhcpClient:
        return dhcp_ex.DhcpClient(rt)

    def gc(rt: Runtime) -> tgr.TaskGraphRunnerClient:
        return tgr.TaskGraphRunnerClient(rt)

    def tc(rt: Runtime) -> task.TaskClient:
        return task.TaskClient(rt)

    ip, mac, n, g_ = m.ip, m.mac, m.node, m.graph
    return [
        (
            configuration.SET,
            "methods.set",
            {"key": setting, "value": "debug"},
            lambda rt: cfg(rt).set(setting, "debug"),
            "debug",
            ("ConfigurationSet", {"key": setting, "value": "debug"}),
        ),
        (
            configuration.GET,
            "methods.get",
            {"key": setting, "value": "info"},
            lambda rt: cfg(rt).get(setting),
            "info",
            ("ConfigurationGet", {"key": setting}),
        ),
        (
            dhcp_ex.LOOKUP_IP_LEASE,
            "methods.lookupIpLease",
            mac.upper(),
            lambda rt: dc(rt).lookup_ip_lease(ip),
            mac,
            ("IpAddress", {"value": ip}),
        ),
        (
            dhcp_ex.IP_IN_RANGE,
            "methods.ipInRange",
            True,
            lambda rt: dc(rt).ip_in_range(ip),
            True,
            ("IpAddress", {"value": ip}),
        ),
        (
            dhcp_ex.PEEK_LEASE_TABLE,
            "methods.peekLeaseTable",
            {"leases": {mac: lease_wire}, "pinned": {}},
            lambda rt: dc(rt).peek_lease_table(),
            dhcp_ex.LeaseTable({mac: lease}),
            empty,
        ),
        (
            dhcp_ex.REMOVE_LEASE,
            "methods.removeLease",
            lease_wire,
            lambda rt: dc(rt).remove_lease(mac),
            lease,
            ("MacAddress", {"value": mac}),
        ),
        (
            dhcp_ex.REMOVE_LEASE_BY_IP,
            "methods.removeLeaseByIp",
            {},
            lambda rt: dc(rt).remove_lease_by_ip(ip),
            None,
            ("IpAddress", {"value": ip}),
        ),
        (
            dhcp_ex.PIN_MAC,
            "methods.pinMac",
            {**lease_wire, "pinned": True},
            lambda rt: dc(rt).pin_mac(mac),
            attrs.evolve(lease, pinned=True),
            ("MacAddress", {"value": mac}),
        ),
        (
            dhcp_ex.UNPIN_MAC,
            "methods.unpinMac",
            {},
            lambda rt: dc(rt).unpin_mac(mac),
            None,
            ("MacAddress", {"value": mac}),
        ),
        (
            dhcp_ex.PIN_IP,
            "methods.pinIp",
            {**lease_wire, "pinned": True},
            lambda rt: dc(rt).pin_ip(mac, ip),
            attrs.evolve(lease, pinned=True),
            ("PinIp", {"mac": mac, "ip": ip}),
        ),
        (
            dhcp_ex.UNPIN_IP,
            "methods.unpinIp",
            lease_wire,
            lambda rt: dc(rt).unpin_ip(ip),
            lease,
            ("IpAddress", {"value": ip}),
        ),
        (
            tgr.GET_TASK_GRAPH_LIBRARY,
            "methods.getTaskGraphLibrary",
            [graph_def],
            lambda rt: gc(rt).get_task_graph_library({"injectableName": f"Graph.{m.u}"}),
            [graph_def],
            ("LibraryFilter", {"filter": {"injectableName": f"Graph.{m.u}"}}),
        ),
        (
            tgr.GET_TASK_LIBRARY,
            "methods.getTaskLibrary",
            [task_def],
            lambda rt: gc(rt).get_task_library(task_def),
            [task_def],
            ("LibraryFilter", {"filter": task_def}),
        ),
        (
            tgr.GET_ACTIVE_TASK_GRAPH,
            "methods.getActiveTaskGraph",
            instance,
            lambda rt: gc(rt).get_active_task_graph(target=n),
            graph,
            ("GraphFilter", {"filter": {"target": n}}),
        ),
        (
            tgr.GET_ACTIVE_TASK_GRAPHS,
            "methods.getActiveTaskGraphs",
            [instance],
            lambda rt: gc(rt).get_active_task_graphs(instance_id=g_),
            [graph],
            ("GraphFilter", {"filter": {"instanceId": g_}}),
        ),
        (
            tgr.DEFINE_TASK_GRAPH,
            "methods.defineTaskGraph",
            graph_def["injectableName"],
            lambda rt: gc(rt).define_task_graph(graph_def),
            graph_def["injectableName"],
            ("DefineTaskGraph", {"definition": graph_def}),
        ),
        (
            tgr.DEFINE_TASK,
            "methods.defineTask",
            task_def["injectableName"],
            lambda rt: gc(rt).define_task(task_def),
            task_def["injectableName"],
            ("DefineTask", {"definition": task_def}),
        ),
        (
            tgr.RUN_TASK_GRAPH,
            "methods.runTaskGraph",
            instance,
            lambda rt: gc(rt).run_task_graph("Graph.Discovery", {"u": m.u}, n),
            graph,
            ("RunTaskGraph", {"name": "Graph.Discovery", "options": {"u": m.u}, "target": n}),
        ),
        (
            tgr.CANCEL_TASK_GRAPH,
            "methods.cancelTaskGraph",
            g_,
            lambda rt: gc(rt).cancel_task_graph(g_),
            g_,
            ("CancelTaskGraph", {"graphId": g_}),
        ),
        (
            tgr.PAUSE_TASK_GRAPH,
            "methods.pauseTaskGraph",
            {**instance, "status": "paused"},
            lambda rt: gc(rt).pause_task_graph(g_),
            attrs.evolve(graph, status="paused"),
            ("PauseTaskGraph", {"graphId": g_}),
        ),
        (
            tgr.RESUME_TASK_GRAPH,
            "methods.resumeTaskGraph",
            instance,
            lambda rt: gc(rt).resume_task_graph(g_),
            graph,
            ("ResumeTaskGraph", {"graphId": g_}),
        ),
        (
            tgr.GET_TASK_GRAPH_PROPERTIES,
            "methods.getTaskGraphProperties",
            {"os": {"linux": {"type": "microkernel"}}},
            lambda rt: gc(rt).get_task_graph_properties(g_),
            {"os": {"linux": {"type": "microkernel"}}},
            ("GetTaskGraphProperties", {"graphId": g_}),
        ),
        (
            scheduler.SCHEDULE,
            "schedule",
            {"taskId": m.task, "admitted": False, "position": 2},
            lambda rt: scheduler.SchedulerClient(rt).schedule(m.task, "Task.Noop", g_),
            scheduler.ScheduleReply(m.task, False, 2),
            (
                "ScheduleRequest",
                {
                    "taskId": m.task,
                    "taskName": "Task.Noop",
                    "graphId": g_,
                    "overrides": {},
                    "timeout": None,
                },
            ),
        ),
        (
            task.REQUEST_PROFILE,
            f"methods.requestProfile.{n}",
            "linux.ipxe",
            lambda rt: tc(rt).request_profile(n),
            "linux.ipxe",
            empty,
        ),
        (
            task.REQUEST_PROPERTIES,
            f"methods.requestProperties.{n}",
            {"kernelFile": "vmlinuz"},
            lambda rt: tc(rt).request_properties(n),
            {"kernelFile": "vmlinuz"},
            empty,
        ),
        (
            task.REQUEST_COMMANDS,
            f"methods.requestCommands.{n}",
            commands,
            lambda rt: tc(rt).request_commands(n),
            task.CommandsReply(n, commands["tasks"]),  # type: ignore[arg-type]
            empty,
        ),
        (
            task.GET_BOOT_PROFILE,
            f"methods.getBootProfile.{n}",
            "monorail.ipxe",  # RackHD's shape: the boot file's name alone
            lambda rt: tc(rt).get_boot_profile(n),
            task.BootProfile("monorail.ipxe"),
            empty,
        ),
        (
            task.ACTIVE_TASK_EXISTS,
            f"methods.activeTaskExists.{n}",
            active,
            lambda rt: tc(rt).active_task_exists(n),
            task.ActiveTask(m.task, g_, n),
            empty,
        ),
        (
            task.REQUEST_POLLER_CACHE,
            "methods.requestPollerCache",
            [entry],
            lambda rt: tc(rt).request_poller_cache(m.poller, latest_only=True),
            [task.PollerCacheEntry(m.poller, "2024-05-01T12:00Z", {"power": "on"})],
            ("PollerCacheRequest", {"pollerId": m.poller, "latestOnly": True}),
        ),
    ]


async def test_rackbus_clients_call_a_rackhd_peer_on_every_rpc_key() -> None:
    m = Marked.new()
    examples = rpc_examples(m)
    assert {(key.exchange, key.template) for key, *_ in examples} == _keys(
        lambda key: key.kind is Kind.RPC
    )
    answers = {(key.exchange, routing_key): answer for key, routing_key, answer, *_ in examples}
    ready = trio.Event()
    seen: dict[tuple[str, str], Request] = {}

    def serve() -> None:
        seen.update(
            rackhd_serve(
                answers,
                lambda key, body: m.in_message(key, body) or key == "methods.peekLeaseTable",
                ready=lambda: trio.from_thread.run_sync(ready.set),
            )
        )

    bus = AmqpBus(
        name=f"legacy-{uuid.uuid4().hex[:8]}", persistent=False, reply_queue_per_call=True
    )
    returned: list[object] = []
    with trio.fail_after(60):
        async with Runtime(bus, name="legacy") as rt, trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, serve)
            await ready.wait()
            for *_, call, _, _ in examples:
                returned.append(await call(rt))
    for (key, routing_key, _, _, expected, (type_name, body)), value in zip(
        examples, returned, strict=True
    ):
        assert value == expected, routing_key
        request = seen[(key.exchange, routing_key)]
        assert request.properties.type == type_name, routing_key
        assert request.properties.content_type == JSON
        assert request.properties.reply_to
        assert json.loads(request.body) == body, routing_key


class Scheduler(Actor):
    """A scheduler answering ``schedule`` with the queue position; it uses the task's id
    in the ``run`` key, as a real scheduler does."""

    @handler(scheduler.NAME, scheduler.SCHEDULE.template)
    async def schedule(self, request: scheduler.ScheduleRequest) -> scheduler.ScheduleReply:
        task.RUN.key(taskid=request.taskId)
        return scheduler.ScheduleReply(request.taskId, admitted=False, position=1)


@pytest.mark.parametrize(
    "bad",
    [
        {"taskId": "#", "taskName": "Task.Noop", "graphId": "g1"},
        {"taskId": "t1.*", "taskName": "Task.Noop", "graphId": "g1"},
        {"taskId": "", "taskName": "Task.Noop", "graphId": "g1"},
        {"taskId": "t" * 100_000, "taskName": "Task.Noop", "graphId": "g1"},
        {"taskId": "t1", "taskName": "Task.Noop"},
        {"taskId": "t1", "taskName": ["Task.Noop"], "graphId": "g1"},
        {"taskId": "t1", "taskName": "Task.Noop", "graphId": "g1", "timeout": -1},
        {"taskId": "t1", "taskName": "Task.Noop", "graphId": "g1", "timeout": "soon"},
        [],
    ],
    ids=lambda bad: str(bad)[:40],
)
async def test_a_rackhd_peer_gets_a_400_for_a_malformed_request_and_the_service_goes_on(
    rt: Runtime, bad: object
) -> None:
    ref = await rt.spawn(Scheduler, key=f"scheduler-{uuid.uuid4().hex[:8]}")
    reply = await _request(scheduler.NAME, "schedule", bad, type_name="ScheduleRequest")
    assert reply.type == "ErrorEvent"
    body = reply.json()
    assert body["name"] == "DecodeError"
    assert body["status"] == 400
    assert {"name", "message", "stack", "context"} <= body.keys()
    good = {"taskId": f"t{uuid.uuid4().hex[:8]}", "taskName": "Task.Noop", "graphId": "g1"}
    reply = await _request(scheduler.NAME, "schedule", good, type_name="ScheduleRequest")
    assert reply.type == "Result"
    assert reply.json() == {"value": {"taskId": good["taskId"], "admitted": False, "position": 1}}
    assert ref.statistics().crashes == 0
