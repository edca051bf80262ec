"""Typed results of IPMI calls: small frozen records, independent of pyghmi."""

from __future__ import annotations

import datetime
import enum

import attrs


class PowerAction(enum.Enum):
    """A chassis control request (IPMI 2.0 section 28.3), valued by its command byte."""

    OFF = 0
    ON = 1
    CYCLE = 2
    RESET = 3
    SOFT = 5  # soft off: ask the OS to shut down (ACPI)


@attrs.frozen
class PowerState:
    """Whether the chassis power is on."""

    on: bool

    def __str__(self) -> str:
        return "on" if self.on else "off"


class RestorePolicy(enum.Enum):
    """What the chassis does when AC power comes back."""

    ALWAYS_OFF = 0
    PREVIOUS = 1
    ALWAYS_ON = 2
    UNKNOWN = 3


class IdentifyState(enum.Enum):
    """The chassis identify (UID) light."""

    OFF = 0
    TEMPORARY = 1
    INDEFINITE = 2
    UNKNOWN = 3


@attrs.frozen
class ChassisStatus:
    """The Get Chassis Status answer (IPMI 2.0 section 28.2)."""

    power_on: bool
    power_overload: bool
    power_interlock: bool
    power_fault: bool
    power_control_fault: bool
    restore_policy: RestorePolicy
    last_power_event: frozenset[str]
    intrusion: bool
    front_panel_lockout: bool
    drive_fault: bool
    cooling_fault: bool
    identify: IdentifyState | None  # None when the BMC does not report it


#: The boot device names accepted by :meth:`IpmiClient.set_boot_device`.
BOOT_DEVICES = frozenset({"default", "network", "hd", "safe", "optical", "setup", "floppy"})


@attrs.frozen
class BootDevice:
    """The boot device override: ``device`` is one of :data:`BOOT_DEVICES` or ``"unknown-N"``."""

    device: str
    persistent: bool = False
    uefi: bool = False


@attrs.frozen
class SelEntry:
    """One System Event Log record (IPMI 2.0 section 32), decoded from its 16 bytes.

    ``timestamp`` is the raw seconds value; ``time`` is set only when it is an absolute time
    (at least 0x20000000), not seconds since the BMC started. The text fields come from
    pyghmi's event tables when it could describe the event.
    """

    record_id: int
    record_type: int
    raw: bytes
    timestamp: int | None = None
    time: datetime.datetime | None = None
    generator_id: int | None = None
    sensor_type: int | None = None
    sensor_number: int | None = None
    event_type: int | None = None
    asserted: bool | None = None
    event_data: bytes = b""
    sensor_type_name: str | None = None
    sensor_name: str | None = None
    description: str | None = None
    severity: str | None = None


@attrs.frozen
class SelSince:
    """The SEL entries after a known record; ``reset`` when that record is gone (SEL cleared)."""

    entries: tuple[SelEntry, ...]
    reset: bool
    last_record_id: int | None


class SensorStatus(enum.Enum):
    """A sensor's status in ipmitool's words (RackHD's SDR poller alerts on all but ``ok``)."""

    OK = "ok"
    NON_CRITICAL = "nc"
    CRITICAL = "cr"
    NON_RECOVERABLE = "nr"
    NOT_AVAILABLE = "ns"


@attrs.frozen
class Thresholds:
    """Sensor thresholds in the sensor's units; ``None`` where the BMC does not report one."""

    lower_non_critical: float | None = None
    lower_critical: float | None = None
    lower_non_recoverable: float | None = None
    upper_non_critical: float | None = None
    upper_critical: float | None = None
    upper_non_recoverable: float | None = None


@attrs.frozen
class SensorReading:
    """One sensor: its value (numeric sensors), asserted states, status and thresholds."""

    name: str
    number: int
    sensor_type: str
    value: float | None
    units: str
    status: SensorStatus
    states: tuple[str, ...] = ()
    state_ids: tuple[int, ...] = ()
    imprecision: float | None = None
    thresholds: Thresholds | None = None
    error: str | None = None
    """Why the sensor could not be decoded (then it is ``NOT_AVAILABLE``); ``None`` normally."""

    @property
    def available(self) -> bool:
        """Whether the BMC could read the sensor."""
        return self.status is not SensorStatus.NOT_AVAILABLE


@attrs.frozen
class DeviceId:
    """The Get Device ID answer (IPMI 2.0 section 20.1)."""

    device_id: int
    device_revision: int
    provides_sdrs: bool
    available: bool
    firmware_version: str
    ipmi_version: str
    additional_support: int
    manufacturer_id: int
    product_id: int
    aux_firmware: bytes | None = None
