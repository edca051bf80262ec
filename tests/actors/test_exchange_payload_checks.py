"""Malformed payloads from the bus and ids that could widen a binding or misroute a publish.

For every key of the nine exchanges whose payload is a class: an actor serving
it answers a malformed request (wrong JSON types, missing fields, hostile ids,
out-of-range numbers, huge values) with a 400 ``DecodeError`` and goes on
answering; an actor listening to an event or command refuses such a message
without crashing. The handlers here put every id of the payload in a routing
key, as real services do (``task.finished.<taskId>``, ...).
"""

from __future__ import annotations

import typing
from typing import Any

import attrs
import pytest

from actors.convention import InvalidId, KeyDef, Kind, check_id
from actors.exchanges import ALL
from actors.exchanges import configuration as c
from actors.exchanges import dhcp as d
from actors.exchanges import events as e
from actors.exchanges import scheduler as s
from actors.exchanges import task as t
from actors.exchanges import task_graph_runner as g
from runtime import (
    Actor,
    Codec,
    DecodeError,
    IpAddress,
    LogEvent,
    MacAddress,
    RemoteError,
    Result,
    Runtime,
    handler,
)
from runtime.testing import Inbox, wait_for_handler

T1 = "2024-05-01T12:00:00.000Z"

VALID: dict[type, object] = {
    c.ConfigurationSet: c.ConfigurationSet("logging.level", "debug"),
    c.ConfigurationGet: c.ConfigurationGet("logging"),
    c.ConfigurationChanged: c.ConfigurationChanged("logging.level", "debug", "info"),
    e.TftpSuccess: e.TftpSuccess("monorail.ipxe", "10.0.0.5", 2070, 1024, "12.345"),
    e.TftpFailure: e.TftpFailure("x.efi", "10.0.0.5", 2070, 0, "1.000", 1, "File not found"),
    e.HttpResponse: e.HttpResponse("10.0.0.5", "GET", "/api/current/profiles", 200, "3.250"),
    e.DhcpBindSuccess: e.DhcpBindSuccess("aa:bb:cc:dd:ee:ff", "10.0.0.5", 1_700_000_000_000),
    e.TaskFinished: e.TaskFinished("t1", "Task.Noop", "g1", "Graph.Noop", "succeeded"),
    e.GraphStarted: e.GraphStarted("g1", "Graph.Noop"),
    e.GraphFinished: e.GraphFinished("g1", "Graph.Noop", "failed"),
    e.SkuAssigned: e.SkuAssigned("5f1c2e1e-0000-4000-8000-000000000001"),
    e.NodeAccessibility: e.NodeAccessibility("n1", "p1", "power poll answered", T1),
    IpAddress: IpAddress("10.0.0.5"),
    MacAddress: MacAddress("aa:bb:cc:dd:ee:ff"),
    d.PinIp: d.PinIp("aa:bb:cc:dd:ee:ff", "10.0.0.5"),
    LogEvent: LogEvent("info", "hello", T1, "x.py:1"),
    g.LibraryFilter: g.LibraryFilter({"injectableName": "Graph.Discovery"}),
    g.GraphFilter: g.GraphFilter({"target": "n1"}),
    g.DefineTaskGraph: g.DefineTaskGraph({"injectableName": "Graph.X", "tasks": []}),
    g.DefineTask: g.DefineTask({"injectableName": "Task.X"}),
    g.RunTaskGraph: g.RunTaskGraph("Graph.Discovery", {}, "n1"),
    g.CancelTaskGraph: g.CancelTaskGraph("g1"),
    g.PauseTaskGraph: g.PauseTaskGraph("g1"),
    g.ResumeTaskGraph: g.ResumeTaskGraph("g1"),
    g.GetTaskGraphProperties: g.GetTaskGraphProperties("g1"),
    s.ScheduleRequest: s.ScheduleRequest("t1", "Task.Noop", "g1", {}, 60.0),
    t.RunTask: t.RunTask("t1", "g1"),
    t.CancelTask: t.CancelTask("t1", "TaskTimeoutError", "late"),
    Result: Result({"identifier": "n1", "tasks": []}),
    t.PollerCacheRequest: t.PollerCacheRequest("p1", True),
    t.IpmiCommand: t.IpmiCommand("p1", "n1", "sdr", "obm-n1"),
    t.IpmiCommandResult: t.IpmiCommandResult("p1", "n1", "sdr", [], T1),
    t.SnmpCommand: t.SnmpCommand("p1", "n1", "10.0.0.9", "snmp-ro", [".1.3.6.1.2.1.1.5.0"]),
    t.SnmpCommandResult: t.SnmpCommandResult("p1", "n1", {}, T1),
    t.PollerAlert: t.PollerAlert("p1", "n1", "sel", "critical", "PSU failed", T1),
}

KEYS = [key for exchange in ALL for key in exchange.keys if key.request is not None]
CODEC = Codec()
HOSTILE_IDS = ["#", "*", "a.b", "n1.#", "", " ", "x" * 10_000]
HUGE = "x" * 1_000_000


def key_id(key: KeyDef) -> str:
    return f"{key.exchange}/{key.template}"


def params_of(key: KeyDef) -> dict[str, str]:
    return {name: f"{name}-1" for name in key.params}


def _wrong_type(hint: Any) -> object | None:
    """A JSON value no field of type ``hint`` accepts, or ``None`` if any value fits."""
    kinds = {typing.get_origin(arg) or arg for arg in (*typing.get_args(hint), hint)}
    if Any in kinds or object in kinds:
        return None
    if str in kinds:
        return 12345
    if bool in kinds or int in kinds or float in kinds:
        return "12"
    if dict in kinds:
        return [1]
    if list in kinds:
        return {"a": 1}
    if typing.get_origin(hint) is typing.Literal:
        return "no-such-value"
    return None


def malformed(cls: type) -> list[tuple[str, object, bool]]:
    """``(what, payload, must_be_refused)`` variants of the valid example of ``cls``.

    ``must_be_refused`` is False only for variants the class may accept (an
    optional field left out, a count or a text of a huge size).
    """
    valid = CODEC.to_wire(VALID[cls])
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, object, bool]] = [
        ("a list", [], True),
        ("a string", "text", True),
        ("null", None, True),
        ("a number", 2**63, True),
    ]
    for field in attrs.fields(cls):
        name = field.name
        rest = {k: v for k, v in valid.items() if k != name}
        out.append((f"{name} missing", rest, field.default is attrs.NOTHING))
        wrong = _wrong_type(hints[name])
        if wrong is not None:
            out.append((f"{name} of a wrong type", {**valid, name: wrong}, True))
        if field.metadata.get("id"):
            for bad in HOSTILE_IDS:
                out.append((f"{name} = {bad[:12]!r}", {**valid, name: bad}, True))
        if field.validator is not None and int in (hints[name], *typing.get_args(hints[name])):
            out.append((f"{name} negative", {**valid, name: -1}, True))
            out.append((f"{name} huge", {**valid, name: 2**63 - 1}, False))
        if hints[name] is str and not field.metadata.get("id"):
            out.append((f"{name} huge", {**valid, name: HUGE}, False))
    return out


def test_every_payload_class_has_a_valid_example() -> None:
    classes = {key.request for key in KEYS}
    assert classes == set(VALID)
    for cls, example in VALID.items():
        assert type(example) is cls
        _, body = CODEC.encode(example)
        assert CODEC.decode(None, body, cls) == example


def _uses_ids(message: object) -> None:
    """What a service does with a payload's ids: put each in a routing key."""
    for field in attrs.fields(type(message)):
        value = getattr(message, field.name)
        if field.metadata.get("id") and value is not None:
            check_id(value, field.name)


def serving(key: KeyDef) -> type[Actor]:
    """An actor bound to ``key`` whose handler takes the key's payload class."""

    async def serve(self: Any, message: Any) -> str:
        _uses_ids(message)
        self.handled.append(message)
        return "ok"

    serve.__annotations__ = {"message": key.request, "return": str}

    def init(self: Any) -> None:
        self.handled = []

    namespace = {
        "__init__": init,
        "serve": handler(key.exchange, key.pattern())(serve),
    }
    return type(f"Serves{key.request.__name__}", (Actor,), namespace)


RPC_KEYS = [key for key in KEYS if key.kind is Kind.RPC]
ONE_WAY_KEYS = [key for key in KEYS if key.kind is not Kind.RPC]


@pytest.mark.parametrize("key", RPC_KEYS, ids=key_id)
async def test_a_malformed_request_gets_a_400_and_the_responder_goes_on(
    autojump_clock: object, key: KeyDef
) -> None:
    assert key.request is not None
    address = key.address(**params_of(key))
    async with Runtime() as rt:
        ref = await rt.spawn(serving(key), key="responder")
        valid = CODEC.to_wire(VALID[key.request])
        refused = 0
        for what, payload, must_be_refused in malformed(key.request):
            try:
                answer = await rt.call(address, payload, timeout=1)
            except RemoteError as exc:
                assert exc.status == 400, what
                assert exc.name == "DecodeError", what
                refused += 1
            else:
                assert not must_be_refused, f"{what} was accepted"
                assert answer == "ok"
        assert await rt.call(address, valid, timeout=1) == "ok"
        stats = ref.statistics()
        assert stats.crashes == 0
        assert stats.rejected == refused > 0


@pytest.mark.parametrize("key", ONE_WAY_KEYS, ids=key_id)
async def test_a_malformed_event_is_refused_without_crashing_the_listener(
    autojump_clock: object, key: KeyDef
) -> None:
    assert key.request is not None
    routing_key = key.key(**params_of(key))
    async with Runtime() as rt:
        ref = await rt.spawn(serving(key), key="listener")
        variants = malformed(key.request)
        async with wait_for_handler(ref, "serve", predicate=lambda m: m == VALID[key.request]):
            for _, payload, _ in variants:
                await rt.publish(key.exchange, routing_key, payload)
            await rt.publish(key.exchange, routing_key, VALID[key.request])
        stats = ref.statistics()
        assert stats.crashes == 0
        assert stats.restarts == 0
        must = sum(1 for _, _, refused in variants if refused)
        assert must <= stats.rejected <= len(variants)


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (cls, field.name)
        for cls in VALID
        if attrs.has(cls)
        for field in attrs.fields(cls)
        if field.metadata.get("id")
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_a_hostile_id_in_a_payload_is_refused_naming_its_field(cls: type, field: str) -> None:
    codec = Codec()
    codec.register(cls)
    body = {**CODEC.to_wire(VALID[cls]), field: "n1.#"}
    with pytest.raises(DecodeError) as caught:
        codec.convert(body, cls)
    assert caught.value.fields[0][0] == f"$.{field}"
    with pytest.raises(InvalidId):
        attrs.evolve(VALID[cls], **{field: "*"})  # type: ignore[misc]


# -- clients: the key and the payload name the same target --------------------------------


async def test_run_refuses_a_task_whose_id_is_not_the_keys(autojump_clock: object) -> None:
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, t.NAME, "#")
        client = t.TaskClient(rt)
        with pytest.raises(ValueError, match="taskId"):
            await client.run("t1", t.RunTask("t2", "g1"))
        with pytest.raises(InvalidId):
            await client.run("#", t.RunTask("t2", "g1"))
        await client.run("t2", t.RunTask("t2", "g1"))
        [delivery] = await inbox.wait_for(1)
        assert delivery.routing_key == "run.t2"


async def test_ipmi_commands_refuse_a_command_other_than_the_keys(autojump_clock: object) -> None:
    async with Runtime() as rt:
        inbox = Inbox()
        await inbox.bind(rt.bus, t.NAME, "#")
        client = t.TaskClient(rt)
        with pytest.raises(ValueError, match="command"):
            await client.ipmi_command("power", "g1", t.IpmiCommand("p1", "n1", "sdr", "obm"))
        result = t.IpmiCommandResult("p1", "n1", "sdr", [], T1)
        with pytest.raises(ValueError, match="command"):
            await client.ipmi_command_result("sel", "g1", result)
        with pytest.raises(InvalidId):
            await client.ipmi_command_result("*", "g1", result)
        await client.ipmi_command_result("sdr", "g1", result)
        [delivery] = await inbox.wait_for(1)
        assert delivery.routing_key == "ipmi.command.sdr.result.g1"


async def test_get_boot_profile_takes_a_bare_boot_file_name_as_rackhd_would_send(
    autojump_clock: object,
) -> None:
    async with Runtime() as rt:
        await Inbox(lambda _: "monorail.ipxe").bind(
            rt.bus, t.NAME, t.GET_BOOT_PROFILE.pattern(nodeid="n1")
        )
        await Inbox(lambda _: {"bootfile": "x.efi", "profileUrl": "http://h/p"}).bind(
            rt.bus, t.NAME, t.GET_BOOT_PROFILE.pattern(nodeid="n2")
        )
        await Inbox(lambda _: {"profileUrl": "http://h/p"}).bind(
            rt.bus, t.NAME, t.GET_BOOT_PROFILE.pattern(nodeid="n3")
        )
        client = t.TaskClient(rt)
        assert await client.get_boot_profile("n1") == t.BootProfile("monorail.ipxe")
        assert await client.get_boot_profile("n2") == t.BootProfile("x.efi", "http://h/p")
        with pytest.raises(DecodeError):
            await client.get_boot_profile("n3")


# -- keys that name one id twice ---------------------------------------------------------


def test_a_key_naming_an_id_twice_parses_only_when_both_agree() -> None:
    key = e.NODE_ACCESSIBLE
    assert key.parse("node.accessible.information.n1.n1") == {"nodeid": "n1"}
    assert key.parse("node.accessible.information.n1.n2") is None
    assert key.actor_pattern("nodeid") == "node.accessible.information.{key}.{key}"


class Watcher(Actor):
    def __init__(self) -> None:
        self.seen: list[str] = []

    @handler(e.NAME, e.NODE_INACCESSIBLE.actor_pattern("nodeid"))
    async def inaccessible(self, event: e.NodeAccessibility) -> None:
        self.seen.append(event.nodeId)


async def test_a_node_actor_hears_only_its_own_reachability_events(
    autojump_clock: object,
) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Watcher, key="n1")
        mine = e.NodeAccessibility("n1", "p1", "timeout", T1)
        async with wait_for_handler(ref, "inaccessible", predicate=lambda m: m == mine):
            # the node id in the fourth word alone does not reach n1's actor
            await rt.publish(
                e.NAME, "node.inaccessible.information.n1.n2", attrs.evolve(mine, nodeId="n2")
            )
            await e.EventsClient(rt).node_inaccessible(mine)
        watcher = ref._cell.actor
        assert isinstance(watcher, Watcher)
        assert watcher.seen == ["n1"]


def test_checked_ids_are_bounded_words() -> None:
    assert check_id("node-1:a@b_C") == "node-1:a@b_C"
    for bad in [*HOSTILE_IDS, "x" * 129, "a\nb", None, 7]:
        with pytest.raises(InvalidId):
            check_id(bad)
    with pytest.raises(InvalidId, match=r"invalid node id 'a\.b'"):
        check_id("a.b", "node id")
