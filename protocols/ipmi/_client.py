"""The async IPMI facade: pyghmi calls in worker threads, one serialised session per BMC.

Every call runs under a deadline. A worker thread cannot be cancelled, so a call that misses
its deadline is abandoned (``abandon_on_cancel=True``): the caller gets :class:`Timeout` at
once, the session it was using is retired, and the next call logs in afresh. The abandoned
thread keeps its limiter token until pyghmi gives up, so the thread bound stays true.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import attrs
import trio

from . import _pyghmi
from ._credentials import BmcTarget
from ._decode import (
    Formula,
    decode_boot_device,
    decode_chassis_status,
    decode_device_id,
    decode_power_state,
    decode_sel_record,
    decode_sensor_reading,
    decode_thresholds,
    normalize_boot_device,
    undecodable_sensor,
)
from ._errors import IpmiError, MalformedResponse, Timeout, classify
from ._records import (
    BootDevice,
    ChassisStatus,
    DeviceId,
    PowerAction,
    PowerState,
    SelEntry,
    SelSince,
    SensorReading,
)

T = TypeVar("T")

#: Threads used by default for pyghmi calls in one Trio run (trio's own default is also 40).
DEFAULT_THREAD_LIMIT = 40
#: A session idle this long is closed and replaced: pyghmi only sends keepalives while a call
#: is running, and BMCs drop idle sessions after 30-60 s.
SESSION_IDLE_LIMIT = 20.0
#: Deadline of a call that names none: pyghmi retransmits after ~1 s, so give it a few tries.
DEFAULT_TIMEOUT = 10.0

_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("ipmi_limiter")


def _deadline(timeout: float) -> float:
    """``timeout`` if it is a usable deadline: NaN, zero, negative and infinite are not."""
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a positive, finite number of seconds, not {timeout!r}")
    return timeout


def thread_limiter() -> trio.CapacityLimiter:
    """The limiter every :class:`IpmiClient` of this Trio run shares unless given its own.

    Raise its ``total_tokens`` to poll more BMCs at once.
    """
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(DEFAULT_THREAD_LIMIT)
        _LIMITER.set(limiter)
        return limiter


@attrs.define(eq=False)
class _Link:
    """The pyghmi command object of one login; replaced whole when a call is abandoned."""

    command: Any = None
    retired: bool = False
    last_used: float = 0.0
    relogin: bool = False  # the credentials changed: log out, then in again


@attrs.define(eq=False)
class _Session:
    target: BmcTarget
    lock: trio.Lock = attrs.Factory(trio.Lock)
    link: _Link = attrs.Factory(_Link)

    def discard(self, link: _Link) -> None:
        if self.link is link:
            self.link = _Link()
        link.retired = True
        _pyghmi.retire(link.command, wait=False)  # on the event loop: never block


@attrs.frozen
class IpmiStatistics:
    """Counters of one client: open sessions, logins, calls, and calls that hit their deadline."""

    sessions: int
    logins: int
    calls: int
    timeouts: int


@attrs.define(eq=False)
class _Counters:
    logins: int = 0
    calls: int = 0
    timeouts: int = 0


def _run(link: _Link, target: BmcTarget, op: Callable[[Any], T], counters: _Counters) -> T:
    """Worker-thread body: (re)login when needed, then run ``op`` on the session."""
    secrets = target.credentials.secrets
    command = link.command
    stale = time.monotonic() - link.last_used > SESSION_IDLE_LIMIT
    if command is None or stale or link.relogin or not _pyghmi.usable(command):
        _pyghmi.logout(command)
        link.command = None
        link.relogin = False
        creds = target.credentials
        try:
            command = _pyghmi.login(target.host, target.port, creds.username, creds.password)
        except Exception as exc:
            raise classify(exc, secrets=secrets, during_login=True) from None
        link.command = command
        counters.logins += 1
        if link.retired:  # abandoned while logging in: nobody will use this session
            _pyghmi.retire(command)
            raise Timeout("abandoned during login")
    try:
        return op(command)
    except IpmiError:
        raise
    except Exception as exc:
        raise classify(exc, secrets=secrets) from None
    finally:
        if link.retired:
            _pyghmi.logout(command)
        elif not _pyghmi.usable(command):
            link.command = None
        else:
            link.last_used = time.monotonic()


class IpmiClient:
    """Async access to many BMCs; use as ``async with IpmiClient() as ipmi:``.

    ``limiter`` bounds the worker threads (default: :func:`thread_limiter`); ``timeout`` is
    the deadline of a call that passes none, covering the wait for the session, the login
    and the exchange. Sessions idle past :data:`SESSION_IDLE_LIMIT` are forgotten.
    """

    def __init__(
        self, *, limiter: trio.CapacityLimiter | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._limiter = limiter
        self._timeout = _deadline(timeout)
        self._sessions: dict[tuple[str, int, str], _Session] = {}
        self._counters = _Counters()
        self._next_sweep = 0.0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Log out of every session (best effort, bounded to a few seconds)."""
        commands = [s.link.command for s in self._sessions.values() if s.link.command is not None]
        self._sessions.clear()
        if not commands:
            return

        def logout_all() -> None:
            for command in commands:
                try:
                    _pyghmi.logout(command)
                except Exception:
                    _pyghmi.retire(command)

        with trio.move_on_after(5):
            await trio.to_thread.run_sync(logout_all, abandon_on_cancel=True)

    def statistics(self) -> IpmiStatistics:
        """A snapshot of this client's counters."""
        c = self._counters
        return IpmiStatistics(len(self._sessions), c.logins, c.calls, c.timeouts)

    def _sweep(self) -> None:
        """Forget the sessions idle past ``SESSION_IDLE_LIMIT`` (at most one sweep per
        limit): a BMC nobody polls any more must not hold a session for ever."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SESSION_IDLE_LIMIT
        for key, session in list(self._sessions.items()):
            if session.lock.locked() or now - session.link.last_used <= SESSION_IDLE_LIMIT:
                continue
            del self._sessions[key]
            session.discard(session.link)

    async def _call(self, target: BmcTarget, op: Callable[[Any], T], timeout: float | None) -> T:
        limit = self._timeout if timeout is None else _deadline(timeout)
        label = target.describe()
        self._sweep()
        session = self._sessions.get(target.session_key)
        if session is None:
            session = self._sessions[target.session_key] = _Session(target)
        self._counters.calls += 1
        try:
            with trio.fail_after(limit):
                async with session.lock:
                    if session.target != target:  # new password: never reuse the old login
                        session.link.relogin = True
                        session.target = target
                    link = session.link
                    try:
                        return await trio.to_thread.run_sync(
                            _run,
                            link,
                            target,
                            op,
                            self._counters,
                            limiter=self._limiter or thread_limiter(),
                            abandon_on_cancel=True,
                        )
                    except trio.Cancelled:
                        session.discard(link)
                        raise
        except trio.TooSlowError:
            self._counters.timeouts += 1
            raise Timeout(f"no answer within {limit:g} s", bmc=label) from None
        except IpmiError as err:
            if not err.bmc:
                err.bmc = label
            raise

    async def get_power(self, bmc: BmcTarget, *, timeout: float | None = None) -> PowerState:
        """Whether the chassis power is on."""
        return decode_power_state(await self._call(bmc, _pyghmi.get_power, timeout))

    async def set_power(
        self, bmc: BmcTarget, action: PowerAction, *, timeout: float | None = None
    ) -> None:
        """Send a chassis control request (on, off, cycle, reset, soft off)."""
        code = PowerAction(action).value
        await self._call(bmc, lambda c: _pyghmi.raw(c, 0x00, 0x02, bytes([code])), timeout)

    async def get_chassis_status(
        self, bmc: BmcTarget, *, timeout: float | None = None
    ) -> ChassisStatus:
        """Power, faults, restore policy and identify light."""
        data = await self._call(bmc, lambda c: _pyghmi.raw(c, 0x00, 0x01), timeout)
        return decode_chassis_status(data)

    async def get_boot_device(self, bmc: BmcTarget, *, timeout: float | None = None) -> BootDevice:
        """The boot device override for the next boot."""
        return decode_boot_device(await self._call(bmc, _pyghmi.get_boot_device, timeout))

    async def set_boot_device(
        self,
        bmc: BmcTarget,
        device: str,
        *,
        persistent: bool = False,
        uefi: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Set the boot device override (one of :data:`BOOT_DEVICES`)."""
        name = normalize_boot_device(device)
        await self._call(bmc, lambda c: _pyghmi.set_boot_device(c, name, persistent, uefi), timeout)

    async def get_device_id(self, bmc: BmcTarget, *, timeout: float | None = None) -> DeviceId:
        """Firmware, IPMI version, manufacturer and product of the BMC."""
        data = await self._call(bmc, lambda c: _pyghmi.raw(c, 0x06, 0x01), timeout)
        return decode_device_id(data)

    async def get_sel(
        self, bmc: BmcTarget, *, timeout: float | None = None
    ) -> tuple[SelEntry, ...]:
        """Every entry of the System Event Log, oldest first."""
        records = await self._call(bmc, _pyghmi.read_sel, timeout)
        return tuple(decode_sel_record(raw, described) for raw, described in records)

    async def get_sel_since(
        self, bmc: BmcTarget, record_id: int, *, timeout: float | None = None
    ) -> SelSince:
        """The entries after ``record_id``; all of them, with ``reset``, if it was cleared away."""

        def read(command: Any) -> tuple[bool, list[tuple[bytes, dict[str, Any] | None]]]:
            following = _pyghmi.sel_next_id(command, record_id)
            if following is None:
                return True, _pyghmi.read_sel(command)
            if following == 0xFFFF:
                return False, []
            return False, _pyghmi.read_sel(command, following)

        reset, records = await self._call(bmc, read, timeout)
        entries = tuple(decode_sel_record(raw, described) for raw, described in records)
        last = entries[-1].record_id if entries else (None if reset else record_id)
        return SelSince(entries=entries, reset=reset, last_record_id=last)

    async def clear_sel(self, bmc: BmcTarget, *, timeout: float | None = None) -> None:
        """Erase the System Event Log."""
        await self._call(bmc, _pyghmi.clear_sel, timeout)

    async def get_sensors(
        self, bmc: BmcTarget, *, timeout: float | None = None
    ) -> tuple[SensorReading, ...]:
        """Every SDR sensor with its reading, states, status and thresholds. A sensor that
        cannot be decoded is ``NOT_AVAILABLE`` with its ``error``; the others are unaffected."""
        rows = await self._call(bmc, _pyghmi.read_sensors, timeout)
        return tuple(_sensor(*row) for row in rows)


def _sensor(
    number: int, reading: dict[str, Any], formula: Formula | None, raw: bytes | None
) -> SensorReading:
    """One row of ``read_sensors`` as a record; thresholds that do not decode are left out."""
    thresholds = None
    if formula is not None and raw is not None:
        with contextlib.suppress(MalformedResponse, ValueError, ArithmeticError):
            thresholds = decode_thresholds(raw, formula)
    try:
        return decode_sensor_reading(reading, number=number, thresholds=thresholds)
    except (MalformedResponse, ValueError, TypeError, ArithmeticError) as exc:
        return undecodable_sensor(number, reading, str(exc))
