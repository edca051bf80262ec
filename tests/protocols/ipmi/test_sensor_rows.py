"""One row of a sensor read becomes a record whatever pyghmi made of it: a sensor that cannot be
decoded is ``NOT_AVAILABLE`` with its reason, and never costs the read of the others."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protocols.ipmi import SensorReading, SensorStatus
from protocols.ipmi._client import _sensor
from protocols.ipmi._decode import Formula

FORMULA = Formula(m=1, b=0.0, result_exponent=0, linearization=0)
GOOD = {"name": "CPU Temp", "type": "Temperature", "value": 41, "units": "°C", "health": 0}

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.one_of(st.integers(), st.text(max_size=4), st.floats()), max_size=3),
)
readings = st.dictionaries(
    st.sampled_from(
        ["name", "type", "value", "units", "health", "unavailable", "states", "state_ids",
         "imprecision", "decode_error"]
    ),
    values,
)  # fmt: skip


@given(st.integers(0, 255), readings, st.binary(max_size=9))
def test_any_row_becomes_a_record(number: int, reading: dict[str, Any], raw: bytes) -> None:
    sensor = _sensor(number, reading, FORMULA, raw)
    assert isinstance(sensor, SensorReading) and sensor.number == number
    if sensor.error is not None:
        assert sensor.status is SensorStatus.NOT_AVAILABLE and sensor.value is None


def test_a_sensor_pyghmi_could_not_decode_is_not_available_with_the_reason() -> None:
    sensor = _sensor(7, {"name": "Fan 2", "decode_error": "KeyError: 9"}, None, None)
    assert (sensor.name, sensor.status, sensor.value) == ("Fan 2", SensorStatus.NOT_AVAILABLE, None)
    assert sensor.error is not None and "KeyError: 9" in sensor.error


def test_thresholds_that_do_not_decode_leave_the_reading_intact() -> None:
    sensor = _sensor(3, GOOD, FORMULA, b"\x3f")  # 1 byte where Get Sensor Thresholds has 7
    assert sensor.error is None and sensor.value == 41.0 and sensor.thresholds is None
    whole = _sensor(3, GOOD, FORMULA, bytes([0x3F, 1, 2, 3, 4, 5, 6]))
    assert whole.thresholds is not None and whole.thresholds.upper_critical == 5.0
