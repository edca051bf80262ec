"""``on.events``: one-to-many broadcast of what happened to nodes, tasks and graphs.

Every key ends in the id it is about. A node id is ``EXTERNAL`` (``external``)
when the address an event came from maps to no known node, as in RackHD.
Payloads carry RackHD's field names; RackHD's own shapes are kept where it had
them (``tftp.success``, ``http.response``, ``task.finished``, ``graph.*``,
``sku.assigned``), and ``time`` stays what RackHD sent: elapsed milliseconds as
a string with three decimals (``"12.345"``).

RackHD never defined these payloads, so they are defined here:

* ``tftp.failure.<node>`` (never published by RackHD) carries ``TftpFailure``:
  the fields of ``TftpSuccess`` (``size`` is the bytes sent before the failure)
  plus the TFTP ``errorCode`` (RFC 1350: 0-8; 0 for a timeout; a peer may send
  any 16-bit code) and ``errorMessage``.
* ``dhcp.bind.success.<node>`` (its payload was lost with RackHD's DHCP server)
  carries ``DhcpBindSuccess {mac, ip, leaseExpiresAt, hostname, vendorClass,
  architecture}``: published once a lease is bound; ``leaseExpiresAt`` is epoch
  milliseconds, ``hostname`` is option 12, ``vendorClass`` option 60 and
  ``architecture`` option 93 (``None`` when the client did not send them).
* ``node.accessible.information.<node>.<node>`` and
  ``node.inaccessible.information.<node>.<node>`` (additions, in the form of
  RackHD's external events ``<type>.<action>.<severity>.<typeId>.<nodeId>``)
  carry ``NodeAccessibility {nodeId, pollerId, reason, timestamp}``: a poller
  found a node's BMC reachable again, or unreachable; one event per change.
* Payloads are checked when built or decoded: ids that keys carry
  (``taskId``, ``graphId``, ``nodeId``, ``pollerId``) are routing-key words,
  ports and error codes fit 16 bits, HTTP statuses are 100-599, sizes and
  times since the epoch are not negative.
* ``graph.started`` and ``graph.finished`` always carry ``{graphId, graphName,
  status}`` (RackHD sent ``{}`` or ``{status}`` in its early versions).
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from runtime import message

from ..convention import ID_FIELD, Client, ExchangeDef, KeyDef, Kind, valid_id

NAME = "on.events"

EXTERNAL: Final = "external"
"""The node id of events from an address that maps to no known node."""


_WORD16 = [attrs.validators.ge(0), attrs.validators.le(0xFFFF)]
"""A port, a TFTP error code or a DHCP architecture: 16 bits on the wire."""
_COUNT = attrs.validators.ge(0)
_STATUS = [attrs.validators.ge(100), attrs.validators.le(599)]


@message("TftpSuccess")
@attrs.frozen
class TftpSuccess:
    """Event ``tftp.success.<node>``: a file was served in full."""

    file: str
    remoteAddress: str
    remotePort: int = attrs.field(validator=_WORD16)
    size: int = attrs.field(validator=_COUNT)
    time: str


@message("TftpFailure")
@attrs.frozen
class TftpFailure:
    """Event ``tftp.failure.<node>``: a transfer failed or was aborted."""

    file: str
    remoteAddress: str
    remotePort: int = attrs.field(validator=_WORD16)
    size: int = attrs.field(validator=_COUNT)
    time: str
    errorCode: int = attrs.field(validator=_WORD16)
    """RFC 1350 defines 0-8; a peer may send any 16-bit code."""
    errorMessage: str


@message("HttpResponse")
@attrs.frozen
class HttpResponse:
    """Event ``http.response.<node>`` (and ``http.response`` on ``on.http``)."""

    address: str
    method: str
    url: str
    statusCode: int = attrs.field(validator=_STATUS)
    time: str


@message("DhcpBindSuccess")
@attrs.frozen
class DhcpBindSuccess:
    """Event ``dhcp.bind.success.<node>``: a lease was bound."""

    mac: str
    ip: str
    leaseExpiresAt: int = attrs.field(validator=_COUNT)
    hostname: str | None = None
    vendorClass: str | None = None
    architecture: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_WORD16)
    )


@message("NodeAccessibility")
@attrs.frozen
class NodeAccessibility:
    """Event ``node.(in)accessible.information.<node>.<node>``: reachability changed."""

    nodeId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    pollerId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    reason: str
    timestamp: str


@message("TaskFinished")
@attrs.frozen
class TaskFinished:
    """Event ``task.finished.<task>``: a task reached a final state."""

    taskId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    taskName: str
    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    graphName: str
    state: str
    """``succeeded``, ``failed``, ``cancelled`` or ``timeout``."""
    error: str | None = None
    """The error's stack (or message) when the task did not succeed."""
    context: dict[str, Any] = attrs.Factory(dict)
    terminalOnStates: list[str] = attrs.Factory(list)
    """The states in which this task ends its graph."""


@message("GraphStarted")
@attrs.frozen
class GraphStarted:
    """Event ``graph.started.<graph>``."""

    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    graphName: str
    status: str = "running"


@message("GraphFinished")
@attrs.frozen
class GraphFinished:
    """Event ``graph.finished.<graph>``; ``status`` is succeeded, failed or cancelled."""

    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    graphName: str
    status: str


@message("SkuAssigned")
@attrs.frozen
class SkuAssigned:
    """Event ``sku.assigned.<node>``: the node matched the SKU with this id."""

    sku: str


TFTP_SUCCESS = KeyDef(
    NAME,
    "tftp.success.{nodeid}",
    Kind.EVENT,
    TftpSuccess,
    stub="tftp_success",
    seed="tftp.success.[nodeid]",
    doc="a TFTP transfer finished",
)
TFTP_FAILURE = KeyDef(
    NAME,
    "tftp.failure.{nodeid}",
    Kind.EVENT,
    TftpFailure,
    stub="tftp_failure",
    seed="tftp.failure.[nodeid]",
    doc="a TFTP transfer failed or was aborted",
)
HTTP_RESPONSE = KeyDef(
    NAME,
    "http.response.{nodeid}",
    Kind.EVENT,
    HttpResponse,
    stub="http_response",
    seed="http.response.[nodeid]",
    doc="the HTTP server answered a request",
)
DHCP_BIND_SUCCESS = KeyDef(
    NAME,
    "dhcp.bind.success.{nodeid}",
    Kind.EVENT,
    DhcpBindSuccess,
    stub="dhcp_bind_success",
    seed="dhcp.bind.success.[nodeid]",
    doc="a DHCP lease was bound",
)
TASK_FINISHED = KeyDef(
    NAME,
    "task.finished.{taskid}",
    Kind.EVENT,
    TaskFinished,
    stub="task_finished",
    seed="task.finished.[taskid]",
    doc="a task reached a final state",
)
GRAPH_STARTED = KeyDef(
    NAME,
    "graph.started.{graphid}",
    Kind.EVENT,
    GraphStarted,
    stub="graph_started",
    seed="graph.started.[graphid]",
    doc="a task graph started",
)
GRAPH_FINISHED = KeyDef(
    NAME,
    "graph.finished.{graphid}",
    Kind.EVENT,
    GraphFinished,
    stub="graph_finished",
    seed="graph.finished.[graphid]",
    doc="a task graph finished",
)
SKU_ASSIGNED = KeyDef(
    NAME,
    "sku.assigned.{nodeid}",
    Kind.EVENT,
    SkuAssigned,
    stub="sku_assigned",
    seed="sku.assigned.[nodeid]",
    doc="a node was assigned a SKU",
)

NODE_ACCESSIBLE = KeyDef(
    NAME,
    "node.accessible.information.{nodeid}.{nodeid}",
    Kind.EVENT,
    NodeAccessibility,
    stub="node_accessible",
    doc="addition: a node's BMC answers again",
)
NODE_INACCESSIBLE = KeyDef(
    NAME,
    "node.inaccessible.information.{nodeid}.{nodeid}",
    Kind.EVENT,
    NodeAccessibility,
    stub="node_inaccessible",
    doc="addition: a node's BMC stopped answering",
)


class EventsClient(Client):
    """Publishes events; task and graph ids are taken from the event, node ids are given."""

    async def tftp_success(self, node_id: str, event: TftpSuccess) -> None:
        """Publish ``tftp.success.<node_id>``."""
        await self._publish(TFTP_SUCCESS, event, nodeid=node_id)

    async def tftp_failure(self, node_id: str, event: TftpFailure) -> None:
        """Publish ``tftp.failure.<node_id>``."""
        await self._publish(TFTP_FAILURE, event, nodeid=node_id)

    async def http_response(self, node_id: str, event: HttpResponse) -> None:
        """Publish ``http.response.<node_id>``."""
        await self._publish(HTTP_RESPONSE, event, nodeid=node_id)

    async def dhcp_bind_success(self, node_id: str, event: DhcpBindSuccess) -> None:
        """Publish ``dhcp.bind.success.<node_id>``."""
        await self._publish(DHCP_BIND_SUCCESS, event, nodeid=node_id)

    async def task_finished(self, event: TaskFinished) -> None:
        """Publish ``task.finished.<event.taskId>``."""
        await self._publish(TASK_FINISHED, event, taskid=event.taskId)

    async def graph_started(self, event: GraphStarted) -> None:
        """Publish ``graph.started.<event.graphId>``."""
        await self._publish(GRAPH_STARTED, event, graphid=event.graphId)

    async def graph_finished(self, event: GraphFinished) -> None:
        """Publish ``graph.finished.<event.graphId>``."""
        await self._publish(GRAPH_FINISHED, event, graphid=event.graphId)

    async def sku_assigned(self, node_id: str, event: SkuAssigned) -> None:
        """Publish ``sku.assigned.<node_id>``."""
        await self._publish(SKU_ASSIGNED, event, nodeid=node_id)

    async def node_accessible(self, event: NodeAccessibility) -> None:
        """Publish ``node.accessible.information.<node>.<node>``."""
        await self._publish(NODE_ACCESSIBLE, event, nodeid=event.nodeId)

    async def node_inaccessible(self, event: NodeAccessibility) -> None:
        """Publish ``node.inaccessible.information.<node>.<node>``."""
        await self._publish(NODE_INACCESSIBLE, event, nodeid=event.nodeId)


EXCHANGE = ExchangeDef(
    NAME,
    "Events",
    "One to many broadcast of events applicable to workflows and reactions",
    (
        TFTP_SUCCESS,
        TFTP_FAILURE,
        HTTP_RESPONSE,
        DHCP_BIND_SUCCESS,
        TASK_FINISHED,
        GRAPH_STARTED,
        GRAPH_FINISHED,
        SKU_ASSIGNED,
        NODE_ACCESSIBLE,
        NODE_INACCESSIBLE,
    ),
    EventsClient,
)
