"""The blocking side: small functions that drive one pyghmi ``Command`` in a worker thread.

They return plain bytes and dicts for :mod:`._decode`, and raise the taxonomy of
:mod:`._errors` for answers with a completion code. pyghmi keeps a process-wide session
cache; :func:`retire` takes a session out of it so that the next login is a fresh one.
"""

from __future__ import annotations

import random
import struct
import threading
from typing import Any

from pyghmi.ipmi import command as _command  # type: ignore[import-untyped, unused-ignore]
from pyghmi.ipmi import events as _events  # type: ignore[import-untyped, unused-ignore]
from pyghmi.ipmi.private import session as _session  # type: ignore[import-untyped, unused-ignore]

from ._decode import SEL_RECORD_SIZE, Formula
from ._errors import BmcError, Unreachable, Unsupported, error_for_code

#: Completion code: "requested sensor, data or record not present".
NOT_PRESENT = 0xCB
_LAST_RECORD = 0xFFFF
_MAX_SEL_ENTRIES = 0x10000

Command = Any  # pyghmi.ipmi.command.Command (untyped)


def _answer_waiting(address: Any) -> bool:
    handlers = _session.Session.bmc_handlers.get(address)
    if not handlers:
        return False
    # Only sessions inside ``awaitresponse`` drain their queue; a stale one must not count.
    return any(
        getattr(s, "awaitingresponse", False) and getattr(s, "pktqueue", None)
        for s in list(handlers.values())
    )


def _io_wait(timeout: float, myaddr: Any = None, evq: Any = None) -> None:
    """pyghmi's ``_io_wait``, but it checks for an answer *after* registering as a waiter.

    pyghmi's IO thread wakes only the waiters registered when a datagram arrives; an answer
    that lands just before the caller registers is found only when the retransmit timer fires,
    which is the source of its ~1 s stalls (one call in ten under load).
    """
    event = threading.Event()
    if evq is not None:
        evq.append(event)
    deadline = timeout + _session._monotonic_time()
    _session.ioqueue.append((deadline, event, myaddr))
    if myaddr is not None and _answer_waiting(myaddr):
        event.set()
    elif deadline < _session.selectdeadline:
        wake = _session.iosockets[0]
        wake = getattr(wake, "fd", wake)
        wake.sendto(b"\x01", (_session.myself, _session.iosockets[0].getsockname()[1]))
    # Bounded: should a wake-up ever be lost, the caller loses one timeout, not its thread.
    event.wait(timeout + _WAKE_MARGIN)


_WAKE_MARGIN = 1.0


def install_wakeup_fix() -> None:
    """Replace pyghmi's ``_io_wait`` with :func:`_io_wait` (process-wide, idempotent)."""
    needed = ("ioqueue", "selectdeadline", "iosockets", "myself", "_monotonic_time")
    if all(hasattr(_session, name) for name in needed):
        _session._io_wait = _io_wait


def install_lock_fix() -> None:
    """Make pyghmi's two session locks one (process-wide, idempotent).

    pyghmi takes ``WAITING_SESSIONS`` then ``KEEPALIVE_SESSIONS`` on one path (a retransmit
    timeout marking a session broken) and the opposite order on another (sending a
    payload), so two threads deadlock under load. Both are re-entrant locks looked up at
    each use, so one lock for both cannot deadlock that way.
    """
    if hasattr(_session, "WAITING_SESSIONS") and hasattr(_session, "KEEPALIVE_SESSIONS"):
        _session.WAITING_SESSIONS = _session.KEEPALIVE_SESSIONS


def install_private_random() -> None:
    """Give pyghmi's sessions a random generator of their own (process-wide, idempotent).

    Its IO thread draws retry jitter, keepalive times and registration ids from the module
    ``random``, at any moment while a session lives; that moved the process-wide generator
    under a caller's feet (a seeded simulation, a property test's data generation).
    """
    if getattr(_session, "random", None) is random:
        _session.random = random.Random()


install_wakeup_fix()
install_lock_fix()
install_private_random()


def login(host: str, port: int, username: str, password: str) -> Command:
    """Open and log in a session (blocking). Bytes, not str: see pyghmi's session-cache bug."""
    return _command.Command(
        bmc=host, userid=username.encode("utf-8"), password=password.encode("utf-8"), port=port
    )


def usable(cmd: Command) -> bool:
    """Whether the session is still logged in (pyghmi marks lost sessions broken)."""
    session = cmd.ipmi_session
    return bool(session.logged) and not session.broken


def retire(cmd: Command | None, *, wait: bool = True) -> None:
    """Take a session out of pyghmi's cache and keepalives, without waiting on the network.

    ``wait=False`` (from the event loop) never blocks on pyghmi's lock: the session is
    marked broken at once, and left in the keepalives if the lock is busy (the worker
    thread that still holds the session retires it when it returns).
    """
    if cmd is None:
        return
    session = cmd.ipmi_session
    session.broken = True
    lock = _session.KEEPALIVE_SESSIONS
    if not lock.acquire(blocking=wait):
        return
    try:
        _session.Session.keepalive_sessions.pop(session, None)
    finally:
        lock.release()


def logout(cmd: Command | None) -> None:
    """Close the session politely (one Close Session request, not waited for), then retire it."""
    if cmd is None:
        return
    session = cmd.ipmi_session
    try:
        if session.logged:
            session.logout()
    except Exception:  # closing is a courtesy to the BMC's session table
        pass
    retire(cmd)


def raw(cmd: Command, netfn: int, command: int, data: bytes = b"", lun: int = 0) -> bytes:
    """Send one request; its data bytes, or the error its completion code stands for."""
    answer = cmd.raw_command(netfn=netfn, command=command, data=tuple(data), rslun=lun)
    code = answer.get("code", 0xFFFF)
    if "error" in answer or code:
        if code == 0xFFFF or not isinstance(code, int):
            raise Unreachable(f"no answer to netfn 0x{netfn:02x} command 0x{command:02x}")
        raise error_for_code(
            code, f"{answer.get('error', 'error')} (netfn 0x{netfn:02x} cmd 0x{command:02x})"
        )
    return bytes(answer.get("data", b""))


def get_power(cmd: Command) -> dict[str, Any]:
    """pyghmi's ``get_power`` (OEM-aware)."""
    return dict(cmd.get_power())


def get_boot_device(cmd: Command) -> dict[str, Any]:
    """pyghmi's ``get_bootdev``."""
    return dict(cmd.get_bootdev())


def set_boot_device(cmd: Command, device: str, persistent: bool, uefi: bool) -> None:
    """pyghmi's ``set_bootdev``, which reports an unknown device as a dict, not an exception."""
    answer = cmd.set_bootdev(device, persist=persistent, uefiboot=uefi)
    if isinstance(answer, dict) and "error" in answer:
        raise ValueError(str(answer["error"]))


def _describe(handler: Any, record: bytes) -> dict[str, Any] | None:
    if handler is None:
        return None
    try:
        return dict(handler._sel_decode(bytearray(record)))
    except Exception:  # the description is a nicety; the record itself is decoded by us
        return None


def _event_handler(cmd: Command) -> Any:
    try:
        return _events.EventHandler(cmd.init_sdr(), cmd)
    except Exception:  # a BMC without an SDR still has a readable SEL
        return None


def read_sel(cmd: Command, start: int = 0) -> list[tuple[bytes, dict[str, Any] | None]]:
    """The SEL records from ``start`` (0: the first) to the last, with pyghmi's descriptions."""
    records: list[bytes] = []
    seen: set[int] = set()
    current = start
    while current != _LAST_RECORD and current not in seen and len(records) < _MAX_SEL_ENTRIES:
        seen.add(current)
        try:
            data = raw(cmd, 0x0A, 0x43, struct.pack("<HHBB", 0, current, 0, 0xFF))
        except BmcError as exc:
            if exc.code == NOT_PRESENT:
                break
            raise
        if len(data) < 2 + SEL_RECORD_SIZE:
            break
        (current,) = struct.unpack_from("<H", data)
        records.append(data[2 : 2 + SEL_RECORD_SIZE])
    handler = _event_handler(cmd) if records else None
    return [(record, _describe(handler, record)) for record in records]


def sel_next_id(cmd: Command, record_id: int) -> int | None:
    """The id after ``record_id``, or ``None`` when that record is no longer in the SEL."""
    try:
        data = raw(cmd, 0x0A, 0x43, struct.pack("<HHBB", 0, record_id, 0, 0xFF))
    except BmcError as exc:
        if exc.code == NOT_PRESENT:
            return None
        raise
    (following,) = struct.unpack_from("<H", data)
    return int(following)


def clear_sel(cmd: Command) -> None:
    """Reserve the SEL, then ask the BMC to erase it."""
    reservation = raw(cmd, 0x0A, 0x42)
    raw(cmd, 0x0A, 0x47, reservation[:2] + b"CLR\xaa")


def _formula(entry: Any) -> Formula | None:
    try:
        return Formula(
            m=int(entry.m),
            b=float(entry.b),
            result_exponent=int(entry.resultexponent),
            linearization=int(entry.linearization),
            numeric_format=int(entry.numeric_format),
        )
    except (AttributeError, TypeError):
        return None


def read_sensors(
    cmd: Command,
) -> list[tuple[int, dict[str, Any], Formula | None, bytes | None]]:
    """Each SDR sensor: number, pyghmi's decoded reading, its formula and its raw thresholds."""
    sdr = cmd.init_sdr()
    out: list[tuple[int, dict[str, Any], Formula | None, bytes | None]] = []
    for key in sdr.get_sensor_numbers():
        entry = sdr.sensors[key]
        number, lun = int(entry.sensor_number), int(entry.sensor_lun)
        try:
            data = raw(cmd, 0x04, 0x2D, bytes([number]), lun=lun)
        except BmcError as exc:
            if exc.code == NOT_PRESENT:
                continue
            raise
        try:
            reading = dict(vars(entry.decode_sensor_reading(cmd, bytearray(data))))
        except Exception as exc:  # pyghmi could not make sense of this one sensor
            name = getattr(entry, "name", None)
            reading = {"name": name, "decode_error": f"{type(exc).__name__}: {exc}"}
        formula = _formula(entry)
        thresholds = None
        if formula is not None and getattr(entry, "has_thresholds", False):
            try:
                thresholds = raw(cmd, 0x04, 0x27, bytes([number]), lun=lun)
            except (BmcError, Unsupported):
                thresholds = None
        out.append((number, reading, formula, thresholds))
    return out
