"""Pure decoding of BMC answers into the typed records (the testable core of the IPMI facade).

Each function takes the bytes (or the plain dict pyghmi produced) of one answer and returns a
record, or raises :class:`MalformedResponse`. Nothing here does I/O.
"""

from __future__ import annotations

import datetime
import math
import struct
from collections.abc import Mapping
from typing import Any

import attrs

from ._errors import MalformedResponse
from ._records import (
    BOOT_DEVICES,
    BootDevice,
    ChassisStatus,
    DeviceId,
    IdentifyState,
    PowerState,
    RestorePolicy,
    SelEntry,
    SensorReading,
    SensorStatus,
    Thresholds,
)

#: SEL timestamps below this are seconds since the BMC started, not since 1970.
ABSOLUTE_TIME_MIN = 0x20000000
SEL_RECORD_SIZE = 16

_LAST_POWER_EVENTS = ("ac-failed", "overload", "interlock", "fault", "ipmi-command")
#: pyghmi's health bits (pyghmi.constants.Health): Warning 1, Critical 2, Failed 4.
_HEALTH_WARNING, _HEALTH_CRITICAL, _HEALTH_FAILED = 1, 2, 4
_BOOT_ALIASES = {"net": "network", "pxe": "network", "cd": "optical", "cdrom": "optical"}


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise MalformedResponse(f"{what}: {len(data)} bytes, expected at least {size}")


def decode_power_state(answer: Mapping[str, Any]) -> PowerState:
    """``{'powerstate': 'on' | 'off'}`` (pyghmi's ``get_power``) as a :class:`PowerState`."""
    state = answer.get("powerstate")
    if state not in ("on", "off"):
        raise MalformedResponse(f"power state {state!r} is neither 'on' nor 'off'")
    return PowerState(on=state == "on")


def decode_chassis_status(data: bytes) -> ChassisStatus:
    """The 3 or 4 data bytes of Get Chassis Status."""
    _need(data, 3, "chassis status")
    power, last, misc = data[0], data[1], data[2]
    identify_supported = bool(misc & 0x40)
    return ChassisStatus(
        power_on=bool(power & 0x01),
        power_overload=bool(power & 0x02),
        power_interlock=bool(power & 0x04),
        power_fault=bool(power & 0x08),
        power_control_fault=bool(power & 0x10),
        restore_policy=RestorePolicy((power >> 5) & 0x03),
        last_power_event=frozenset(
            name for bit, name in enumerate(_LAST_POWER_EVENTS) if last & (1 << bit)
        ),
        intrusion=bool(misc & 0x01),
        front_panel_lockout=bool(misc & 0x02),
        drive_fault=bool(misc & 0x04),
        cooling_fault=bool(misc & 0x08),
        identify=IdentifyState((misc >> 4) & 0x03) if identify_supported else None,
    )


def decode_boot_device(answer: Mapping[str, Any]) -> BootDevice:
    """pyghmi's ``get_bootdev`` dict as a :class:`BootDevice`."""
    device = answer.get("bootdev")
    if isinstance(device, int) and not isinstance(device, bool):
        name = f"unknown-{device}"
    elif isinstance(device, str):
        name = _BOOT_ALIASES.get(device, device)
    else:
        raise MalformedResponse(f"boot device {device!r} is not a name or a number")
    return BootDevice(
        device=name,
        persistent=bool(answer.get("persistent", False)),
        uefi=bool(answer.get("uefimode", False)),
    )


def normalize_boot_device(device: str) -> str:
    """The canonical name of a boot device, or ``ValueError`` for an unknown one."""
    name = _BOOT_ALIASES.get(device, device)
    if name not in BOOT_DEVICES:
        raise ValueError(f"unknown boot device {device!r}; expected one of {sorted(BOOT_DEVICES)}")
    return name


def decode_device_id(data: bytes) -> DeviceId:
    """The 11 to 15 data bytes of Get Device ID."""
    _need(data, 11, "device id")
    manufacturer = data[6] | (data[7] << 8) | ((data[8] & 0x0F) << 16)
    return DeviceId(
        device_id=data[0],
        device_revision=data[1] & 0x0F,
        provides_sdrs=bool(data[1] & 0x80),
        available=not data[2] & 0x80,
        firmware_version=f"{data[2] & 0x7F}.{data[3]:02x}",
        ipmi_version=f"{data[4] & 0x0F}.{data[4] >> 4}",
        additional_support=data[5],
        manufacturer_id=manufacturer,
        product_id=data[9] | (data[10] << 8),
        aux_firmware=bytes(data[11:15]) if len(data) >= 15 else None,
    )


_SEVERITIES = {0: "information", _HEALTH_WARNING: "warning"}


def _severity(health: object) -> str | None:
    if not isinstance(health, int) or isinstance(health, bool):
        return None
    if health & (_HEALTH_CRITICAL | _HEALTH_FAILED):
        return "critical"
    return _SEVERITIES.get(health & _HEALTH_WARNING, "information")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def decode_sel_record(data: bytes, described: Mapping[str, Any] | None = None) -> SelEntry:
    """One 16-byte SEL record; ``described`` is pyghmi's decoding of it, for the text fields."""
    _need(data, SEL_RECORD_SIZE, "SEL record")
    raw = bytes(data[:SEL_RECORD_SIZE])
    record_id, record_type = struct.unpack_from("<HB", raw)
    entry = SelEntry(record_id=record_id, record_type=record_type, raw=raw)
    if record_type < 0xE0:  # standard and timestamped OEM records carry a timestamp
        (timestamp,) = struct.unpack_from("<I", raw, 3)
        absolute = ABSOLUTE_TIME_MIN <= timestamp < 0xFFFFFFFF
        when = datetime.datetime.fromtimestamp(timestamp, datetime.UTC) if absolute else None
        entry = attrs.evolve(entry, timestamp=timestamp, time=when)
    if record_type < 0xC0:  # the system event format (IPMI 2.0 table 32-1)
        (generator,) = struct.unpack_from("<H", raw, 7)
        entry = attrs.evolve(
            entry,
            generator_id=generator,
            sensor_type=raw[10],
            sensor_number=raw[11],
            event_type=raw[12] & 0x7F,
            asserted=not raw[12] & 0x80,
            event_data=raw[13:16],
        )
    elif record_type < 0xE0:
        entry = attrs.evolve(entry, event_data=raw[10:16])
    else:
        entry = attrs.evolve(entry, event_data=raw[3:16])
    if described:
        entry = attrs.evolve(
            entry,
            sensor_type_name=_text(described.get("component_type")),
            sensor_name=_text(described.get("component")),
            description=_text(described.get("event")),
            severity=_severity(described.get("severity")),
        )
    return entry


@attrs.frozen
class Formula:
    """A full sensor record's conversion factors: ``y = L((m*x + b) * 10**r_exp)``.

    ``b`` already includes its own exponent (as pyghmi stores it); ``numeric_format`` is 0
    unsigned, 1 ones' complement, 2 two's complement, 3 no numeric reading.
    """

    m: int
    b: float
    result_exponent: int
    linearization: int
    numeric_format: int = 0


_LINEARIZATIONS = (
    lambda x: x,
    math.log,
    math.log10,
    math.log2,
    math.exp,
    lambda x: 10**x,
    lambda x: 2**x,
    lambda x: 1 / x,
    lambda x: x**2,
    lambda x: x**3,
    math.sqrt,
    lambda x: math.copysign(abs(x) ** (1 / 3), x),
)


def convert_raw(raw: int, formula: Formula) -> float | None:
    """A raw one-byte sensor value in the sensor's units; ``None`` if it has no numeric form."""
    if formula.numeric_format == 3 or formula.linearization >= len(_LINEARIZATIONS):
        return None
    raw &= 0xFF
    if formula.numeric_format == 1 and raw & 0x80:
        raw = -((~raw) & 0x7F)
    elif formula.numeric_format == 2 and raw & 0x80:
        raw -= 0x100
    value = (formula.m * raw + formula.b) * (10.0**formula.result_exponent)
    try:
        result = float(_LINEARIZATIONS[formula.linearization](value))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return result if math.isfinite(result) else None


_THRESHOLD_FIELDS = (
    "lower_non_critical",
    "lower_critical",
    "lower_non_recoverable",
    "upper_non_critical",
    "upper_critical",
    "upper_non_recoverable",
)


def decode_thresholds(data: bytes, formula: Formula) -> Thresholds:
    """The 7 data bytes of Get Sensor Thresholds: a readable mask, then six raw values."""
    _need(data, 7, "sensor thresholds")
    mask = data[0]
    values: dict[str, float | None] = {}
    for bit, field in enumerate(_THRESHOLD_FIELDS):
        values[field] = convert_raw(data[1 + bit], formula) if mask & (1 << bit) else None
    return Thresholds(**values)


def sensor_status(health: int, available: bool) -> SensorStatus:
    """The ipmitool-style status of a sensor from pyghmi's health bits."""
    if not available:
        return SensorStatus.NOT_AVAILABLE
    if health & _HEALTH_FAILED:
        return SensorStatus.NON_RECOVERABLE
    if health & _HEALTH_CRITICAL:
        return SensorStatus.CRITICAL
    if health & _HEALTH_WARNING:
        return SensorStatus.NON_CRITICAL
    return SensorStatus.OK


def undecodable_sensor(number: int, reading: Mapping[str, Any], reason: str) -> SensorReading:
    """A sensor whose reading or record could not be decoded: ``NOT_AVAILABLE``, with why, so
    one odd sensor does not cost a read of all the others."""
    name = reading.get("name")
    return SensorReading(
        name=name if isinstance(name, str) and name else f"sensor {number}",
        number=number,
        sensor_type="unknown",
        value=None,
        units="",
        status=SensorStatus.NOT_AVAILABLE,
        error=reason,
    )


def decode_sensor_reading(
    reading: Mapping[str, Any], *, number: int, thresholds: Thresholds | None = None
) -> SensorReading:
    """pyghmi's decoded sensor reading (the attributes of ``sdr.SensorReading``) as a record;
    raises ``MalformedResponse`` when it cannot be."""
    name = reading.get("name")
    if not isinstance(name, str):
        raise MalformedResponse(f"sensor {number} has no name")
    error = reading.get("decode_error")
    if error is not None:
        raise MalformedResponse(f"sensor {number} ({name}): {error}")
    available = not reading.get("unavailable")
    value = reading.get("value")
    imprecision = reading.get("imprecision")
    health = reading.get("health") or 0
    return SensorReading(
        name=name,
        number=number,
        sensor_type=str(reading.get("type") or "unknown"),
        value=float(value) if available and isinstance(value, int | float) else None,
        units=str(reading.get("units") or ""),
        status=sensor_status(int(health), available),
        states=tuple(str(s) for s in reading.get("states") or ()),
        state_ids=tuple(int(s) for s in reading.get("state_ids") or ()),
        imprecision=float(imprecision) if isinstance(imprecision, int | float) else None,
        thresholds=thresholds,
    )
