"""Hypothesis strategies for BMC answers and credentials (public, for users' own tests)."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

from ._credentials import MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES, Credentials

#: pyghmi's health bits (Ok 0, Warning 1, Critical 2, Failed 4) in any combination.
healths = st.integers(0, 7)


def credentials() -> st.SearchStrategy[Credentials]:
    """Any valid user name and password, within IPMI 2.0's byte limits."""
    username = st.text(min_size=1, max_size=MAX_USERNAME_BYTES)
    password = st.text(max_size=MAX_PASSWORD_BYTES)
    return st.builds(
        Credentials,
        username.filter(lambda u: len(u.encode()) <= MAX_USERNAME_BYTES),
        password.filter(lambda p: len(p.encode()) <= MAX_PASSWORD_BYTES),
    )


def chassis_status_data() -> st.SearchStrategy[bytes]:
    """Get Chassis Status data: three bytes, and the optional front-panel byte."""
    return st.binary(min_size=3, max_size=4)


def device_id_data() -> st.SearchStrategy[bytes]:
    """Get Device ID data: 11 mandatory bytes, optionally the 4 auxiliary firmware bytes."""
    return st.one_of(st.binary(min_size=11, max_size=11), st.binary(min_size=15, max_size=15))


def system_event_records(
    record_id: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[bytes]:
    """16-byte SEL records of the system event type (0x02)."""
    ids = record_id if record_id is not None else st.integers(0, 0xFFFE)
    return st.tuples(
        ids,
        st.integers(0, 2**32 - 1),
        st.integers(0, 0xFFFF),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(min_size=3, max_size=3),
    ).map(lambda t: struct.pack("<HBIHBBBB", t[0], 0x02, t[1], t[2], 0x04, t[3], t[4], t[5]) + t[6])


def sel_records() -> st.SearchStrategy[bytes]:
    """Any 16-byte SEL record: system events, timestamped OEM and non-timestamped OEM."""
    return st.one_of(system_event_records(), st.binary(min_size=16, max_size=16))


def sensor_readings() -> st.SearchStrategy[dict[str, Any]]:
    """The attributes of a pyghmi ``SensorReading``, as ``decode_sensor_reading`` takes them."""
    return st.fixed_dictionaries(
        {
            "name": st.text(min_size=1, max_size=16),
            "type": st.sampled_from(["Temperature", "Fan", "Voltage", "Power Supply"]),
            "value": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "imprecision": st.none() | st.floats(0, 10),
            "health": healths,
            "states": st.lists(st.text(max_size=24), max_size=4),
            "units": st.sampled_from(["°C", "RPM", "V", ""]),
            "unavailable": st.sampled_from([0, 1]),
        }
    ).map(_with_state_ids)


def _with_state_ids(reading: dict[str, Any]) -> dict[str, Any]:
    return {**reading, "state_ids": list(range(len(reading["states"])))}
