"""The on.events, on.http, on.tftp, on.dhcp and on.scheduler definitions and their clients."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.convention import InvalidId, Kind
from actors.exchanges import dhcp, events, http, scheduler, tftp
from actors.exchanges.dhcp import DhcpClient, Lease, LeaseTable, PinIp
from actors.exchanges.events import (
    DhcpBindSuccess,
    EventsClient,
    GraphFinished,
    GraphStarted,
    HttpResponse,
    NodeAccessibility,
    SkuAssigned,
    TaskFinished,
    TftpFailure,
    TftpSuccess,
)
from actors.exchanges.http import HttpClient
from actors.exchanges.scheduler import SchedulerClient, ScheduleReply, ScheduleRequest
from runtime import Codec, IpAddress, MacAddress, Runtime
from runtime.testing import Inbox
from tests import strategies

ips = st.ip_addresses(v=4).map(str)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
ids = st.from_regex(r"[A-Za-z0-9_\-:@]{1,40}", fullmatch=True)
ints = st.integers(min_value=0, max_value=2**53)
ms = st.floats(min_value=0, max_value=1e7).map(lambda x: f"{x:.3f}")
json_values = strategies.json_values()
json_objects = st.dictionaries(st.text(), json_values, max_size=4)

BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "mac": macs,
    "ip": ips,
    "ipAddress": ips,
    "address": ips,
    "remoteAddress": ips,
    "remotePort": st.integers(0, 65535),
    "time": ms,
    "statusCode": st.integers(100, 599),
    "errorCode": st.integers(0, 0xFFFF),
    "architecture": st.none() | st.integers(0, 0xFFFF),
    "taskId": ids,
    "graphId": ids,
    "sku": st.uuids().map(str),
    "state": st.sampled_from(["succeeded", "failed", "timeout", "cancelled"]),
}
BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "str": st.text(),
    "str | None": st.none() | st.text(),
    "int": ints,
    "int | None": st.none() | ints,
    "float | None": st.none() | st.floats(min_value=0, max_value=1e9, exclude_min=True),
    "bool": st.booleans(),
    "dict[str, Any]": json_objects,
    "list[str]": st.lists(st.text(), max_size=4),
}


def build(cls: type) -> st.SearchStrategy[Any]:
    """Every field of ``cls`` drawn by its name, else by its type (a new type fails here)."""
    fields = attrs.fields(cls)
    return st.builds(
        cls, **{f.name: BY_NAME[f.name] if f.name in BY_NAME else BY_TYPE[f.type] for f in fields}
    )


BY_TYPE["dict[str, Lease]"] = st.dictionaries(macs, build(Lease), max_size=3)
PAYLOADS = [TftpSuccess, TftpFailure, HttpResponse, DhcpBindSuccess, TaskFinished, GraphStarted]
PAYLOADS += [GraphFinished, SkuAssigned, Lease, LeaseTable, PinIp, ScheduleRequest, ScheduleReply]
STRATEGIES = {cls: build(cls) for cls in PAYLOADS}

CODEC = Codec()
for _cls in STRATEGIES:
    CODEC.register(_cls)


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_round_trip(cls: type, data: st.DataObject) -> None:
    value = data.draw(STRATEGIES[cls])
    type_name, body = CODEC.encode(value)
    assert CODEC.decode(type_name, body) == value


LEASE = Lease("aa:bb:cc:dd:ee:ff", "10.0.0.5", leaseExpiresAt=1_700_000_000_000, boundFlag=True)
LEASE_KEYS = (
    "mac ipAddress reservationTimer reservationExpiresAt renewalTimer rebindingTimer "
    "expirationTimer renewalExpiresAt rebindExpiresAt leaseExpiresAt boundFlag reservedFlag "
    "pinned"
)
TFTP = TftpSuccess("monorail.ipxe", "10.0.0.5", 2070, 1024, "12.345")
TFTP_KEYS = "file remoteAddress remotePort size time"
FAILURE = TftpFailure("x.efi", "10.0.0.5", 2070, 0, "1.000", 1, "File not found")
HTTP_EVENT = HttpResponse("10.0.0.5", "GET", "/api/current/profiles", 200, "3.250")
BIND = DhcpBindSuccess("aa:bb:cc:dd:ee:ff", "10.0.0.5", 1_700_000_000_000, "node1")
SKU = SkuAssigned("5f1c2e1e-0000-4000-8000-000000000001")
EXAMPLES: list[tuple[object, str, str]] = [
    (TFTP, "TftpSuccess", TFTP_KEYS),
    (FAILURE, "TftpFailure", TFTP_KEYS + " errorCode errorMessage"),
    (HTTP_EVENT, "HttpResponse", "address method url statusCode time"),
    (BIND, "DhcpBindSuccess", "mac ip leaseExpiresAt hostname vendorClass architecture"),
    (
        TaskFinished("t1", "Task.Noop", "g1", "Graph.Noop", "succeeded"),
        "TaskFinished",
        "taskId taskName graphId graphName state error context terminalOnStates",
    ),
    (GraphStarted("g1", "Graph.Noop"), "GraphStarted", "graphId graphName status"),
    (GraphFinished("g1", "Graph.Noop", "failed"), "GraphFinished", "graphId graphName status"),
    (SKU, "SkuAssigned", "sku"),
    (LEASE, "Lease", LEASE_KEYS),
    (LeaseTable({LEASE.mac: LEASE}), "LeaseTable", "leases pinned"),
    (PinIp("aa:bb:cc:dd:ee:ff", "10.0.0.5"), "PinIp", "mac ip"),
    (
        ScheduleRequest("t1", "Task.Noop", "g1", {"a": 1}, 60.0),
        "ScheduleRequest",
        "taskId taskName graphId overrides timeout",
    ),
    (ScheduleReply("t1", False, 3), "ScheduleReply", "taskId admitted position"),
]


@pytest.mark.parametrize(("value", "type_name", "keys"), EXAMPLES, ids=lambda v: str(v)[:20])
def test_wire_shape(value: object, type_name: str, keys: str) -> None:
    name, body = CODEC.encode(value)
    assert name == type_name
    assert list(json.loads(body)) == keys.split()


def test_values_travel_as_rackhd_sent_them() -> None:
    assert json.loads(CODEC.encode(TFTP)[1])["time"] == "12.345"
    body = json.loads(CODEC.encode(LeaseTable({LEASE.mac: LEASE}))[1])
    assert body["leases"]["aa:bb:cc:dd:ee:ff"]["leaseExpiresAt"] == 1_700_000_000_000


def test_keys_are_built_and_bound() -> None:
    assert events.TFTP_SUCCESS.key(nodeid="n1") == "tftp.success.n1"
    assert events.TFTP_SUCCESS.key(nodeid=events.EXTERNAL) == "tftp.success.external"
    assert events.DHCP_BIND_SUCCESS.pattern() == "dhcp.bind.success.*"
    assert events.TASK_FINISHED.key(taskid="t-1") == "task.finished.t-1"
    assert events.GRAPH_FINISHED.parse("graph.finished.g1") == {"graphid": "g1"}
    assert http.RESPONSE.key() == "http.response"
    assert dhcp.PIN_IP.key() == "methods.pinIp"
    assert scheduler.SCHEDULE.key() == "schedule"


HOSTILE = ["a.b", "*", "#", "", "x" * 200, "a b", "n1.#"]
PARAM_KEYS = [key for key in events.EXCHANGE if key.params]


@pytest.mark.parametrize("key", PARAM_KEYS, ids=lambda key: key.template)
@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_hostile_ids_are_refused(key: Any, bad: str) -> None:
    with pytest.raises(InvalidId):
        key.key(**{key.params[0]: bad})
    with pytest.raises(InvalidId):
        key.pattern(**{key.params[0]: bad})


DHCP_METHODS = (
    "lookupIpLease ipInRange peekLeaseTable removeLease removeLeaseByIp "
    "pinMac unpinMac pinIp unpinIp"
)
SEEDS = {
    events: [
        "tftp.success.[nodeid]",
        "tftp.failure.[nodeid]",
        "http.response.[nodeid]",
        "dhcp.bind.success.[nodeid]",
        "task.finished.[taskid]",
        "graph.started.[graphid]",
        "graph.finished.[graphid]",
        "sku.assigned.[nodeid]",
    ],
    http: ["http.response"],
    tftp: [],
    dhcp: [f"methods.{name}" for name in DHCP_METHODS.split()],
    scheduler: ["schedule"],
}


@pytest.mark.parametrize("module", list(SEEDS), ids=lambda m: m.NAME)
def test_exchange_definitions(module: Any) -> None:
    exchange = module.EXCHANGE
    assert exchange.name == module.NAME
    assert [key.seed for key in exchange if key.seed is not None] == SEEDS[module]
    for key in exchange:
        assert key.exchange == module.NAME
        if key.seed is not None:
            assert key.template.replace("{", "[").replace("}", "]") == key.seed
        assert callable(getattr(exchange.client, key.stub))
    kinds = {key.kind for key in exchange}
    assert kinds <= ({Kind.EVENT} if module in (events, http) else {Kind.RPC})
    if module is tftp:
        assert exchange.client is None


REACHABLE = NodeAccessibility("n1", "poller-1", "power poll answered", "2026-11-28T05:00:00Z")


async def test_events_client_publishes_every_key(autojump_clock: object) -> None:
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, events.NAME, "#")
        client = EventsClient(rt)
        task = TaskFinished("t1", "Task.Noop", "g1", "Graph.Noop", "failed", error="boom")
        sent: list[tuple[object, str]] = [
            (TFTP, "tftp.success.external"),
            (FAILURE, "tftp.failure.n1"),
            (HTTP_EVENT, "http.response.n1"),
            (BIND, "dhcp.bind.success.n1"),
            (task, "task.finished.t1"),
            (GraphStarted("g1", "Graph.Noop"), "graph.started.g1"),
            (GraphFinished("g1", "Graph.Noop", "succeeded"), "graph.finished.g1"),
            (SKU, "sku.assigned.n1"),
            (REACHABLE, "node.accessible.information.n1.n1"),
            (REACHABLE, "node.inaccessible.information.n1.n1"),
        ]
        await client.tftp_success(events.EXTERNAL, TFTP)
        await client.tftp_failure("n1", FAILURE)
        await client.http_response("n1", HTTP_EVENT)
        await client.dhcp_bind_success("n1", BIND)
        await client.task_finished(task)
        await client.graph_started(GraphStarted("g1", "Graph.Noop"))
        await client.graph_finished(GraphFinished("g1", "Graph.Noop", "succeeded"))
        await client.sku_assigned("n1", SKU)
        await client.node_accessible(REACHABLE)
        await client.node_inaccessible(REACHABLE)
        deliveries = await inbox.wait_for(len(sent))
        assert [(d.payload, d.routing_key) for d in deliveries] == sent
        with pytest.raises(InvalidId):
            await client.sku_assigned("n1.#", SkuAssigned("s"))


async def test_http_client(autojump_clock: object) -> None:
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, http.NAME, "http.response")
        event = HttpResponse("10.0.0.9", "GET", "/x", 404, "0.500")
        await HttpClient(rt).response(event)
        assert (await inbox.wait_for(1))[0].payload == event


MAC = "aa:bb:cc:dd:ee:ff"
LEASE_DICT = CODEC.to_wire(LEASE)


async def test_dhcp_client(autojump_clock: object) -> None:
    async with Runtime() as rt:
        inboxes: dict[str, Inbox] = {}

        async def serve(method: str, answer: Any) -> None:
            inboxes[method] = Inbox(answer=answer)
            await inboxes[method].bind(rt.bus, dhcp.NAME, f"methods.{method}")

        replies = {"10.0.0.1": {}, "10.0.0.2": MacAddress(MAC), "10.0.0.3": MAC}
        await serve("lookupIpLease", lambda p: replies.get(p.value, {"value": MAC}))
        await serve("ipInRange", lambda p: p.value.startswith("10."))
        await serve("peekLeaseTable", lambda p: {"leases": {MAC: LEASE_DICT}, "pinned": {}})
        await serve("removeLease", lambda p: LEASE if p.value == MAC else {})
        await serve("removeLeaseByIp", lambda p: LEASE_DICT)
        await serve("pinMac", lambda p: {})
        await serve("unpinMac", lambda p: LEASE)
        await serve("pinIp", lambda p: Lease(p.mac, p.ip, pinned=True))
        await serve("unpinIp", lambda p: None)
        client = DhcpClient(rt)

        assert await client.lookup_ip_lease("10.0.0.5") == MAC
        assert await client.lookup_ip_lease("10.0.0.1") is None
        assert await client.lookup_ip_lease("10.0.0.2") == MAC
        assert await client.lookup_ip_lease("10.0.0.3") == MAC
        assert inboxes["lookupIpLease"].payloads[:2] == [
            IpAddress("10.0.0.5"),
            IpAddress("10.0.0.1"),
        ]
        assert await client.ip_in_range("10.0.0.5") is True
        assert await client.ip_in_range("192.168.1.1") is False
        assert await client.peek_lease_table() == LeaseTable({MAC: LEASE})
        assert inboxes["peekLeaseTable"].payloads == [{}]
        assert await client.remove_lease("AA:BB:CC:DD:EE:FF") == LEASE
        assert inboxes["removeLease"].payloads == [MacAddress(MAC)]
        assert await client.remove_lease("00:00:00:00:00:01") is None
        assert await client.remove_lease_by_ip("10.0.0.5") == LEASE
        assert await client.pin_mac(MAC) is None
        assert await client.unpin_mac(MAC) == LEASE
        pinned = await client.pin_ip("AA:BB:CC:DD:EE:01", "10.0.0.7")
        assert pinned == Lease("aa:bb:cc:dd:ee:01", "10.0.0.7", pinned=True)
        assert inboxes["pinIp"].payloads == [PinIp("aa:bb:cc:dd:ee:01", "10.0.0.7")]
        assert await client.unpin_ip("10.0.0.5") is None
        assert inboxes["unpinIp"].payloads == [IpAddress("10.0.0.5")]


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("lookup_ip_lease", ("10.0.0.256",)),
        ("ip_in_range", ("aa:bb:cc:dd:ee:ff",)),
        ("remove_lease", ("10.0.0.5",)),
        ("remove_lease_by_ip", ("",)),
        ("pin_mac", ("aa:bb:cc:dd:ee",)),
        ("unpin_mac", ("aa-bb-cc-dd-ee-ff",)),
        ("pin_ip", ("aa:bb:cc:dd:ee:ff", "not an ip")),
        ("pin_ip", ("zz:bb:cc:dd:ee:ff", "10.0.0.5")),
        ("unpin_ip", ("::1",)),
    ],
)
async def test_dhcp_client_refuses_bad_arguments(
    autojump_clock: object, method: str, args: tuple[str, ...]
) -> None:
    async with Runtime() as rt:
        inbox = Inbox(answer=lambda p: {})
        await inbox.bind(rt.bus, dhcp.NAME, "#")
        with pytest.raises(ValueError):
            await getattr(DhcpClient(rt), method)(*args)
        assert inbox.deliveries == []


async def test_scheduler_client(autojump_clock: object) -> None:
    async with Runtime() as rt:
        inbox = Inbox(answer=lambda p: {"taskId": p.taskId, "admitted": False, "position": 2})
        await inbox.bind(rt.bus, scheduler.NAME, "schedule")
        client = SchedulerClient(rt)
        reply = await client.schedule("t1", "Task.Noop", "g1", {"x": 1}, task_timeout=30.0)
        assert reply == ScheduleReply("t1", admitted=False, position=2)
        assert inbox.payloads == [ScheduleRequest("t1", "Task.Noop", "g1", {"x": 1}, 30.0)]
        await client.schedule("t2", "Task.Noop", "g1")
        assert inbox.payloads[1] == ScheduleRequest("t2", "Task.Noop", "g1")
        with pytest.raises(InvalidId):
            await client.schedule("t.#", "Task.Noop", "g1")
        assert len(inbox.deliveries) == 2
