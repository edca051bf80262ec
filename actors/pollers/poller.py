"""``PollerActor``: one actor per poller, polling a BMC or an SNMP agent on its own timer.

Each round publishes the command on ``on.task`` (``ipmi.command.<command>.<graph>``
or ``run.snmp.command.<graph>``, credentials by reference only), runs it with a
deadline, publishes the result (``ipmi.command.<command>.result.<graph>`` or
``snmp.command.result.<graph>``), then any alerts (``poller.alert.<graph>``) and
reachability changes (``node.(in)accessible...``). The next round is a timer
(``send_after``): one interval later, or later still after failures (see
``schedule``). An idle poller holds no task between rounds.

A failing poll never crashes the actor: its error, scrubbed of every secret,
is the result's ``error``. Alerts that cannot be published (the bus is away) wait
in a bounded buffer (``PollerTools.max_pending_alerts``) and go out in order on a
later round; when it is full the oldest are dropped, counted and logged. A SEL
poller's first read only sets its baseline: entries already logged are not news.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from protocols import ipmi, snmp
from runtime import Actor, Timer, handler, message

from ..exchanges.events import EventsClient, NodeAccessibility
from ..exchanges.task import (
    IpmiCommand,
    IpmiCommandResult,
    PollerAlert,
    SnmpCommand,
    SnmpCommandResult,
    TaskClient,
)
from .alerts import Alert, AlertRule, PowerWatch, SensorWatch, match_rules
from .credentials import CredentialStore
from .definitions import PollerDefinition
from .results import to_json
from .schedule import Change, PollSchedule


@message("PollerTick")
@attrs.frozen
class Tick:
    """Time for the next round; ``generation`` tells stale timers from current ones."""

    generation: int


@message("PausePoller")
@attrs.frozen
class Pause:
    """Stop polling until resumed."""


@message("ResumePoller")
@attrs.frozen
class Resume:
    """Poll now, then on the interval again."""


@attrs.define
class PollerTools:
    """What every poller of a runtime shares: clients, credentials, the graph id, limits.

    The clients are replaced when the task holding them restarts (``start_pollers``);
    pollers read them at each round.
    """

    credentials: CredentialStore
    graph_id: str
    ipmi: ipmi.IpmiClient | None = None
    snmp: snmp.SnmpClient | None = None
    timeout: float = 10.0
    clock: Callable[[], float] = attrs.field(factory=lambda: _wall_clock)
    """Wall-clock time for result timestamps (poll timing uses Trio's clock)."""
    max_pending_alerts: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    """Alerts each poller keeps while it cannot publish them; past that, the oldest go."""


def _wall_clock() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


class PollFailed(Exception):
    """A poll could not be made (the reason is safe to publish)."""


class PollerActor(Actor):
    """Polls on its own timer; ``Pause``/``Resume``/``PollNow`` control it."""

    def __init__(self, definition: PollerDefinition, tools: PollerTools) -> None:
        self.definition = definition
        self.tools = tools
        self.schedule = PollSchedule(definition.interval)
        self.rules = [AlertRule.from_config(rule) for rule in definition.alerts]
        self.sensors = SensorWatch()
        self.power = PowerWatch()
        self.last_sel_id: int | None = None
        self.sel_started = False  # the first SEL read only sets the baseline
        self.generation = 0
        self.timer: Timer | None = None
        self.rounds = 0
        self.due = 0.0  # when the next round is due (Trio's clock)
        self.publish_failing = False
        self.pending_alerts: deque[PollerAlert] = deque()
        """Alerts not published yet (the bus was away), oldest first."""
        self.alerts_dropped = 0  # alerts dropped from a full ``pending_alerts``, in all
        self.dropping = 0  # dropped since the buffer last emptied

    async def on_start(self) -> None:
        if not self.definition.paused:
            self._schedule(0.0)

    async def on_stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _schedule(self, delay: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.generation += 1
        self.timer = self.ctx.send_after(delay, Tick(self.generation))

    def pause(self) -> None:
        """Stop polling until ``resume``."""
        self.definition = attrs.evolve(self.definition, paused=True)
        if self.timer is not None:
            self.timer.cancel()
        self.generation += 1

    def resume(self) -> None:
        """Poll now, then on the interval again."""
        self.definition = attrs.evolve(self.definition, paused=False)
        self._schedule(0.0)

    @handler(control=True)
    async def on_pause(self, request: Pause) -> None:
        self.pause()

    @handler(control=True)
    async def on_resume(self, request: Resume) -> None:
        self.resume()

    @handler()
    async def tick(self, tick: Tick) -> None:
        if tick.generation != self.generation or self.definition.paused:
            return
        await self.poll_once()

    async def poll_once(self) -> None:
        """One round: command, result, alerts, reachability, next timer.

        Nothing here raises: a poll that fails is the result's ``error``, and a publish
        that fails (the bus is away) is logged; the next round is scheduled either way.
        """
        try:
            await self._round()
        finally:
            if not self.definition.paused:
                self._schedule(max(0.0, self.due - trio.current_time()))

    async def _round(self) -> None:
        d, tools = self.definition, self.tools
        tasks = TaskClient(self.ctx)
        self.rounds += 1
        if d.type == "ipmi":
            command = IpmiCommand(d.id, d.nodeId, d.command, d.credentialsRef)
            await self._publishing(tasks.ipmi_command(d.command, tools.graph_id, command))
        else:
            oids = list(d.oids)
            command_ = SnmpCommand(d.id, d.nodeId, d.host, d.credentialsRef, oids)
            await self._publishing(tasks.run_snmp_command(tools.graph_id, command_))
        result: Any = None
        error: str | None = None
        alerts: list[Alert] = []
        try:
            with trio.fail_after(tools.timeout):
                result, alerts = await self._run()
            result = to_json(result)
        except trio.TooSlowError:
            error = f"no answer from {d.host}:{d.port} within {tools.timeout} s"
        except Exception as exc:
            error = tools.credentials.scrub(f"{type(exc).__name__}: {exc}")
        now = tools.clock()
        stamp = _iso(now)
        self.due, change = (
            self.schedule.succeeded(trio.current_time())
            if error is None
            else self.schedule.failed(trio.current_time())
        )
        if d.type == "ipmi":
            outcome = IpmiCommandResult(d.id, d.nodeId, d.command, result, stamp, error)
            published = self._publishing(
                tasks.ipmi_command_result(d.command, tools.graph_id, outcome)
            )
        else:
            published = self._publishing(
                tasks.snmp_command_result(
                    tools.graph_id, SnmpCommandResult(d.id, d.nodeId, result, stamp, error)
                )
            )
        # Alerts wait while the bus is away; older ones go out first (and before new ones
        # take their place in a full buffer).
        can_send = await published and await self._flush_alerts(tasks)
        for alert in alerts:
            self._keep_alert(PollerAlert(d.id, d.nodeId, alert.kind, alert.severity,
                                         alert.message, stamp, to_json(alert.data)))  # fmt: skip
        if can_send:
            await self._flush_alerts(tasks)
        if change is not Change.NONE:
            reason = error or f"{d.command} poll answered"
            if not await self._publishing(self._announce(change, reason, stamp)):
                # Announce the change on a later round instead of never.
                self.schedule.accessible = change is not Change.BECAME_ACCESSIBLE

    def _keep_alert(self, alert: PollerAlert) -> None:
        """Queue an alert to publish; a full queue drops its oldest (counted, logged)."""
        if len(self.pending_alerts) >= self.tools.max_pending_alerts:
            self.pending_alerts.popleft()
            if not self.dropping:
                self.ctx.log.warning(
                    "poller %s cannot publish its alerts: keeping the last %d, dropping older",
                    self.definition.id, self.tools.max_pending_alerts,
                )  # fmt: skip
            self.dropping += 1
            self.alerts_dropped += 1
        self.pending_alerts.append(alert)

    async def _flush_alerts(self, tasks: TaskClient) -> bool:
        """Publish the queued alerts, oldest first, until one fails (it stays queued);
        whether all went out."""
        while self.pending_alerts:
            alert = self.pending_alerts[0]
            if not await self._publishing(tasks.poller_alert(self.tools.graph_id, alert)):
                return False
            self.pending_alerts.popleft()
        if self.dropping:
            self.ctx.log.warning(
                "poller %s dropped %d alerts it could not publish (buffer of %d)",
                self.definition.id, self.dropping, self.tools.max_pending_alerts,
            )  # fmt: skip
            self.dropping = 0
        return True

    async def _publishing(self, publish: Awaitable[None]) -> bool:
        """Await one publish; a failure is logged once per outage, never raised."""
        try:
            await publish
        except Exception as exc:
            if not self.publish_failing:
                reason = self.tools.credentials.scrub(f"{type(exc).__name__}: {exc}")
                self.ctx.log.warning("poller %s cannot publish: %s", self.definition.id, reason)
            self.publish_failing = True
            return False
        if self.publish_failing:
            self.ctx.log.info("poller %s publishes again", self.definition.id)
        self.publish_failing = False
        return True

    async def _announce(self, change: Change, reason: str, stamp: str) -> None:
        event = NodeAccessibility(self.definition.nodeId, self.definition.id, reason, stamp)
        events = EventsClient(self.ctx)
        if change is Change.BECAME_ACCESSIBLE:
            await events.node_accessible(event)
        else:
            await events.node_inaccessible(event)

    async def _run(self) -> tuple[Any, list[Alert]]:
        if self.definition.type == "ipmi":
            return await self._run_ipmi()
        return await self._run_snmp()

    async def _run_ipmi(self) -> tuple[Any, list[Alert]]:
        client = self.tools.ipmi
        if client is None:
            raise PollFailed("no IPMI client in this runtime")
        d = self.definition
        bmc = ipmi.BmcTarget(d.host, self.tools.credentials.ipmi(d.credentialsRef), d.port)
        if d.command == "power":
            state = await client.get_power(bmc)
            return {"power": str(state)}, self.power.update(state.on)
        if d.command == "chassis":
            status = await client.get_chassis_status(bmc)
            return to_json(status), self.power.update(status.power_on)
        if d.command == "sdr":
            sensors = await client.get_sensors(bmc)
            return to_json(sensors), self.sensors.update(sensors)
        return await self._run_sel(client, bmc)

    async def _run_sel(
        self, client: ipmi.IpmiClient, bmc: ipmi.BmcTarget
    ) -> tuple[Any, list[Alert]]:
        """New SEL entries and their alerts; the first read only sets the baseline.

        The log found at the first read is old news (RackHD read the entries after
        ``lastPreviouslyReadSelEntry``): it is neither published nor alerted on. Every
        entry logged afterwards is, including after an empty first read or a clear.
        """
        baseline = not self.sel_started
        if self.last_sel_id is None:
            new, reset = await client.get_sel(bmc), False
            self.last_sel_id = new[-1].record_id if new else None
        else:
            since = await client.get_sel_since(bmc, self.last_sel_id)
            new, reset = since.entries, since.reset
            self.last_sel_id = since.last_record_id  # None after a clear: read it all next
        self.sel_started = True
        if baseline:
            return {"entries": [], "reset": False, "baseline": True}, []
        fields = [_sel_fields(entry) for entry in new]
        alerts = match_rules("sel", self.rules, fields)
        return {"entries": to_json(new), "reset": reset, "baseline": False}, alerts

    async def _run_snmp(self) -> tuple[Any, list[Alert]]:
        client = self.tools.snmp
        if client is None:
            raise PollFailed("no SNMP client in this runtime")
        d = self.definition
        target = snmp.SnmpTarget(d.host, self.tools.credentials.snmp(d.credentialsRef), d.port)
        if d.command == "interfaces":
            interfaces = await client.get_interfaces(target)
            rows = [{**to_json(i), "mac": i.mac} for i in interfaces]
            return rows, match_rules("snmp", self.rules, rows)
        varbinds = await client.get(target, *d.oids)
        values = {str(vb.oid): _snmp_value(vb.value) for vb in varbinds}
        items = [{"oid": oid, "value": value} for oid, value in values.items()]
        return values, match_rules("snmp", self.rules, items)


def _sel_fields(entry: ipmi.SelEntry) -> dict[str, Any]:
    """A SEL entry under the field names alert rules use (RackHD's)."""
    return {
        "recordId": entry.record_id,
        "sensorType": entry.sensor_type_name,
        "sensorName": entry.sensor_name,
        "event": entry.description,
        "severity": entry.severity,
        "asserted": entry.asserted,
    }


def _snmp_value(value: object) -> Any:
    data = to_json(value)
    if isinstance(data, dict) and "value" in data and len(data) == 1:
        return data["value"]
    return data
