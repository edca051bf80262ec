"""``on.scheduler``: RPC mechanism for scheduling tasks within a workflow to run.

The scheduler admits tasks to run under its concurrency limits. RackHD's 2015
graph published ``schedule {taskId, taskName, overrides}`` and got no answer;
here ``schedule`` is a call, with payloads defined here:

* ``ScheduleRequest {taskId, taskName, graphId, overrides, timeout}``: ``graphId``
  names the task's graph, ``overrides`` are options that replace the task's
  own, ``timeout`` is how many seconds the task may run once started (``None``:
  the scheduler's default; RackHD's was 24 h). Past it the task is cancelled.
* ``ScheduleReply {taskId, admitted, position}``: ``admitted`` is true when the
  task was started at once (``position`` 0); otherwise it was queued and waits
  at ``position`` (1 = next to start). The scheduler starts a task by sending
  ``run.<taskid>`` on ``on.task``; its end is ``task.finished.<taskid>`` on
  ``on.events``.
* Ids are checked like ids in keys, ``timeout`` must be above 0 and
  ``position`` not negative, whether the payload is built or decoded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from runtime import message

from ..convention import ID_FIELD, Client, ExchangeDef, KeyDef, Kind, check_id, valid_id

NAME = "on.scheduler"


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
        raise ValueError(
            f"{attribute.name} must be a number of seconds above 0, got {value!r}", attribute, value
        )


@message("ScheduleRequest")
@attrs.frozen
class ScheduleRequest:
    """Request of ``schedule``: run this task when the limits allow."""

    taskId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    taskName: str
    graphId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    overrides: dict[str, Any] = attrs.Factory(dict)
    timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    """Seconds the task may run (more than 0); ``None`` for the scheduler's default."""


@message("ScheduleReply")
@attrs.frozen
class ScheduleReply:
    """Reply of ``schedule``: started at once, or queued at ``position`` (1 = next)."""

    taskId: str = attrs.field(validator=valid_id, metadata=ID_FIELD)
    admitted: bool
    position: int = attrs.field(default=0, validator=attrs.validators.ge(0))


SCHEDULE = KeyDef(
    NAME,
    "schedule",
    Kind.RPC,
    ScheduleRequest,
    ScheduleReply,
    stub="schedule",
    seed="schedule",
    doc="admit a task to run, at once or after the tasks queued before it",
)


class SchedulerClient(Client):
    """Calls the scheduler: ``reply = await scheduler.schedule(task_id, name, graph_id)``."""

    async def schedule(
        self,
        task_id: str,
        task_name: str,
        graph_id: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        task_timeout: float | None = None,
    ) -> ScheduleReply:
        """Ask to run a task; ``task_timeout`` limits its run time in seconds."""
        request = ScheduleRequest(
            check_id(task_id, "taskId"),
            task_name,
            check_id(graph_id, "graphId"),
            dict(overrides or {}),
            task_timeout,
        )
        reply: ScheduleReply = await self._call(SCHEDULE, request, ScheduleReply)
        return reply


EXCHANGE = ExchangeDef(
    NAME,
    "Scheduler",
    "RPC mechanism for scheduling tasks within a workflow to run",
    (SCHEDULE,),
    SchedulerClient,
)
