"""The async SNMP facade: pysnmp 7 (asyncio) driven from Trio through trio-asyncio.

The asyncio loop: :class:`SnmpClient` is an async context manager. On entry it uses the
trio-asyncio loop of the calling task if there is one, and otherwise opens its own with
``trio_asyncio.open_loop()`` for the life of the block.

A request first waits for an in-flight slot (a semaphore: pysnmp loses answers with hundreds in
flight), for at most ``slot_timeout`` seconds. Then it makes up to ``retries + 1`` tries, one
``aio_as_trio`` crossing each, under a Trio deadline a little longer than
``timeout * (retries + 1)``. pysnmp itself makes one try per crossing and never retransmits,
so nothing is sent for a request once it is given up (at its deadline or by its caller). A
target's first request first resolves its address (under the same kind of deadline) and
registers it with the engine, which is local work and does not use up the request's time.

On exit the engine's sockets are closed first, then the datagrams pysnmp has already read are
handled, and only then is the engine closed: a late answer is dropped, never raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

import trio
import trio_asyncio  # type: ignore[import-untyped, unused-ignore]
from pysnmp.hlapi.v3arch import asyncio as _hl  # type: ignore[import-untyped, unused-ignore]

from . import _pysnmp
from ._auth import CommunityAuth, SnmpTarget, UsmAuth
from ._convert import ConversionError, varbind_from_pysnmp
from ._errors import (
    Overloaded,
    SnmpClientError,
    SnmpError,
    Timeout,
    TransportError,
    WalkError,
    from_indication,
    redact,
)
from ._interfaces import IF_ENTRY, IF_X_ENTRY, Interface, interfaces_from_walk
from ._oid import Oid
from ._values import EndOfMibView, VarBind

OidLike = Oid | str | tuple[int, ...]

DEFAULT_TIMEOUT = 1.0
DEFAULT_RETRIES = 2
DEFAULT_MAX_REPETITIONS = 25
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_IN_FLIGHT = 50
DEFAULT_SLOT_TIMEOUT = 30.0
#: Extra time the Trio deadline allows beyond timeout * (retries + 1), for pysnmp's timer
#: (it checks for expired tries every 0.1 s) and the crossings between Trio and asyncio.
_DEADLINE_SLACK = 0.5
#: How long closing waits for pysnmp to handle the datagrams it has already read.
_CLOSE_GRACE = 1.0


class SnmpClient:
    """Async SNMP v2c/v3 manager; use as ``async with SnmpClient() as snmp:``.

    ``timeout`` (seconds per try) and ``retries`` can be overridden per call; they cover the
    exchange with the agent only. ``max_in_flight`` bounds concurrent requests, and a request
    waits at most ``slot_timeout`` seconds for its turn (else :class:`Overloaded`).
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        max_repetitions: int = DEFAULT_MAX_REPETITIONS,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        slot_timeout: float = DEFAULT_SLOT_TIMEOUT,
    ) -> None:
        if timeout <= 0 or slot_timeout <= 0 or retries < 0:
            raise ValueError("timeout and slot_timeout must be positive; retries >= 0")
        if max_repetitions < 1 or max_rows < 1 or max_in_flight < 1:
            raise ValueError("max_repetitions, max_rows and max_in_flight must be >= 1")
        self._timeout = timeout
        self._slot_timeout = slot_timeout
        self._retries = retries
        self._max_repetitions = max_repetitions
        self._max_rows = max_rows
        self._max_in_flight = max_in_flight
        self._in_flight = trio.Semaphore(max_in_flight)
        self._stack: contextlib.AsyncExitStack | None = None
        self._engine: Any = None
        self._transports: dict[tuple[str, int, float], Any] = {}
        self._resolving: dict[tuple[str, int, float], trio.Event] = {}
        self._target_names: dict[tuple[CommunityAuth | UsmAuth, str, int, float], str] = {}
        self._users: dict[str, UsmAuth] = {}
        self._loop: Any = None

    async def _aio(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an asyncio coroutine function on this client's loop, from any Trio task
        (tasks outside the one that opened the client do not see its loop otherwise)."""
        token = trio_asyncio.current_loop.set(self._loop)
        try:
            return await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)
        finally:
            trio_asyncio.current_loop.reset(token)

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            if trio_asyncio.current_loop.get() is None:
                await stack.enter_async_context(trio_asyncio.open_loop())
            self._loop = trio_asyncio.current_loop.get()
            self._engine = _hl.SnmpEngine()
            stack.push_async_callback(self._close_engine)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    async def _close_engine(self) -> None:
        """Close pysnmp's engine so that nothing arriving meanwhile can raise: stop reading,
        let pysnmp handle what it has read (its transports still registered), then close."""
        engine, self._engine = self._engine, None
        self._transports.clear()
        self._target_names.clear()
        self._users.clear()
        if engine is None:
            return
        try:
            _pysnmp.stop_receiving(engine)
            if not self._loop.is_closed():
                with trio.move_on_after(_CLOSE_GRACE, shield=True):
                    await self._loop.synchronize()
        finally:
            engine.close_dispatcher()

    async def _transport(self, target: SnmpTarget, timeout: float) -> Any:
        """pysnmp's transport target for the agent, resolved once: concurrent first requests
        to one agent wait for a single resolution (and so register together afterwards)."""
        key = (target.host, target.port, timeout)
        while (resolving := self._resolving.get(key)) is not None:
            await resolving.wait()
        transport = self._transports.get(key)
        if transport is None:
            self._resolving[key] = resolving = trio.Event()
            try:
                transport = await self._aio(_pysnmp.transport, target.host, target.port, timeout)
            except Exception as exc:
                message = redact(f"cannot resolve {target.host!r}: {exc}", target.auth.secrets)
                raise TransportError(message, agent=target.describe()) from None
            finally:
                del self._resolving[key]
                resolving.set()
            self._transports[key] = transport
        return transport

    async def _target_name(self, target: SnmpTarget, timeout: float, deadline: float) -> str:
        """The engine's name for ``target`` with this per-try timeout, registered
        on first use (and again when a v3 user's keys change, as the engine holds one set).

        Registering writes rows into pysnmp's configuration tables (about 10 ms for a new
        community) and makes pysnmp rebuild its lookup maps on the next message. It is done
        once per target, before taking an in-flight slot and outside the request's deadline,
        so that a burst of new targets registers together instead of in between the requests
        already out, and none of them times out for it. Resolving the address takes at most
        ``deadline`` seconds.
        """
        auth = target.auth
        key = (auth, target.host, target.port, timeout)
        name = self._target_names.get(key)
        stale = isinstance(auth, UsmAuth) and self._users.get(auth.user, auth) != auth
        if name is None or stale:
            with trio.fail_after(deadline):
                transport = await self._transport(target, timeout)
            name = await self._aio(_pysnmp.register, self._engine, auth, transport)
            self._target_names[key] = name
            if isinstance(auth, UsmAuth):
                self._users[auth.user] = auth
        return name

    async def _request(
        self,
        generator: Any,
        target: SnmpTarget,
        pdu_args: Sequence[Any],
        oids: Sequence[Oid],
        timeout: float | None,
        retries: int | None,
    ) -> tuple[VarBind, ...]:
        """One PDU exchange; its varbinds, or the error it stands for."""
        if self._engine is None:
            raise RuntimeError("use SnmpClient as 'async with SnmpClient() as snmp:'")
        tries = (self._retries if retries is None else retries) + 1
        per_try = self._timeout if timeout is None else timeout
        if tries < 1 or per_try <= 0:
            raise ValueError("timeout must be positive and retries >= 0")
        secrets = target.auth.secrets
        agent = redact(target.describe(), secrets)
        deadline = per_try * tries + _DEADLINE_SLACK
        try:
            name = await self._target_name(target, per_try, deadline)
            async with self._slot(agent):
                with trio.fail_after(deadline):
                    for _ in range(tries):
                        response = await self._aio(
                            _pysnmp.send,
                            self._engine,
                            generator,
                            name,
                            target.context,
                            pdu_args,
                            oids,
                        )
                        if not _pysnmp.timed_out(response):
                            break
            indication, status, index, varbinds = response
        except trio.TooSlowError:
            raise Timeout(f"no answer within {per_try * tries:g} s", agent=agent) from None
        except SnmpClientError:
            raise
        except Exception as exc:  # pysnmp raises for garbage it could not decode
            raise TransportError(
                f"{type(exc).__name__}: {from_indication(exc, secrets=secrets).message}",
                agent=agent,
            ) from None
        if indication:
            raise from_indication(indication, secrets=secrets, agent=agent)
        if int(status):
            position = int(index)
            oid = None
            if 0 < position <= len(varbinds):
                oid = str(Oid(tuple(varbinds[position - 1][0])))
            raise SnmpError(int(status), position, oid=oid, agent=agent)
        try:
            return tuple(varbind_from_pysnmp(name, value) for name, value in varbinds)
        except ConversionError as exc:
            raise TransportError(str(exc), agent=agent) from None

    @contextlib.asynccontextmanager
    async def _slot(self, agent: str) -> AsyncIterator[None]:
        """An in-flight slot for one request, waited for at most ``slot_timeout`` seconds."""
        try:
            with trio.fail_after(self._slot_timeout):
                await self._in_flight.acquire()
        except trio.TooSlowError:
            raise Overloaded(
                f"no in-flight slot free within {self._slot_timeout:g} s "
                f"(all {self._max_in_flight} taken); the agent was not asked",
                agent=agent,
            ) from None
        try:
            yield
        finally:
            self._in_flight.release()

    async def get(
        self,
        target: SnmpTarget,
        *oids: OidLike,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> tuple[VarBind, ...]:
        """GET: one varbind per OID, in order; missing ones carry the no-such markers."""
        parsed = [Oid.parse(o) for o in oids]
        return await self._request(_pysnmp.GET, target, (), parsed, timeout, retries)

    async def get_next(
        self,
        target: SnmpTarget,
        *oids: OidLike,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> tuple[VarBind, ...]:
        """GETNEXT: for each OID, the first one after it (or ``EndOfMibView``)."""
        parsed = [Oid.parse(o) for o in oids]
        return await self._request(_pysnmp.NEXT, target, (), parsed, timeout, retries)

    async def walk(
        self,
        target: SnmpTarget,
        root: OidLike,
        *,
        max_repetitions: int | None = None,
        max_rows: int | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> tuple[VarBind, ...]:
        """Every varbind strictly under ``root``, by GETBULK, in OID order.

        Like pysnmp's ``bulk_walk_cmd(..., lexicographicMode=False)``, it stops at the first
        OID outside the subtree; it also stops at ``EndOfMibView``, fails with
        :class:`WalkError` on an OID that does not increase or past ``max_rows`` rows.
        """
        base = Oid.parse(root)
        repetitions = max_repetitions or self._max_repetitions
        limit = max_rows or self._max_rows
        rows: list[VarBind] = []
        current = base
        while True:
            batch = await self._request(
                _pysnmp.BULK, target, (0, repetitions), [current], timeout, retries
            )
            if not batch:
                return tuple(rows)
            for vb in batch:
                if isinstance(vb.value, EndOfMibView) or not vb.oid.is_within(base):
                    return tuple(rows)
                if vb.oid <= current:
                    raise WalkError(
                        f"agent returned {vb.oid} after {current}", agent=target.describe()
                    )
                if len(rows) >= limit:
                    raise WalkError(f"more than {limit} rows under {base}", agent=target.describe())
                rows.append(vb)
                current = vb.oid

    async def get_interfaces(
        self, target: SnmpTarget, *, timeout: float | None = None, retries: int | None = None
    ) -> tuple[Interface, ...]:
        """The IF-MIB interface table, with ifXTable names and HC counters when present."""
        if_table = await self.walk(target, IF_ENTRY, timeout=timeout, retries=retries)
        if_x_table = await self.walk(target, IF_X_ENTRY, timeout=timeout, retries=retries)
        return interfaces_from_walk(if_table, if_x_table)
