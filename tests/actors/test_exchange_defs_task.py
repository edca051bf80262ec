"""The ``on.task`` and ``on.task-graph-runner`` definitions: payloads, keys and client stubs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from actors.convention import InvalidId, KeyDef, Kind
from actors.exchanges import task as t
from actors.exchanges import task_graph_runner as g
from runtime import CallTimeout, Codec, Result, Runtime
from runtime.testing import Inbox
from tests.strategies import json_values

# -- strategies ----------------------------------------------------------------


objects = st.dictionaries(st.text(max_size=8), json_values(), max_size=4)
ids = st.from_regex(r"[A-Za-z0-9_\-:@]{1,20}", fullmatch=True)
optional_ids = st.none() | ids
optional_text = st.none() | st.text(max_size=20)
timestamps = st.datetimes().map(lambda d: d.isoformat() + "Z")

STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    t.RunTask: st.builds(t.RunTask, ids, ids, objects, objects),
    t.CancelTask: st.builds(t.CancelTask, ids, optional_text, optional_text),
    t.CommandsReply: st.builds(t.CommandsReply, ids, st.lists(objects, max_size=3)),
    t.BootProfile: st.builds(t.BootProfile, ids, optional_text),
    t.ActiveTask: st.builds(t.ActiveTask, ids, ids, ids, objects, objects),
    t.PollerCacheRequest: st.builds(t.PollerCacheRequest, ids, st.booleans()),
    t.PollerCacheEntry: st.builds(t.PollerCacheEntry, ids, timestamps, json_values()),
    t.PollerCacheOptions: st.builds(t.PollerCacheOptions, st.booleans()),
    t.RackhdPollerCacheRequest: st.builds(
        t.RackhdPollerCacheRequest, ids, st.none() | st.builds(t.PollerCacheOptions, st.booleans())
    ),
    t.IpmiCommand: st.builds(
        t.IpmiCommand, ids, ids, st.sampled_from(["power", "sel", "sdr", "chassis"]), ids, objects
    ),
    t.IpmiCommandResult: st.builds(
        t.IpmiCommandResult, ids, ids, ids, json_values(), timestamps, optional_text
    ),
    t.SnmpCommand: st.builds(
        t.SnmpCommand, ids, ids, ids, ids, st.lists(st.text(max_size=30), max_size=4), objects
    ),
    t.SnmpCommandResult: st.builds(
        t.SnmpCommandResult, ids, ids, json_values(), timestamps, optional_text
    ),
    t.PollerAlert: st.builds(
        t.PollerAlert,
        ids,
        ids,
        st.sampled_from(["sel", "sdr", "power", "snmp"]),
        st.sampled_from(["critical", "warning", "information"]),
        st.text(max_size=40),
        timestamps,
        objects,
    ),
    g.LibraryFilter: st.builds(g.LibraryFilter, objects),
    g.GraphFilter: st.builds(g.GraphFilter, objects),
    g.DefineTaskGraph: st.builds(g.DefineTaskGraph, objects),
    g.DefineTask: st.builds(g.DefineTask, objects),
    g.RunTaskGraph: st.builds(g.RunTaskGraph, ids, objects, optional_ids),
    g.TaskState: st.builds(
        g.TaskState, st.sampled_from(["pending", "running", "succeeded", "failed"]), ids
    ),
    g.CancelTaskGraph: st.builds(g.CancelTaskGraph, ids),
    g.PauseTaskGraph: st.builds(g.PauseTaskGraph, ids),
    g.ResumeTaskGraph: st.builds(g.ResumeTaskGraph, ids),
    g.GetTaskGraphProperties: st.builds(g.GetTaskGraphProperties, ids),
}
STRATEGIES[g.GraphInstance] = st.builds(
    g.GraphInstance,
    ids,
    ids,
    st.sampled_from(["pending", "running", "paused", "succeeded", "failed", "cancelled"]),
    optional_ids,
    st.dictionaries(ids, STRATEGIES[g.TaskState], max_size=3),
)

# -- payloads ------------------------------------------------------------------

T1 = "2024-05-01T12:00:00.000Z"

# One example per class with the exact JSON keys it must carry (RackHD's names).
WIRE: list[tuple[object, set[str]]] = [
    (t.RunTask("t1", "g1"), {"taskId", "graphId", "options", "context"}),
    (t.CancelTask("t1", "TaskTimeoutError", "late"), {"taskId", "errorName", "errorMessage"}),
    (t.CommandsReply("n1", [{"cmd": "ls"}]), {"identifier", "tasks"}),
    (t.BootProfile("monorail.ipxe", "http://x/p"), {"bootfile", "profileUrl"}),
    (t.ActiveTask("t1", "g1", "n1"), {"taskId", "graphId", "nodeId", "options", "context"}),
    (t.PollerCacheRequest("p1", True), {"pollerId", "latestOnly"}),
    (t.PollerCacheEntry("p1", T1, {"a": 1}), {"pollerId", "timestamp", "result"}),
    (t.PollerCacheOptions(True), {"latestOnly"}),
    (t.RackhdPollerCacheRequest("p1", t.PollerCacheOptions(True)), {"value", "options"}),
    (
        t.IpmiCommand("p1", "n1", "sdr", "obm-n1"),
        {"pollerId", "nodeId", "command", "obmRef", "options"},
    ),
    (
        t.IpmiCommandResult("p1", "n1", "sdr", [], T1),
        {"pollerId", "nodeId", "command", "result", "timestamp", "error"},
    ),
    (
        t.SnmpCommand("p1", "n1", "10.0.0.9", "snmp-ro", [".1.3.6.1.2.1.1.5.0"]),
        {"pollerId", "nodeId", "host", "communityRef", "oids", "options"},
    ),
    (
        t.SnmpCommandResult("p1", "n1", {}, T1, "timeout"),
        {"pollerId", "nodeId", "result", "timestamp", "error"},
    ),
    (
        t.PollerAlert("p1", "n1", "sel", "critical", "PSU failed", T1),
        {"pollerId", "nodeId", "kind", "severity", "message", "timestamp", "data"},
    ),
    (g.LibraryFilter({"injectableName": "Graph.Discovery"}), {"filter"}),
    (g.GraphFilter({"target": "n1"}), {"filter"}),
    (g.DefineTaskGraph({"injectableName": "Graph.X", "tasks": []}), {"definition"}),
    (g.DefineTask({"injectableName": "Task.X"}), {"definition"}),
    (g.RunTaskGraph("Graph.Discovery", {}, "n1"), {"name", "options", "target"}),
    (g.TaskState("running", "Task.Catalog.dmi"), {"state", "name"}),
    (
        g.GraphInstance("g1", "Graph.X", "running", "n1", {"t1": g.TaskState("pending", "T")}),
        {"instanceId", "name", "status", "target", "tasks"},
    ),
    (g.CancelTaskGraph("g1"), {"graphId"}),
    (g.PauseTaskGraph("g1"), {"graphId"}),
    (g.ResumeTaskGraph("g1"), {"graphId"}),
    (g.GetTaskGraphProperties("g1"), {"graphId"}),
]


def test_every_payload_class_is_covered() -> None:
    defined = {
        value
        for module in (t, g)
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__
    }
    not_payloads = {t.TaskClient, g.TaskGraphRunnerClient, t.BadPollerCacheRequest}
    assert defined - not_payloads == set(STRATEGIES)
    assert {type(example) for example, _ in WIRE} == set(STRATEGIES)


CODEC = Codec()


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_round_trip(cls: type, data: st.DataObject) -> None:
    codec = CODEC
    codec.register(cls)  # a no-op after the first example
    value = data.draw(STRATEGIES[cls])
    name, body = codec.encode(value)
    assert name == cls.__name__
    assert codec.decode(name, body) == value


@pytest.mark.parametrize("example, keys", WIRE, ids=lambda x: type(x).__name__)
def test_wire_shape(example: object, keys: set[str]) -> None:
    name, body = Codec().encode(example)
    assert name == type(example).__name__
    assert set(orjson.loads(body)) == keys


def test_wire_shape_nested_and_literal_checked() -> None:
    codec = Codec()
    codec.register(g.GraphInstance)
    graph = g.GraphInstance("g1", "Graph.X", "running", None, {"t1": g.TaskState("failed", "T")})
    assert orjson.loads(codec.encode(graph)[1])["tasks"] == {"t1": {"state": "failed", "name": "T"}}
    codec.register(t.PollerAlert)
    alert = orjson.loads(codec.encode(t.PollerAlert("p", "n", "sel", "warning", "m", T1))[1])
    alert["severity"] = "meh"
    with pytest.raises(ValueError, match="severity"):
        codec.decode("PollerAlert", orjson.dumps(alert))


# -- keys ----------------------------------------------------------------------

TASK_SEEDS = [
    "run.[taskid]",
    "cancel.[taskid]",
    "methods.requestProfile.[id]",
    "methods.requestProperties.[id]",
    "methods.requestCommands.[id]",
    "methods.respondCommands.[id]",
    "methods.getBootProfile.[nodeid]",
    "methods.activeTaskExists.[nodeId]",
    "methods.requestPollerCache",
    "ipmi.command.[command].[graphid]",
    "ipmi.command.[command].result.[graphid]",
    "run.snmp.command.[graphid]",
    "snmp.command.result.[graphid]",
    "poller.alert.[graphid]",
]
GRAPH_METHODS = [
    "getTaskGraphLibrary",
    "getTaskLibrary",
    "getActiveTaskGraph",
    "getActiveTaskGraphs",
    "defineTaskGraph",
    "defineTask",
    "runTaskGraph",
    "cancelTaskGraph",
    "pauseTaskGraph",
    "resumeTaskGraph",
    "getTaskGraphProperties",
]
ALL_KEYS = [*t.EXCHANGE, *g.EXCHANGE]


def test_exchanges_cover_the_seed() -> None:
    assert t.EXCHANGE.name == "on.task"
    assert g.EXCHANGE.name == "on.task-graph-runner"
    assert [key.seed for key in t.EXCHANGE] == TASK_SEEDS
    assert [key.seed for key in g.EXCHANGE] == [f"methods.{m}" for m in GRAPH_METHODS]
    assert all(key.kind is Kind.RPC for key in g.EXCHANGE)
    kinds = {key.template: key.kind for key in t.EXCHANGE}
    assert kinds["methods.respondCommands.{id}"] is Kind.COMMAND
    assert kinds["ipmi.command.{command}.result.{graphid}"] is Kind.EVENT
    assert kinds["methods.requestPollerCache"] is Kind.RPC


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda key: key.template)
def test_key_definition_is_consistent(key: KeyDef) -> None:
    exchange = t.EXCHANGE if key.exchange == t.NAME else g.EXCHANGE
    assert exchange.get(key.template) is key
    assert key.seed is not None
    assert key.seed.replace("[", "{").replace("]", "}").lower() == key.template.lower()
    assert key.stub is not None
    assert callable(getattr(exchange.client, key.stub))
    assert key.doc
    concrete = key.key(**{name: f"{name}-1" for name in key.params})
    assert key.parse(concrete) == {name: f"{name}-1" for name in key.params}


def test_key_building_and_parsing() -> None:
    assert t.RUN.key(taskid="t1") == "run.t1"
    assert t.CANCEL.address(taskid="t1").routing_key == "cancel.t1"
    assert t.IPMI_COMMAND.key(command="sdr", graphid="g1") == "ipmi.command.sdr.g1"
    assert t.IPMI_COMMAND_RESULT.pattern(command="power") == "ipmi.command.power.result.*"
    assert t.IPMI_COMMAND_RESULT.pattern() == "ipmi.command.*.result.*"
    assert t.RUN.actor_pattern("taskid") == "run.{key}"
    assert t.ACTIVE_TASK_EXISTS.actor_pattern("nodeid") == "methods.activeTaskExists.{key}"
    assert t.REQUEST_PROFILE.actor_pattern("id") == "methods.requestProfile.{key}"
    assert (
        t.IPMI_COMMAND.actor_pattern("graphid", command="chassis") == "ipmi.command.chassis.{key}"
    )
    assert t.REQUEST_POLLER_CACHE.key() == "methods.requestPollerCache"
    assert g.RUN_TASK_GRAPH.key() == "methods.runTaskGraph"
    assert t.IPMI_COMMAND_RESULT.parse("ipmi.command.sel.result.g1") == {
        "command": "sel",
        "graphid": "g1",
    }
    assert t.IPMI_COMMAND_RESULT.parse("ipmi.command.sel.g1") is None
    assert t.RUN.parse("run.snmp.command.g1") is None
    assert t.RUN_SNMP_COMMAND.parse("run.snmp.command.g1") == {"graphid": "g1"}
    with pytest.raises(TypeError):
        t.RUN.key()
    with pytest.raises(TypeError):
        t.RUN.key(nodeid="n1")


HOSTILE = ["a.b", "*", "#", "", "x" * 200, "a b", "n1.#"]


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
@pytest.mark.parametrize("key", [k for k in ALL_KEYS if k.params], ids=lambda k: k.template)
def test_hostile_ids_are_refused(key: KeyDef, bad: str) -> None:
    good = {name: "ok" for name in key.params}
    for name in key.params:
        with pytest.raises(InvalidId):
            key.key(**{**good, name: bad})
        with pytest.raises(InvalidId):
            key.pattern(**{name: bad})
        assert key.parse(key.template.replace("{" + name + "}", bad).format(**good)) is None


# -- client stubs --------------------------------------------------------------


async def bound(rt: Runtime, key: KeyDef, answer: Any = None, **params: str) -> Inbox:
    """An inbox bound to ``key`` (parameters left out match any word), answering calls."""
    inbox = Inbox(answer)
    await inbox.bind(rt.bus, key.exchange, key.pattern(**params))
    return inbox


async def test_task_client_commands_and_events(autojump_clock: Any) -> None:
    async with Runtime() as rt:
        client = t.TaskClient(rt)
        keys = [
            t.RUN,
            t.CANCEL,
            t.RESPOND_COMMANDS,
            t.IPMI_COMMAND,
            t.IPMI_COMMAND_RESULT,
            t.RUN_SNMP_COMMAND,
            t.SNMP_COMMAND_RESULT,
            t.POLLER_ALERT,
        ]
        inboxes = {key.template: await bound(rt, key) for key in keys}

        run = t.RunTask("t1", "g1", {"profile": "linux.ipxe"}, {"target": "n1"})
        await client.run("t1", run)
        await client.cancel("t1", "TaskTimeoutError", "ran for 24 h")
        await client.cancel("t2")
        await client.respond_commands("n1", {"identifier": "n1", "tasks": [{"cmd": "ls"}]})
        ipmi = t.IpmiCommand("p1", "n1", "sdr", "obm-n1")
        await client.ipmi_command("sdr", "g9", ipmi)
        ipmi_result = t.IpmiCommandResult("p1", "n1", "sdr", [{"sensor": "Fan1"}], T1)
        await client.ipmi_command_result("sdr", "g9", ipmi_result)
        snmp = t.SnmpCommand("p2", "n2", "10.0.0.9", "snmp-ro", [".1.3.6.1.2.1.1.5.0"])
        await client.run_snmp_command("g9", snmp)
        snmp_result = t.SnmpCommandResult("p2", "n2", None, T1, "timeout")
        await client.snmp_command_result("g9", snmp_result)
        alert = t.PollerAlert("p1", "n1", "sel", "critical", "PSU failure", T1, {"id": 3})
        await client.poller_alert("g9", alert)

        def got(key: KeyDef) -> list[tuple[str, Any]]:
            return [(d.routing_key, d.payload) for d in inboxes[key.template].deliveries]

        assert got(t.RUN) == [("run.t1", run)]
        assert got(t.CANCEL) == [
            ("cancel.t1", t.CancelTask("t1", "TaskTimeoutError", "ran for 24 h")),
            ("cancel.t2", t.CancelTask("t2")),
        ]
        assert got(t.RESPOND_COMMANDS) == [
            ("methods.respondCommands.n1", Result({"identifier": "n1", "tasks": [{"cmd": "ls"}]}))
        ]
        assert got(t.IPMI_COMMAND) == [("ipmi.command.sdr.g9", ipmi)]
        assert got(t.IPMI_COMMAND_RESULT) == [("ipmi.command.sdr.result.g9", ipmi_result)]
        assert got(t.RUN_SNMP_COMMAND) == [("run.snmp.command.g9", snmp)]
        assert got(t.SNMP_COMMAND_RESULT) == [("snmp.command.result.g9", snmp_result)]
        assert got(t.POLLER_ALERT) == [("poller.alert.g9", alert)]
        with pytest.raises(InvalidId):
            await client.run("t.#", run)


async def test_task_client_calls(autojump_clock: Any) -> None:
    async with Runtime() as rt:
        client = t.TaskClient(rt)
        profile = await bound(rt, t.REQUEST_PROFILE, lambda _: "linux.ipxe", id="n1")
        await bound(rt, t.REQUEST_PROPERTIES, lambda _: {"kernelFile": "vmlinuz"}, id="n1")
        commands = {"identifier": "n1", "tasks": [{"cmd": "sudo dmidecode", "timeout": 30}]}
        await bound(rt, t.REQUEST_COMMANDS, lambda _: commands, id="n1")
        await bound(rt, t.REQUEST_COMMANDS, lambda _: None, id="n2")
        boot = await bound(rt, t.GET_BOOT_PROFILE, lambda _: {"bootfile": "monorail.ipxe"})
        active = {"taskId": "t1", "graphId": "g1", "nodeId": "n1", "options": {}, "context": {}}
        await bound(rt, t.ACTIVE_TASK_EXISTS, lambda _: active, nodeid="n1")
        await bound(rt, t.ACTIVE_TASK_EXISTS, lambda _: None, nodeid="n2")
        await bound(rt, t.ACTIVE_TASK_EXISTS, None, nodeid="n3")  # bound, never answers
        entries = [{"pollerId": "p1", "timestamp": T1, "result": {"power": "on"}}]
        cache = await bound(rt, t.REQUEST_POLLER_CACHE, lambda _: entries)

        assert await client.request_profile("n1") == "linux.ipxe"
        assert profile.deliveries[0].routing_key == "methods.requestProfile.n1"
        assert profile.payloads == [{}]
        assert await client.request_properties("n1") == {"kernelFile": "vmlinuz"}
        assert await client.request_commands("n1") == t.CommandsReply(
            "n1", [{"cmd": "sudo dmidecode", "timeout": 30}]
        )
        assert await client.request_commands("n2") is None
        assert await client.get_boot_profile("n7") == t.BootProfile("monorail.ipxe")
        assert boot.deliveries[0].routing_key == "methods.getBootProfile.n7"
        assert await client.active_task_exists("n1") == t.ActiveTask("t1", "g1", "n1")
        assert await client.active_task_exists("n2") is None
        assert await client.active_task_exists("n9") is None  # nothing bound: no at once
        assert await client.request_poller_cache("p1", latest_only=True) == [
            t.PollerCacheEntry("p1", T1, {"power": "on"})
        ]
        assert cache.payloads == [t.PollerCacheRequest("p1", True)]
        with pytest.raises(CallTimeout):
            await t.TaskClient(rt, timeout=1.0).active_task_exists("n3")


async def test_active_task_exists_without_responder_is_immediate(autojump_clock: Any) -> None:
    async with Runtime() as rt:
        start = trio.current_time()
        assert await t.TaskClient(rt).active_task_exists("n1") is None
        assert trio.current_time() == start


async def test_task_graph_runner_client(autojump_clock: Any) -> None:
    graph = {
        "instanceId": "g1",
        "name": "Graph.Discovery",
        "status": "running",
        "target": "n1",
        "tasks": {"t1": {"state": "running", "name": "Task.Linux.Bootstrap"}},
    }
    instance = g.GraphInstance(
        "g1",
        "Graph.Discovery",
        "running",
        "n1",
        {"t1": g.TaskState("running", "Task.Linux.Bootstrap")},
    )
    canned: dict[KeyDef, Any] = {
        g.GET_TASK_GRAPH_LIBRARY: [{"injectableName": "Graph.Discovery"}],
        g.GET_TASK_LIBRARY: [{"injectableName": "Task.Catalog.dmi"}],
        g.GET_ACTIVE_TASK_GRAPH: graph,
        g.GET_ACTIVE_TASK_GRAPHS: [graph],
        g.DEFINE_TASK_GRAPH: "Graph.Mine",
        g.DEFINE_TASK: "Task.Mine",
        g.RUN_TASK_GRAPH: graph,
        g.CANCEL_TASK_GRAPH: "g1",
        g.PAUSE_TASK_GRAPH: {**graph, "status": "paused"},
        g.RESUME_TASK_GRAPH: graph,
        g.GET_TASK_GRAPH_PROPERTIES: {"os": {"linux": {"type": "microkernel"}}},
    }
    async with Runtime() as rt:
        client = g.TaskGraphRunnerClient(rt)
        inboxes = {key: await bound(rt, key, lambda _, v=value: v) for key, value in canned.items()}

        def sent(key: KeyDef) -> Any:
            [delivery] = inboxes[key].deliveries
            assert delivery.routing_key == key.template
            return delivery.payload

        library = await client.get_task_graph_library({"injectableName": "Graph.Discovery"})
        assert library == [{"injectableName": "Graph.Discovery"}]
        assert sent(g.GET_TASK_GRAPH_LIBRARY) == g.LibraryFilter(
            {"injectableName": "Graph.Discovery"}
        )
        assert await client.get_task_library() == [{"injectableName": "Task.Catalog.dmi"}]
        assert sent(g.GET_TASK_LIBRARY) == g.LibraryFilter({})
        assert await client.get_active_task_graph(target="n1") == instance
        assert sent(g.GET_ACTIVE_TASK_GRAPH) == g.GraphFilter({"target": "n1"})
        assert await client.get_active_task_graphs(instance_id="g1") == [instance]
        assert sent(g.GET_ACTIVE_TASK_GRAPHS) == g.GraphFilter({"instanceId": "g1"})
        definition = {"injectableName": "Graph.Mine", "tasks": []}
        assert await client.define_task_graph(definition) == "Graph.Mine"
        assert sent(g.DEFINE_TASK_GRAPH) == g.DefineTaskGraph(definition)
        assert await client.define_task({"injectableName": "Task.Mine"}) == "Task.Mine"
        assert sent(g.DEFINE_TASK) == g.DefineTask({"injectableName": "Task.Mine"})
        assert await client.run_task_graph("Graph.Discovery", target="n1") == instance
        assert sent(g.RUN_TASK_GRAPH) == g.RunTaskGraph("Graph.Discovery", {}, "n1")
        assert await client.cancel_task_graph("g1") == "g1"
        assert sent(g.CANCEL_TASK_GRAPH) == g.CancelTaskGraph("g1")
        paused = await client.pause_task_graph("g1")
        assert paused.status == "paused"
        assert sent(g.PAUSE_TASK_GRAPH) == g.PauseTaskGraph("g1")
        assert await client.resume_task_graph("g1") == instance
        assert sent(g.RESUME_TASK_GRAPH) == g.ResumeTaskGraph("g1")
        properties = await client.get_task_graph_properties("g1")
        assert properties == {"os": {"linux": {"type": "microkernel"}}}
        assert sent(g.GET_TASK_GRAPH_PROPERTIES) == g.GetTaskGraphProperties("g1")


async def test_graph_runner_none_replies(autojump_clock: Any) -> None:
    async with Runtime() as rt:
        client = g.TaskGraphRunnerClient(rt)
        await bound(rt, g.CANCEL_TASK_GRAPH, lambda _: None)
        await bound(rt, g.GET_ACTIVE_TASK_GRAPH, lambda _: None)
        assert await client.cancel_task_graph("g-gone") is None
        assert await client.get_active_task_graph(target="n1") is None
