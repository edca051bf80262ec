"""The pollers' pure logic: backoff and reachability, alert detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.pollers.alerts import AlertRule, PowerWatch, SensorWatch, match_rules
from actors.pollers.schedule import MAX_BACKOFF, Change, PollSchedule
from protocols.ipmi import SensorReading, SensorStatus, Thresholds

STATUSES = list(SensorStatus)


def temperature(status: SensorStatus, value: float = 40.0) -> SensorReading:
    return SensorReading(
        name="CPU Temp",
        number=1,
        sensor_type="Temperature",
        value=value,
        units="C",
        status=status,
        thresholds=Thresholds(upper_non_critical=80, upper_critical=90),
    )


def test_backoff_doubles_up_to_an_hour_and_success_resets_it() -> None:
    schedule = PollSchedule(interval=60)
    due, change = schedule.failed(0)
    assert (due, change) == (120, Change.BECAME_INACCESSIBLE)
    assert schedule.failed(0) == (240, Change.NONE)
    for _ in range(20):
        due, _ = schedule.failed(0)
    assert due == MAX_BACKOFF
    assert schedule.succeeded(1000) == (1060, Change.BECAME_ACCESSIBLE)
    assert schedule.succeeded(1060) == (1120, Change.NONE)


@given(st.lists(st.booleans(), max_size=60))
def test_one_reachability_change_per_flip(outcomes: list[bool]) -> None:
    schedule = PollSchedule(interval=15)
    accessible = True
    for ok in outcomes:
        due, change = schedule.succeeded(0) if ok else schedule.failed(0)
        flipped = ok != accessible
        assert (change is not Change.NONE) == flipped
        accessible = ok
        assert 0 < due <= MAX_BACKOFF


@given(st.lists(st.sampled_from(STATUSES), max_size=40))
def test_a_sensor_alerts_once_per_condition_and_clears_once(statuses: list[SensorStatus]) -> None:
    watch = SensorWatch()
    current = SensorStatus.OK
    for status in statuses:
        alerts = watch.update([temperature(status)])
        if status is SensorStatus.NOT_AVAILABLE or status == current:
            assert alerts == []
            continue
        (alert,) = alerts
        if status is SensorStatus.OK:
            assert alert.data["inCondition"] is False and alert.severity == "information"
        else:
            assert alert.data["inCondition"] is True
            assert alert.severity == (
                "warning" if status is SensorStatus.NON_CRITICAL else "critical"
            )
        current = status


def test_threshold_crossing_alerts_once_and_clears_once() -> None:
    watch = SensorWatch()
    assert watch.update([temperature(SensorStatus.OK)]) == []
    (crossed,) = watch.update([temperature(SensorStatus.CRITICAL, 95)])
    assert crossed.severity == "critical" and "critical" in crossed.message
    assert watch.update([temperature(SensorStatus.CRITICAL, 96)]) == []
    (cleared,) = watch.update([temperature(SensorStatus.OK, 50)])
    assert cleared.data["inCondition"] is False
    assert watch.update([temperature(SensorStatus.OK, 45)]) == []


def test_discrete_states_alert_when_asserted_and_cleared() -> None:
    watch = SensorWatch()

    def psu(*states: str) -> SensorReading:
        return SensorReading("PSU1", 5, "Power Supply", None, "", SensorStatus.OK, states=states)

    assert [a.message for a in watch.update([psu("Presence detected")])] == [
        "PSU1: Presence detected asserted"
    ]
    messages = [a.message for a in watch.update([psu("Presence detected", "Failure detected")])]
    assert messages == ["PSU1: Failure detected asserted"]
    assert [a.message for a in watch.update([psu("Presence detected")])] == [
        "PSU1: Failure detected cleared"
    ]


def test_power_changes_alert() -> None:
    watch = PowerWatch()
    assert watch.update(True) == []
    assert watch.update(True) == []
    (alert,) = watch.update(False)
    assert alert.data == {"states": {"last": "on", "current": "off"}}


def test_rules_match_exact_strings_and_regexes() -> None:
    rules = [
        AlertRule.from_config({"sensorType": "Temperature", "event": "/Upper Critical/",
                               "severity": "critical"}),
        AlertRule.from_config({"sensorName": "PSU1", "action": "warning"}),
    ]  # fmt: skip
    entries = [
        {"sensorType": "Temperature", "event": "Upper Critical going high", "sensorName": "T1"},
        {"sensorType": "Temperature", "event": "Lower Non-critical", "sensorName": "T1"},
        {"sensorType": "Power Supply", "event": "Failure", "sensorName": "PSU1"},
        {"sensorType": None, "event": None},
    ]
    alerts = match_rules("sel", rules, entries)
    assert [(a.severity, a.data["sensorName"]) for a in alerts] == [
        ("critical", "T1"),
        ("warning", "PSU1"),
    ]


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"severity": "critical"}, "at least one field"),
        ({"event": "x", "severity": "urgent"}, "severity"),
        ({"event": "/(unclosed/"}, "bad alert pattern"),
        ({"event": "x" * 600}, "longer than"),
        ({"event": "/(?<=a)b/"}, "bad alert pattern"),  # look-around: no linear-time match
    ],
)
def test_bad_rules_are_refused(rule: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AlertRule.from_config(rule)


def test_a_catastrophic_pattern_is_matched_by_rule_engine_without_backtracking() -> None:
    """``(a+)+$`` against ``a...ab`` makes a backtracking engine try 2**n paths (Python's
    ``re`` would not finish this one); rule expressions run on RE2, which answers."""
    rule = AlertRule.from_config({"event": "/(a+)+$/"})
    assert match_rules("sel", [rule], [{"event": "a" * 100_000 + "b"}]) == []
    assert len(match_rules("sel", [rule], [{"event": "aaaa"}])) == 1
