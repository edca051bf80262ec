"""``on.task-graph-runner``: define, run, inspect and control workflows (task graphs).

Requests and replies follow RackHD's 2015 engine, the one the conventions
describe; RackHD wrapped replies in ``Result {value}``, here a reply is the
value itself. Definitions use RackHD's graph and task formats unchanged.

* ``getTaskGraphLibrary`` / ``getTaskLibrary`` take ``LibraryFilter {filter}``
  (field values to match, e.g. ``{"injectableName": "Graph.Discovery"}``) and
  reply with a list of definitions.
* ``getActiveTaskGraph`` takes ``GraphFilter {filter}`` with ``target`` (a node
  id) or ``instanceId`` and replies with a ``GraphInstance {instanceId, name,
  status, target?, tasks: {taskId: TaskState {state, name}}}`` or ``None``;
  ``getActiveTaskGraphs`` replies with a list of them.
* ``defineTaskGraph`` / ``defineTask`` take ``{definition}`` and reply with its
  ``injectableName``.
* ``runTaskGraph`` takes ``RunTaskGraph {name, options, target?}`` and replies
  with the new ``GraphInstance``; it is refused while the target has an
  active graph.
* ``cancelTaskGraph`` takes ``{graphId}`` and replies with the graph id, or
  ``None`` when the graph was not active (as RackHD in 2018).
* ``pauseTaskGraph`` / ``resumeTaskGraph`` were never implemented by RackHD.
  Here they take ``{graphId}`` and reply with the ``GraphInstance`` in its new
  status: a paused graph starts no more tasks (running ones finish) until it
  is resumed.
* ``getTaskGraphProperties`` existed for a month in 2015. Here it takes
  ``{graphId}`` and replies with the properties the graph's finished tasks
  have accumulated so far (e.g. ``{"os": {"linux": {"type": "microkernel"}}}``).

Graph ids, instance ids and targets (node ids) are checked like ids in keys
when a payload is built or decoded.

Graph status is ``pending``, ``running``, ``paused``, ``succeeded``, ``failed``
or ``cancelled``; task state is ``pending``, ``running``, ``succeeded``,
``failed``, ``timeout`` or ``cancelled``.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from runtime import message

from ..convention import ID_FIELD, Client, ExchangeDef, KeyDef, Kind, valid_id, valid_optional_id

NAME = "on.task-graph-runner"

GraphStatus = Literal["pending", "running", "paused", "succeeded", "failed", "cancelled"]
TaskStateName = Literal["pending", "running", "succeeded", "failed", "timeout", "cancelled"]


@message("LibraryFilter")
@attrs.frozen
class LibraryFilter:
    """Request of the library methods; an empty filter matches every definition."""

    filter: dict[str, Any] = attrs.Factory(dict)


@message("GraphFilter")
@attrs.frozen
class GraphFilter:
    """Request of the active-graph methods: ``{"target": nodeId}`` or ``{"instanceId": id}``."""

    filter: dict[str, Any] = attrs.Factory(dict)


@message("DefineTaskGraph")
@attrs.frozen
class DefineTaskGraph:
    """Request of ``defineTaskGraph``: a graph definition in RackHD's format."""

    definition: dict[str, Any]


@message("DefineTask")
@attrs.frozen
class DefineTask:
    """Request of ``defineTask``: a task definition in RackHD's format."""

    definition: dict[str, Any]


@message("RunTaskGraph")
@attrs.frozen
class RunTaskGraph:
    """Request of ``runTaskGraph``: the graph's injectable name, options and target node."""

    name: str
    options: dict[str, Any] = attrs.Factory(dict)
    target: str | None = attrs.field(default=None, validator=valid_optional_id, metadata=ID_FIELD)
    """The node id the graph runs against."""


@message("TaskState")
@attrs.frozen
class TaskState:
    """One task of a ``GraphInstance``."""

    state: TaskStateName
    name: str


@message("GraphInstance")
@attrs.frozen
class GraphInstance:
    """A graph run and the state of its tasks, keyed by task id."""

    instanceId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    name: str
    status: GraphStatus
    target: str | None = attrs.field(default=None, validator=valid_optional_id, metadata=ID_FIELD)
    tasks: dict[str, TaskState] = attrs.Factory(dict)


@message("CancelTaskGraph")
@attrs.frozen
class CancelTaskGraph:
    """Request of ``cancelTaskGraph``."""

    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)


@message("PauseTaskGraph")
@attrs.frozen
class PauseTaskGraph:
    """Request of ``pauseTaskGraph``."""

    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)


@message("ResumeTaskGraph")
@attrs.frozen
class ResumeTaskGraph:
    """Request of ``resumeTaskGraph``."""

    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)


@message("GetTaskGraphProperties")
@attrs.frozen
class GetTaskGraphProperties:
    """Request of ``getTaskGraphProperties``."""

    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)


GET_TASK_GRAPH_LIBRARY = KeyDef(
    NAME,
    "methods.getTaskGraphLibrary",
    Kind.RPC,
    LibraryFilter,
    stub="get_task_graph_library",
    seed="methods.getTaskGraphLibrary",
    doc="the graph definitions matching a filter",
)
GET_TASK_LIBRARY = KeyDef(
    NAME,
    "methods.getTaskLibrary",
    Kind.RPC,
    LibraryFilter,
    stub="get_task_library",
    seed="methods.getTaskLibrary",
    doc="the task definitions matching a filter",
)
GET_ACTIVE_TASK_GRAPH = KeyDef(
    NAME,
    "methods.getActiveTaskGraph",
    Kind.RPC,
    GraphFilter,
    GraphInstance,
    stub="get_active_task_graph",
    seed="methods.getActiveTaskGraph",
    doc="the active graph of a target or instance id, or None",
)
GET_ACTIVE_TASK_GRAPHS = KeyDef(
    NAME,
    "methods.getActiveTaskGraphs",
    Kind.RPC,
    GraphFilter,
    stub="get_active_task_graphs",
    seed="methods.getActiveTaskGraphs",
    doc="every active graph matching a filter: a list of GraphInstance",
)
DEFINE_TASK_GRAPH = KeyDef(
    NAME,
    "methods.defineTaskGraph",
    Kind.RPC,
    DefineTaskGraph,
    stub="define_task_graph",
    seed="methods.defineTaskGraph",
    doc="store a graph definition; replies with its injectableName",
)
DEFINE_TASK = KeyDef(
    NAME,
    "methods.defineTask",
    Kind.RPC,
    DefineTask,
    stub="define_task",
    seed="methods.defineTask",
    doc="store a task definition; replies with its injectableName",
)
RUN_TASK_GRAPH = KeyDef(
    NAME,
    "methods.runTaskGraph",
    Kind.RPC,
    RunTaskGraph,
    GraphInstance,
    stub="run_task_graph",
    seed="methods.runTaskGraph",
    doc="start a graph; refused while its target has an active graph",
)
CANCEL_TASK_GRAPH = KeyDef(
    NAME,
    "methods.cancelTaskGraph",
    Kind.RPC,
    CancelTaskGraph,
    stub="cancel_task_graph",
    seed="methods.cancelTaskGraph",
    doc="cancel a graph; replies with its id, or None if it was not active",
)
PAUSE_TASK_GRAPH = KeyDef(
    NAME,
    "methods.pauseTaskGraph",
    Kind.RPC,
    PauseTaskGraph,
    GraphInstance,
    stub="pause_task_graph",
    seed="methods.pauseTaskGraph",
    doc="start no more tasks of a graph until it is resumed",
)
RESUME_TASK_GRAPH = KeyDef(
    NAME,
    "methods.resumeTaskGraph",
    Kind.RPC,
    ResumeTaskGraph,
    GraphInstance,
    stub="resume_task_graph",
    seed="methods.resumeTaskGraph",
    doc="let a paused graph go on",
)
GET_TASK_GRAPH_PROPERTIES = KeyDef(
    NAME,
    "methods.getTaskGraphProperties",
    Kind.RPC,
    GetTaskGraphProperties,
    stub="get_task_graph_properties",
    seed="methods.getTaskGraphProperties",
    doc="the properties a graph's finished tasks have accumulated",
)


def _graph_filter(target: str | None, instance_id: str | None) -> GraphFilter:
    found = {"target": target, "instanceId": instance_id}
    return GraphFilter({key: value for key, value in found.items() if value is not None})


class TaskGraphRunnerClient(Client):
    """Calls the graph runner: ``await TaskGraphRunnerClient(rt).run_task_graph(...)``."""

    async def get_task_graph_library(
        self, filter: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The graph definitions whose fields match ``filter`` (all without one)."""
        found: list[dict[str, Any]] = await self._call(
            GET_TASK_GRAPH_LIBRARY, LibraryFilter(filter or {}), list[dict[str, Any]]
        )
        return found

    async def get_task_library(self, filter: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The task definitions whose fields match ``filter`` (all without one)."""
        found: list[dict[str, Any]] = await self._call(
            GET_TASK_LIBRARY, LibraryFilter(filter or {}), list[dict[str, Any]]
        )
        return found

    async def get_active_task_graph(
        self, *, target: str | None = None, instance_id: str | None = None
    ) -> GraphInstance | None:
        """The active graph against node ``target`` or with ``instance_id``, or ``None``."""
        found: GraphInstance | None = await self._call(
            GET_ACTIVE_TASK_GRAPH, _graph_filter(target, instance_id), GraphInstance | None
        )
        return found

    async def get_active_task_graphs(
        self, *, target: str | None = None, instance_id: str | None = None
    ) -> list[GraphInstance]:
        """Every active graph, or those against ``target`` or with ``instance_id``."""
        found: list[GraphInstance] = await self._call(
            GET_ACTIVE_TASK_GRAPHS, _graph_filter(target, instance_id), list[GraphInstance]
        )
        return found

    async def define_task_graph(self, definition: dict[str, Any]) -> str:
        """Store a graph definition; returns its injectable name."""
        name: str = await self._call(DEFINE_TASK_GRAPH, DefineTaskGraph(definition), str)
        return name

    async def define_task(self, definition: dict[str, Any]) -> str:
        """Store a task definition; returns its injectable name."""
        name: str = await self._call(DEFINE_TASK, DefineTask(definition), str)
        return name

    async def run_task_graph(
        self, name: str, options: dict[str, Any] | None = None, target: str | None = None
    ) -> GraphInstance:
        """Start graph ``name`` against ``target``; returns the new instance."""
        request = RunTaskGraph(name, options if options is not None else {}, target)
        graph: GraphInstance = await self._call(RUN_TASK_GRAPH, request, GraphInstance)
        return graph

    async def cancel_task_graph(self, graph_id: str) -> str | None:
        """Cancel a graph; returns its id, or ``None`` if it was not active."""
        cancelled: str | None = await self._call(
            CANCEL_TASK_GRAPH, CancelTaskGraph(graph_id), str | None
        )
        return cancelled

    async def pause_task_graph(self, graph_id: str) -> GraphInstance:
        """Pause a graph; returns it as paused."""
        graph: GraphInstance = await self._call(
            PAUSE_TASK_GRAPH, PauseTaskGraph(graph_id), GraphInstance
        )
        return graph

    async def resume_task_graph(self, graph_id: str) -> GraphInstance:
        """Resume a paused graph; returns it running again."""
        graph: GraphInstance = await self._call(
            RESUME_TASK_GRAPH, ResumeTaskGraph(graph_id), GraphInstance
        )
        return graph

    async def get_task_graph_properties(self, graph_id: str) -> dict[str, Any]:
        """The properties the graph's finished tasks have accumulated."""
        properties: dict[str, Any] = await self._call(
            GET_TASK_GRAPH_PROPERTIES, GetTaskGraphProperties(graph_id), dict[str, Any]
        )
        return properties


EXCHANGE = ExchangeDef(
    NAME,
    "task-graph-runner",
    "RPC mechanism for communicating with process running workflows",
    (
        GET_TASK_GRAPH_LIBRARY,
        GET_TASK_LIBRARY,
        GET_ACTIVE_TASK_GRAPH,
        GET_ACTIVE_TASK_GRAPHS,
        DEFINE_TASK_GRAPH,
        DEFINE_TASK,
        RUN_TASK_GRAPH,
        CANCEL_TASK_GRAPH,
        PAUSE_TASK_GRAPH,
        RESUME_TASK_GRAPH,
        GET_TASK_GRAPH_PROPERTIES,
    ),
    TaskGraphRunnerClient,
)
