"""``on.task``: tasks, the per-node methods jobs answer, and the pollers' command stream.

RackHD wrapped every payload here in ``Result {value}``; here the payload is the
message itself, with RackHD's field names. What RackHD never defined:

* ``run.<taskid>``: ``RunTask {taskId, graphId, options, context}`` (2018 sent
  only ``{taskId, graphId}``). ``cancel.<taskid>``: ``CancelTask {taskId,
  errorName?, errorMessage?}``; RackHD's publisher dropped the error its
  subscriber expected, so here a cancelled task learns why.
* The per-node methods take ``{}``, as in RackHD. ``requestProfile`` replies
  with a profile file name (``linux.ipxe``), ``requestProperties`` with the job's
  rendered options, ``requestCommands`` with ``CommandsReply {identifier,
  tasks}``, or ``None`` once they were sent. ``respondCommands`` is a publish
  carrying the microkernel's posted body as ``Result {value: body}``, as in RackHD.
* ``getBootProfile`` (never answered in RackHD) replies ``BootProfile {bootfile,
  profileUrl?}``: the TFTP boot file and, optionally, the iPXE profile's URL.
* ``activeTaskExists`` replies ``ActiveTask {taskId, graphId, nodeId, options,
  context}``. Unlike RackHD, where only a timeout meant "no", "no" is explicit
  and immediate: nothing bound to the node (``NoResponder``) or a ``None`` reply.
* ``requestPollerCache``: ``PollerCacheRequest {pollerId, latestOnly}`` → a list
  of ``PollerCacheEntry {pollerId, timestamp, result}``, oldest first; empty
  when nothing is cached (RackHD replied NotFoundError). RackHD's request,
  ``{value: <pollerId>, options: {latestOnly?}}`` sent untyped (or as a
  ``Result``), is taken too (``poller_cache_request``); any other shape is a 400.
* Pollers (``<graphid>`` is the poller service graph's instance id):
  ``IpmiCommand {pollerId, nodeId, command, obmRef, options}`` →
  ``IpmiCommandResult {pollerId, nodeId, command, result, timestamp, error?}``;
  ``SnmpCommand {pollerId, nodeId, host, communityRef, oids, options}`` →
  ``SnmpCommandResult {pollerId, nodeId, result, timestamp, error?}``;
  ``PollerAlert {pollerId, nodeId, kind, severity, message, timestamp, data}``.
  Credentials travel by reference only: ``obmRef`` and ``communityRef`` name
  stored settings the executor looks up. RackHD sent BMC passwords in plaintext
  in commands and in its 2015 alerts; no secret is ever on this bus.

``<command>`` is a word such as ``power``, ``sel``, ``sdr``, ``chassis``.
Timestamps are ISO 8601 strings. Ids in payloads (``taskId``, ``graphId``,
``nodeId``, ``pollerId``, ``command``, the credential references) are checked
like ids in keys when a payload is built or decoded, and the client refuses a
payload that names another task or command than its key (``run``,
``ipmi.command``, ``ipmi.command.result``). ``getBootProfile`` also takes
RackHD's reply, the boot file's name alone.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from runtime import Codec, NoResponder, Result, message

from ..convention import ID_FIELD, Client, ExchangeDef, KeyDef, Kind, check_id, valid_id

NAME = "on.task"

AlertKind = Literal["sel", "sdr", "power", "snmp"]
Severity = Literal["critical", "warning", "information"]


@message("RunTask")
@attrs.frozen
class RunTask:
    """Command ``run.<taskid>``: run this task of that graph."""

    taskId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    options: dict[str, Any] = attrs.Factory(dict)
    context: dict[str, Any] = attrs.Factory(dict)


@message("CancelTask")
@attrs.frozen
class CancelTask:
    """Command ``cancel.<taskid>``, with the error that caused it when there is one."""

    taskId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    errorName: str | None = None
    errorMessage: str | None = None


@message("CommandsReply")
@attrs.frozen
class CommandsReply:
    """Reply of ``requestCommands``: the shell commands for the microkernel to run."""

    identifier: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    """The node id."""
    tasks: list[dict[str, Any]] = attrs.Factory(list)


@message("BootProfile")
@attrs.frozen
class BootProfile:
    """Reply of ``getBootProfile``: the TFTP boot file and, optionally, the profile URL."""

    bootfile: str
    profileUrl: str | None = None


@message("ActiveTask")
@attrs.frozen
class ActiveTask:
    """Reply of ``activeTaskExists``: the task running against the node."""

    taskId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    nodeId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    options: dict[str, Any] = attrs.Factory(dict)
    context: dict[str, Any] = attrs.Factory(dict)


@message("PollerCacheRequest")
@attrs.frozen
class PollerCacheRequest:
    """Request of ``requestPollerCache``; ``latestOnly`` asks for the newest entry alone."""

    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    latestOnly: bool = False


@message("PollerCacheOptions")
@attrs.frozen
class PollerCacheOptions:
    """The ``options`` of RackHD's ``requestPollerCache``."""

    latestOnly: bool = False


@message("RackhdPollerCacheRequest")
@attrs.frozen
class RackhdPollerCacheRequest:
    """RackHD's ``requestPollerCache``: ``{value: <pollerId>, options: {latestOnly?}}``."""

    value: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    options: PollerCacheOptions | None = None


class BadPollerCacheRequest(ValueError):
    """A ``requestPollerCache`` payload of neither accepted shape."""

    status = 400


POLLER_CACHE_SHAPES = (
    "requestPollerCache takes PollerCacheRequest {pollerId, latestOnly?} "
    "or RackHD's {value: <pollerId>, options?: {latestOnly?}}"
)


def poller_cache_request(payload: object, codec: Codec) -> PollerCacheRequest:
    """``payload`` as a ``PollerCacheRequest``, whether ours or RackHD's shape.

    ``BadPollerCacheRequest`` (a 400) says which shapes are taken and what is wrong.
    A ``Result`` envelope holds only ``value``: its ``options`` do not reach here.
    """
    if isinstance(payload, PollerCacheRequest):
        return payload
    if isinstance(payload, Result):
        payload = {"value": payload.value}
    if not isinstance(payload, dict):
        raise BadPollerCacheRequest(f"{POLLER_CACHE_SHAPES}, not {type(payload).__name__}")
    try:
        if "pollerId" in payload or "value" not in payload:
            return codec.convert(payload, PollerCacheRequest)
        rackhd = codec.convert(payload, RackhdPollerCacheRequest)
    except ValueError as exc:
        raise BadPollerCacheRequest(f"{POLLER_CACHE_SHAPES}: {exc}") from None
    latest = rackhd.options.latestOnly if rackhd.options is not None else False
    return PollerCacheRequest(rackhd.value, latest)


@message("PollerCacheEntry")
@attrs.frozen
class PollerCacheEntry:
    """One cached poller result."""

    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    timestamp: str
    result: Any


@message("IpmiCommand")
@attrs.frozen
class IpmiCommand:
    """Command ``ipmi.command.<command>.<graphid>``; ``obmRef`` names the credentials."""

    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    nodeId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    command: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    obmRef: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    options: dict[str, Any] = attrs.Factory(dict)


@message("IpmiCommandResult")
@attrs.frozen
class IpmiCommandResult:
    """Event ``ipmi.command.<command>.result.<graphid>``: parsed output or an error."""

    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    nodeId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    command: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    result: Any
    timestamp: str
    error: str | None = None


@message("SnmpCommand")
@attrs.frozen
class SnmpCommand:
    """Command ``run.snmp.command.<graphid>``; ``communityRef`` names the community."""

    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    nodeId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    host: str
    communityRef: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    oids: list[str] = attrs.Factory(list)
    options: dict[str, Any] = attrs.Factory(dict)


@message("SnmpCommandResult")
@attrs.frozen
class SnmpCommandResult:
    """Event ``snmp.command.result.<graphid>``: the values read or an error."""

    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    nodeId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    result: Any
    timestamp: str
    error: str | None = None


@message("PollerAlert")
@attrs.frozen
class PollerAlert:
    """Event ``poller.alert.<graphid>``: a poll matched an alert rule or a state changed."""

    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    nodeId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    kind: AlertKind
    severity: Severity
    message: str
    timestamp: str
    data: dict[str, Any] = attrs.Factory(dict)


RUN = KeyDef(
    NAME, "run.{taskid}", Kind.COMMAND, RunTask, stub="run", seed="run.[taskid]", doc="run a task"
)
CANCEL = KeyDef(
    NAME,
    "cancel.{taskid}",
    Kind.COMMAND,
    CancelTask,
    stub="cancel",
    seed="cancel.[taskid]",
    doc="cancel a running task",
)
REQUEST_PROFILE = KeyDef(
    NAME,
    "methods.requestProfile.{id}",
    Kind.RPC,
    None,
    stub="request_profile",
    seed="methods.requestProfile.[id]",
    doc="the node's boot profile file name; id is the node id",
)
REQUEST_PROPERTIES = KeyDef(
    NAME,
    "methods.requestProperties.{id}",
    Kind.RPC,
    None,
    stub="request_properties",
    seed="methods.requestProperties.[id]",
    doc="the rendered options of the node's active job; id is the node id",
)
REQUEST_COMMANDS = KeyDef(
    NAME,
    "methods.requestCommands.{id}",
    Kind.RPC,
    None,
    CommandsReply,
    stub="request_commands",
    seed="methods.requestCommands.[id]",
    doc="the commands for the node's microkernel, or None once sent; id is the node id",
)
RESPOND_COMMANDS = KeyDef(
    NAME,
    "methods.respondCommands.{id}",
    Kind.COMMAND,
    Result,
    stub="respond_commands",
    seed="methods.respondCommands.[id]",
    doc="the microkernel's command results, as Result {value: body}; id is the node id",
)
GET_BOOT_PROFILE = KeyDef(
    NAME,
    "methods.getBootProfile.{nodeid}",
    Kind.RPC,
    None,
    BootProfile,
    stub="get_boot_profile",
    seed="methods.getBootProfile.[nodeid]",
    doc="the TFTP boot file (and profile URL) for the node",
)
ACTIVE_TASK_EXISTS = KeyDef(
    NAME,
    "methods.activeTaskExists.{nodeid}",
    Kind.RPC,
    None,
    ActiveTask,
    stub="active_task_exists",
    seed="methods.activeTaskExists.[nodeId]",
    doc="the task running against the node; no responder (or None) means none",
)
REQUEST_POLLER_CACHE = KeyDef(
    NAME,
    "methods.requestPollerCache",
    Kind.RPC,
    PollerCacheRequest,
    stub="request_poller_cache",
    seed="methods.requestPollerCache",
    doc="a poller's cached results: a list of PollerCacheEntry (RackHD's {value, options} too)",
)
IPMI_COMMAND = KeyDef(
    NAME,
    "ipmi.command.{command}.{graphid}",
    Kind.COMMAND,
    IpmiCommand,
    stub="ipmi_command",
    seed="ipmi.command.[command].[graphid]",
    doc="run one IPMI poll (power, sel, sdr, chassis, ...)",
)
IPMI_COMMAND_RESULT = KeyDef(
    NAME,
    "ipmi.command.{command}.result.{graphid}",
    Kind.EVENT,
    IpmiCommandResult,
    stub="ipmi_command_result",
    seed="ipmi.command.[command].result.[graphid]",
    doc="the outcome of one IPMI poll",
)
RUN_SNMP_COMMAND = KeyDef(
    NAME,
    "run.snmp.command.{graphid}",
    Kind.COMMAND,
    SnmpCommand,
    stub="run_snmp_command",
    seed="run.snmp.command.[graphid]",
    doc="run one SNMP poll",
)
SNMP_COMMAND_RESULT = KeyDef(
    NAME,
    "snmp.command.result.{graphid}",
    Kind.EVENT,
    SnmpCommandResult,
    stub="snmp_command_result",
    seed="snmp.command.result.[graphid]",
    doc="the outcome of one SNMP poll",
)
POLLER_ALERT = KeyDef(
    NAME,
    "poller.alert.{graphid}",
    Kind.EVENT,
    PollerAlert,
    stub="poller_alert",
    seed="poller.alert.[graphid]",
    doc="a poll matched an alert rule or a watched state changed",
)


def _same(field: str, in_key: str, in_payload: str) -> None:
    """Refuse a payload that names another target than its routing key (a misroute)."""
    if in_key != in_payload:
        raise ValueError(
            f"the routing key names {field} {in_key!r} but the payload names {in_payload!r}"
        )


class TaskClient(Client):
    """Talks to tasks, jobs and pollers: ``await TaskClient(rt).request_profile(node_id)``."""

    async def run(self, task_id: str, task: RunTask) -> None:
        """Tell whoever serves ``task_id`` to run it; ``task.taskId`` must be ``task_id``."""
        _same("taskId", check_id(task_id, "taskid"), task.taskId)
        await self._publish(RUN, task, taskid=task_id)

    async def cancel(
        self, task_id: str, error_name: str | None = None, error_message: str | None = None
    ) -> None:
        """Cancel a task, naming the error that caused it if there is one."""
        await self._publish(CANCEL, CancelTask(task_id, error_name, error_message), taskid=task_id)

    async def request_profile(self, node_id: str) -> str:
        """The boot profile file name the node's active job wants (``linux.ipxe``)."""
        profile: str = await self._call(REQUEST_PROFILE, {}, str, id=node_id)
        return profile

    async def request_properties(self, node_id: str) -> dict[str, Any]:
        """The rendered options of the node's active job."""
        properties: dict[str, Any] = await self._call(
            REQUEST_PROPERTIES, {}, dict[str, Any], id=node_id
        )
        return properties

    async def request_commands(self, node_id: str) -> CommandsReply | None:
        """The commands for the node's microkernel; ``None`` once they were handed out."""
        reply: CommandsReply | None = await self._call(
            REQUEST_COMMANDS, {}, CommandsReply | None, id=node_id
        )
        return reply

    async def respond_commands(self, node_id: str, body: dict[str, Any]) -> None:
        """Pass the microkernel's posted results to the node's job."""
        await self._publish(RESPOND_COMMANDS, Result(body), id=node_id)

    async def get_boot_profile(self, node_id: str) -> BootProfile:
        """The TFTP boot file (and profile URL) for the node.

        A responder may also reply with the boot file's name alone, as RackHD's
        protocol would have (``Result {value: "monorail.ipxe"}``).
        """
        reply: BootProfile | str = await self._call(
            GET_BOOT_PROFILE, {}, BootProfile | str, nodeid=node_id
        )
        return BootProfile(reply) if isinstance(reply, str) else reply

    async def active_task_exists(self, node_id: str) -> ActiveTask | None:
        """The task running against the node, or ``None`` when there is none."""
        try:
            reply: ActiveTask | None = await self._call(
                ACTIVE_TASK_EXISTS, {}, ActiveTask | None, nodeid=node_id
            )
        except NoResponder:
            return None
        return reply

    async def request_poller_cache(
        self, poller_id: str, latest_only: bool = False
    ) -> list[PollerCacheEntry]:
        """A poller's cached results, oldest first (only the newest with ``latest_only``)."""
        entries: list[PollerCacheEntry] = await self._call(
            REQUEST_POLLER_CACHE,
            PollerCacheRequest(poller_id, latest_only),
            list[PollerCacheEntry],
        )
        return entries

    async def ipmi_command(self, command: str, graph_id: str, msg: IpmiCommand) -> None:
        """Ask the IPMI executor of the poller graph to run one poll; ``msg.command`` is
        ``command``."""
        _same("command", check_id(command, "command"), msg.command)
        await self._publish(IPMI_COMMAND, msg, command=command, graphid=graph_id)

    async def ipmi_command_result(
        self, command: str, graph_id: str, result: IpmiCommandResult
    ) -> None:
        """Announce the outcome of an IPMI poll; ``result.command`` is ``command``."""
        _same("command", check_id(command, "command"), result.command)
        await self._publish(IPMI_COMMAND_RESULT, result, command=command, graphid=graph_id)

    async def run_snmp_command(self, graph_id: str, msg: SnmpCommand) -> None:
        """Ask the SNMP executor of the poller graph to run one poll."""
        await self._publish(RUN_SNMP_COMMAND, msg, graphid=graph_id)

    async def snmp_command_result(self, graph_id: str, result: SnmpCommandResult) -> None:
        """Announce the outcome of an SNMP poll."""
        await self._publish(SNMP_COMMAND_RESULT, result, graphid=graph_id)

    async def poller_alert(self, graph_id: str, alert: PollerAlert) -> None:
        """Raise a poller alert."""
        await self._publish(POLLER_ALERT, alert, graphid=graph_id)


EXCHANGE = ExchangeDef(
    NAME,
    "Task",
    "RPC mechanism for tasks to interrogate or interact with workflows (task-graphs)",
    (
        RUN,
        CANCEL,
        REQUEST_PROFILE,
        REQUEST_PROPERTIES,
        REQUEST_COMMANDS,
        RESPOND_COMMANDS,
        GET_BOOT_PROFILE,
        ACTIVE_TASK_EXISTS,
        REQUEST_POLLER_CACHE,
        IPMI_COMMAND,
        IPMI_COMMAND_RESULT,
        RUN_SNMP_COMMAND,
        SNMP_COMMAND_RESULT,
        POLLER_ALERT,
    ),
    TaskClient,
)
