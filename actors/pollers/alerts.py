"""Alert detection, pure: what a poll's result says that deserves an alert.

* ``SensorWatch`` (SDR): a sensor alerts once when it leaves ``ok`` (or moves to
  another bad status) and once when it is back to ``ok``; unreadable sensors are
  ignored, as in RackHD. Discrete sensors alert per state asserted or cleared.
* ``PowerWatch``: the power state changed.
* ``AlertRule``: SEL entries and SNMP values matched against configured rules;
  each field is an exact string or a ``/regular expression/``, and the rule's
  severity is the alert's (RackHD's ``config.alerts``).

Rules arrive in poller definitions, from any client of the poller service, so
their expressions run on RE2 (``google-re2``): matching takes time linear in the
text whatever the pattern, where Python's backtracking ``re`` can be made to run
for hours by a pattern such as ``(a+)+$``. RE2 has no look-around and no
back-references; a pattern using them is refused when the definition is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs
import re2

from protocols.ipmi import SensorReading, SensorStatus

from ..exchanges.task import AlertKind, Severity

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the caller's error, not a log line

MAX_PATTERN = 512
"""Longest rule pattern accepted (rules come from poller definitions, which any
client of the poller service may send over the bus)."""


@attrs.frozen
class Alert:
    """An alert to publish as ``poller.alert.<graphid>``."""

    kind: AlertKind
    severity: Severity
    message: str
    data: dict[str, Any] = attrs.Factory(dict)


_SEVERITY: dict[SensorStatus, Severity] = {
    SensorStatus.NON_CRITICAL: "warning",
    SensorStatus.CRITICAL: "critical",
    SensorStatus.NON_RECOVERABLE: "critical",
}


@attrs.define
class SensorWatch:
    """Remembers which sensors are in a condition, to alert on entering and clearing.

    Sensors are told apart by name and number: BMCs often give several the same name.
    """

    in_condition: dict[tuple[str, int], SensorStatus] = attrs.Factory(dict)
    asserted: dict[tuple[str, int], frozenset[str]] = attrs.Factory(dict)

    def update(self, readings: Iterable[SensorReading]) -> list[Alert]:
        """The alerts this round of readings raises."""
        alerts: list[Alert] = []
        for reading in readings:
            if not reading.available:
                continue
            if reading.thresholds is not None or reading.value is not None:
                alerts.extend(self._threshold(reading))
            else:
                alerts.extend(self._discrete(reading))
        return alerts

    def _threshold(self, reading: SensorReading) -> list[Alert]:
        key = (reading.name, reading.number)
        was = self.in_condition.get(key)
        now = reading.status
        data = {"sensor": reading.name, "value": reading.value, "units": reading.units}
        if now is SensorStatus.OK:
            if was is None:
                return []
            del self.in_condition[key]
            message = f"{reading.name} is back to ok ({reading.value} {reading.units})"
            return [Alert("sdr", "information", message, {**data, "inCondition": False})]
        if now == was:
            return []
        self.in_condition[key] = now
        message = f"{reading.name} is {now.name.lower().replace('_', '-')} "
        message += f"({reading.value} {reading.units})"
        return [Alert("sdr", _SEVERITY.get(now, "warning"), message, {**data, "inCondition": True})]

    def _discrete(self, reading: SensorReading) -> list[Alert]:
        key = (reading.name, reading.number)
        before = self.asserted.get(key, frozenset())
        now = frozenset(reading.states)
        self.asserted[key] = now
        alerts = [
            Alert("sdr", "information", f"{reading.name}: {state} asserted",
                  {"sensor": reading.name, "state": state, "asserted": True})
            for state in sorted(now - before)
        ]  # fmt: skip
        alerts += [
            Alert("sdr", "information", f"{reading.name}: {state} cleared",
                  {"sensor": reading.name, "state": state, "asserted": False})
            for state in sorted(before - now)
        ]  # fmt: skip
        return alerts


@attrs.define
class PowerWatch:
    """Remembers the last power state seen, to alert when it changes."""

    last: bool | None = None

    def update(self, on: bool) -> list[Alert]:
        """An alert if the power state differs from the last one seen."""
        last, self.last = self.last, on
        if last is None or last == on:
            return []
        states = {"last": "on" if last else "off", "current": "on" if on else "off"}
        message = f"chassis power went {states['current']}"
        return [Alert("power", "information", message, {"states": states})]


class Pattern(Protocol):
    """A compiled expression: ``search`` returns a match or ``None``."""

    def search(self, text: str) -> object | None: ...


def _compile(pattern: str) -> Pattern | str:
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"alert pattern longer than {MAX_PATTERN} characters")
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            compiled: Pattern = re2.compile(pattern[1:-1], _RE2_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode(errors="replace")
            raise ValueError(f"bad alert pattern {pattern!r}: {reason}") from None
        return compiled
    return pattern


@attrs.frozen
class AlertRule:
    """Match when every field matches: an exact string, or ``/regex/`` searched."""

    fields: Mapping[str, Pattern | str]
    severity: Severity = "warning"

    @classmethod
    def from_config(cls, rule: Mapping[str, Any]) -> AlertRule:
        """A rule from ``{"field": "value" or "/regex/", ..., "severity": "critical"}``."""
        severity = rule.get("severity", rule.get("action", "warning"))
        if severity not in ("critical", "warning", "information"):
            raise ValueError(
                f"alert severity must be critical, warning or information: {severity!r}"
            )
        fields = {k: _compile(str(v)) for k, v in rule.items() if k not in ("severity", "action")}
        if not fields:
            raise ValueError("an alert rule needs at least one field to match")
        return cls(fields, severity)

    def matches(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` (field -> value) satisfies every field of the rule."""
        for name, expected in self.fields.items():
            if name not in values or values[name] is None:
                return False
            text = str(values[name])
            if isinstance(expected, str):
                if text != expected:
                    return False
            elif expected.search(text) is None:
                return False
        return True


def match_rules(
    kind: AlertKind, rules: Iterable[AlertRule], items: Iterable[Mapping[str, Any]]
) -> list[Alert]:
    """One alert per item per matching rule."""
    alerts = []
    for item in items:
        for rule in rules:
            if rule.matches(item):
                summary = ", ".join(f"{k}={item[k]}" for k in rule.fields)
                alerts.append(
                    Alert(kind, rule.severity, f"{kind} rule matched: {summary}", dict(item))
                )
    return alerts
