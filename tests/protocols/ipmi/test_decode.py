"""Property tests of the pure core: BMC answers into typed records."""

from __future__ import annotations

import datetime
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.ipmi import (
    BOOT_DEVICES,
    ChassisStatus,
    Formula,
    IdentifyState,
    MalformedResponse,
    RestorePolicy,
    SensorStatus,
    Thresholds,
    convert_raw,
    decode_boot_device,
    decode_chassis_status,
    decode_device_id,
    decode_power_state,
    decode_sel_record,
    decode_sensor_reading,
    decode_thresholds,
    sensor_status,
)
from protocols.ipmi.strategies import (
    chassis_status_data,
    device_id_data,
    sel_records,
    sensor_readings,
    system_event_records,
)

_LAST_EVENTS = ("ac-failed", "overload", "interlock", "fault", "ipmi-command")


def encode_chassis_status(status: ChassisStatus) -> bytes:
    """The inverse of decode_chassis_status (IPMI 2.0 table 28-3)."""
    power = (
        status.power_on
        | status.power_overload << 1
        | status.power_interlock << 2
        | status.power_fault << 3
        | status.power_control_fault << 4
        | status.restore_policy.value << 5
    )
    last = sum(1 << i for i, name in enumerate(_LAST_EVENTS) if name in status.last_power_event)
    misc = (
        status.intrusion
        | status.front_panel_lockout << 1
        | status.drive_fault << 2
        | status.cooling_fault << 3
    )
    if status.identify is not None:
        misc |= 0x40 | status.identify.value << 4
    return bytes([power, last, misc])


chassis_statuses = st.builds(
    ChassisStatus,
    power_on=st.booleans(),
    power_overload=st.booleans(),
    power_interlock=st.booleans(),
    power_fault=st.booleans(),
    power_control_fault=st.booleans(),
    restore_policy=st.sampled_from(RestorePolicy),
    last_power_event=st.frozensets(st.sampled_from(_LAST_EVENTS)),
    intrusion=st.booleans(),
    front_panel_lockout=st.booleans(),
    drive_fault=st.booleans(),
    cooling_fault=st.booleans(),
    identify=st.none() | st.sampled_from(IdentifyState),
)


@given(chassis_statuses)
def test_chassis_status_round_trip(status: ChassisStatus) -> None:
    assert decode_chassis_status(encode_chassis_status(status)) == status


@given(chassis_status_data())
def test_any_chassis_status_bytes_decode(data: bytes) -> None:
    status = decode_chassis_status(data)
    assert status.power_on == bool(data[0] & 1)
    assert decode_chassis_status(encode_chassis_status(status)) == status


@given(st.binary(max_size=2))
def test_short_answers_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedResponse):
        decode_chassis_status(data)
    with pytest.raises(MalformedResponse):
        decode_device_id(data)
    with pytest.raises(MalformedResponse):
        decode_sel_record(data)


@given(
    device_id=st.integers(0, 255),
    revision=st.integers(0, 15),
    sdrs=st.booleans(),
    major=st.integers(0, 127),
    minor=st.integers(0, 0x99),
    ipmi=st.sampled_from([0x51, 0x02]),
    manufacturer=st.integers(0, 0xFFFFF),
    product=st.integers(0, 0xFFFF),
    aux=st.none() | st.binary(min_size=4, max_size=4),
)
def test_device_id_fields(
    device_id: int,
    revision: int,
    sdrs: bool,
    major: int,
    minor: int,
    ipmi: int,
    manufacturer: int,
    product: int,
    aux: bytes | None,
) -> None:
    data = bytes([device_id, revision | sdrs << 7, major, minor, ipmi, 0x9F])
    data += manufacturer.to_bytes(3, "little") + product.to_bytes(2, "little") + (aux or b"")
    decoded = decode_device_id(data)
    assert (decoded.device_id, decoded.device_revision, decoded.provides_sdrs) == (
        device_id,
        revision,
        sdrs,
    )
    assert decoded.firmware_version == f"{major}.{minor:02x}"
    assert decoded.ipmi_version == {0x51: "1.5", 0x02: "2.0"}[ipmi]
    assert (decoded.manufacturer_id, decoded.product_id) == (manufacturer, product)
    assert decoded.aux_firmware == aux and decoded.available


@given(st.one_of(sel_records(), st.binary(min_size=17, max_size=24)))
def test_any_sel_record_decodes(data: bytes) -> None:
    entry = decode_sel_record(data)
    assert entry.raw == data[:16]
    assert entry.record_id == struct.unpack_from("<H", data)[0]
    assert entry.record_type == data[2]
    if data[2] < 0xC0:
        assert entry.sensor_type == data[10] and entry.sensor_number == data[11]
        assert entry.asserted == (not data[12] & 0x80) and entry.event_data == data[13:16]
    if data[2] < 0xE0:
        assert entry.timestamp == struct.unpack_from("<I", data, 3)[0]
        if entry.time is not None:
            assert entry.time.tzinfo is datetime.UTC
    else:
        assert entry.timestamp is None and entry.event_data == data[3:16]


@given(
    st.binary(min_size=16, max_size=16),
    st.fixed_dictionaries(
        {},
        optional={
            "event": st.text(),
            "component": st.text(),
            "component_type": st.text(),
            "severity": st.sampled_from([0, 1, 2, 4, 3, 6]),
        },
    ),
)
def test_sel_descriptions_are_copied_not_trusted(data: bytes, described: dict[str, object]) -> None:
    entry = decode_sel_record(data, described)
    assert entry.description == (described.get("event") or None)
    assert entry.severity in (None, "information", "warning", "critical")


formulas = st.builds(
    Formula,
    m=st.integers(-512, 511),
    b=st.integers(-512, 511).map(float),
    result_exponent=st.integers(-8, 7),
    linearization=st.integers(0, 12),
    numeric_format=st.integers(0, 3),
)


@given(formulas, st.integers(0, 255))
def test_convert_raw_never_raises(formula: Formula, raw: int) -> None:
    value = convert_raw(raw, formula)
    assert value is None or isinstance(value, float)


@given(st.integers(0, 255), st.sampled_from([0, 2]))
def test_identity_formula(raw: int, numeric_format: int) -> None:
    formula = Formula(m=1, b=0.0, result_exponent=0, linearization=0, numeric_format=numeric_format)
    signed = raw - 256 if numeric_format == 2 and raw > 127 else raw
    assert convert_raw(raw, formula) == float(signed)


@given(st.integers(0, 255), st.binary(min_size=6, max_size=6))
def test_thresholds_follow_the_readable_mask(mask: int, values: bytes) -> None:
    formula = Formula(m=1, b=0.0, result_exponent=0, linearization=0)
    thresholds = decode_thresholds(bytes([mask]) + values, formula)
    fields = [
        thresholds.lower_non_critical,
        thresholds.lower_critical,
        thresholds.lower_non_recoverable,
        thresholds.upper_non_critical,
        thresholds.upper_critical,
        thresholds.upper_non_recoverable,
    ]
    for bit, (field, raw) in enumerate(zip(fields, values, strict=True)):
        assert field == (float(raw) if mask & (1 << bit) else None)


@given(st.integers(0, 7), st.booleans())
def test_sensor_status_is_the_worst_health(health: int, available: bool) -> None:
    status = sensor_status(health, available)
    if not available:
        assert status is SensorStatus.NOT_AVAILABLE
    elif health & 4:
        assert status is SensorStatus.NON_RECOVERABLE
    elif health & 2:
        assert status is SensorStatus.CRITICAL
    elif health & 1:
        assert status is SensorStatus.NON_CRITICAL
    else:
        assert status is SensorStatus.OK


@given(
    name=st.text(min_size=1),
    value=st.none() | st.floats(allow_nan=False),
    health=st.integers(0, 7),
    unavailable=st.sampled_from([0, 1]),
    states=st.lists(st.text(), max_size=4),
)
def test_sensor_reading_from_pyghmi_attributes(
    name: str, value: float | None, health: int, unavailable: int, states: list[str]
) -> None:
    reading = {
        "name": name,
        "type": "Temperature",
        "value": value,
        "health": health,
        "unavailable": unavailable,
        "states": states,
        "state_ids": list(range(len(states))),
        "units": "°C",
        "imprecision": 0.5,
    }
    sensor = decode_sensor_reading(reading, number=7, thresholds=Thresholds())
    assert sensor.name == name and sensor.number == 7
    assert sensor.available == (not unavailable)
    assert sensor.value == (None if unavailable else value)
    assert sensor.states == tuple(states)


def test_power_and_boot_answers() -> None:
    assert decode_power_state({"powerstate": "on"}).on
    with pytest.raises(MalformedResponse):
        decode_power_state({"powerstate": "maybe"})
    assert decode_boot_device({"bootdev": "network", "persistent": True}).persistent
    assert decode_boot_device({"bootdev": 9}).device == "unknown-9"
    assert "network" in BOOT_DEVICES


@given(device_id_data())
def test_any_device_id_decodes(data: bytes) -> None:
    device = decode_device_id(data)
    assert device.device_id == data[0]
    assert (device.aux_firmware is None) == (len(data) < 15)


@given(system_event_records())
def test_system_events_have_sensor_fields(data: bytes) -> None:
    entry = decode_sel_record(data)
    assert entry.record_type == 0x02 and entry.sensor_type is not None
    assert entry.asserted is not None and len(entry.event_data) == 3


@given(sensor_readings(), st.integers(0, 255))
def test_any_pyghmi_reading_decodes(reading: dict[str, object], number: int) -> None:
    sensor = decode_sensor_reading(reading, number=number)
    assert sensor.number == number and sensor.name == reading["name"]
    assert sensor.available == (not reading["unavailable"])
