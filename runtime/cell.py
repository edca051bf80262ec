"""``ActorCell``: runs one actor as a supervised child.

An idle actor holds no task: its mailbox and bindings are plain objects, so a
hundred thousand idle actors cost a few hundred bytes each. The first message
starts a task in the supervisor's nursery that handles messages one at a time;
after ``idle_timeout`` seconds without work the ``IdleRetirer`` ends that task.

A handler that raises while serving a call answers the caller with an
``ErrorEvent`` and the actor goes on. A handler that raises on a one-way
message crashes the actor: the supervisor decides what happens next, and the
mailbox and bindings survive a restart, so nothing queued is lost. Payloads
that do not decode are refused with an ``ErrorEvent`` (calls) or counted and
logged (one-way messages); they never crash the actor.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import outcome
import trio

from .actor import Actor, HandlerSpec
from .bus import Binding, check_exchange
from .delivery import Address, Delivery
from .envelopes import ErrorEvent
from .errors import ActorStartError, DecodeError, EncodeError, InvalidRoutingKey
from .mailbox import Mailbox, Overflow
from .supervisor import ExitCallback, Restart
from .topic import check_pattern

if TYPE_CHECKING:
    from .context import ActorContext
    from .runtime import Runtime

log = logging.getLogger("rackbus.actor")


class State(enum.Enum):
    """Lifecycle of an actor cell."""

    NEW = "new"
    RUNNING = "running"
    CRASHED = "crashed"
    STOPPING = "stopping"
    STOPPED = "stopped"


_WAKE = None
_RETIRE = 1

Observer = Callable[[str, Any, Any, "Exception | None"], None]
"""Called after a handler ran: (handler name, message, result, exception)."""


class Route:
    """One binding of one actor and the handlers that serve it; the bus's consumer.

    A delivery that one of the ``control=True`` handlers takes goes to the
    mailbox's control lane; everything else to the ordinary lane.
    """

    __slots__ = ("address", "binding", "cell", "control_handlers", "handlers")

    def __init__(
        self, cell: ActorCell, address: Address, handlers: tuple[HandlerSpec, ...]
    ) -> None:
        self.cell = cell
        self.address = address
        self.handlers = handlers
        self.control_handlers = tuple(spec for spec in handlers if spec.control)
        self.binding: Binding | None = None

    def is_control(self, delivery: Delivery) -> bool:
        """Whether ``delivery`` belongs in the control lane."""
        if not self.control_handlers:
            return False
        if len(self.control_handlers) == len(self.handlers):
            return True
        payload, type_name = delivery.payload, delivery.type_name
        return any(spec.accepts(payload, type_name) for spec in self.control_handlers)

    async def deliver(self, delivery: Delivery, deadline: float) -> None:
        if self.is_control(delivery):
            await self.cell.mailbox.put_control((self, delivery), deadline)
        else:
            await self.cell.mailbox.put((self, delivery), deadline)


class IdleRetirer:
    """Ends the tasks of actors that stayed idle for a whole ``idle_timeout``."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self.epoch = 0
        self.parked: set[ActorCell] = set()
        self._work = trio.Event()

    def park(self, cell: ActorCell) -> None:
        cell.park_epoch = self.epoch
        if not self.parked:
            self._work.set()
        self.parked.add(cell)

    async def run(self) -> None:
        """Sweep every ``idle_timeout`` seconds while some actor task is parked."""
        while True:
            if not self.parked:
                self._work = trio.Event()
                await self._work.wait()
            await trio.sleep(self.idle_timeout)
            stale = [cell for cell in self.parked if cell.park_epoch < self.epoch]
            for cell in stale:
                cell.wake(_RETIRE)
            self.epoch += 1


class ActorCell:
    """One registered actor: its mailbox, bindings, current instance and task."""

    __slots__ = (
        "_active",
        "_done",
        "_nursery",
        "_on_exit",
        "_on_removed",
        "_parked_task",
        "_scope",
        "_stop_mode",
        "_task",
        "actor",
        "crashes",
        "ctx",
        "factory",
        "generation",
        "id",
        "incarnations",
        "mailbox",
        "messages_in",
        "observers",
        "park_epoch",
        "rejected",
        "restart",
        "routes",
        "runtime",
        "shutdown",
        "state",
    )

    def __init__(
        self,
        runtime: Runtime,
        key: str,
        factory: Callable[[], Actor],
        *,
        restart: Restart,
        shutdown: float,
        mailbox_size: int,
        overflow: Overflow,
        on_removed: Callable[[ActorCell], None],
    ) -> None:
        self.id = key
        self.factory = factory
        self.runtime = runtime
        self.restart = restart
        self.shutdown = shutdown
        self.actor: Actor | None = None
        self.mailbox = Mailbox(key, mailbox_size, overflow, self._on_put)
        self.routes: list[Route] = []
        self.state = State.NEW
        self.ctx: ActorContext | None = None
        self.park_epoch = 0
        self.messages_in = 0
        self.rejected = 0
        self.incarnations = 0
        #: bumped when an incarnation starts and when it ends (crash or stop): the timers an
        #: incarnation set for itself fire only while it lives (``owns_timer``)
        self.generation = 0
        self.crashes = 0
        self._active = False
        self._parked_task: trio.lowlevel.Task | None = None
        self._task: trio.lowlevel.Task | None = None
        self._scope: trio.CancelScope | None = None
        self._done: trio.Event | None = None
        self._stop_mode: str | None = None
        self._on_exit: ExitCallback | None = None
        self._nursery: trio.Nursery | None = None
        self._on_removed = on_removed
        self.observers: list[Observer] | None = None

    def __repr__(self) -> str:
        return f"<ActorCell {self.id} {self.state.value} queued={len(self.mailbox)}>"

    # -- supervision -------------------------------------------------------

    async def start(self, nursery: trio.Nursery, on_exit: ExitCallback) -> None:
        from .context import ActorContext

        self._nursery = nursery
        self._on_exit = on_exit
        self._stop_mode = None
        self.generation += 1
        try:
            actor = self.factory()
            if not isinstance(actor, Actor):
                raise TypeError(f"factory returned {type(actor).__name__}, not an Actor")
            if not self.routes:
                self._make_routes(type(actor))  # bad patterns fail here, before on_start
            if self.ctx is None:
                self.ctx = ActorContext(self)
            actor.ctx = self.ctx
            await actor.on_start()
        except InvalidRoutingKey:
            self.state = State.CRASHED
            raise
        except Exception as exc:
            self.state = State.CRASHED
            raise ActorStartError(f"actor {self.id!r} failed to start: {exc!r}") from exc
        self.actor = actor
        if self._stop_mode == "final":  # stopped for good while on_start ran
            await self._call_on_stop()
            self.state = State.STOPPED
            raise ActorStartError(f"actor {self.id!r} was stopped while it started")
        self.incarnations += 1
        if self.mailbox.closed:
            self.mailbox = Mailbox(
                self.id, self.mailbox.capacity, self.mailbox.overflow, self._on_put
            )
        try:
            await self._bind()
        except BaseException:  # leave no binding behind, and end what on_start began
            with trio.CancelScope(shield=True):
                await self._unbind()
                await self._call_on_stop()
            self.state = State.CRASHED
            raise
        self.state = State.RUNNING
        if len(self.mailbox) or self._stop_mode == "self":  # ctx.stop() in on_start
            self._activate()

    def _make_routes(self, cls: type[Actor]) -> None:
        groups: dict[tuple[str, str], list[HandlerSpec]] = {}
        for spec in cls.handler_specs():
            if spec.exchange is None or spec.pattern is None:
                address = self.runtime.own_address(self.id)
            else:
                address = Address(spec.exchange, self.runtime.format_pattern(spec.pattern, self.id))
            check_exchange(address.exchange)
            check_pattern(address.routing_key)
            groups.setdefault((address.exchange, address.routing_key), []).append(spec)
        self.routes = [
            Route(self, Address(exchange, pattern), tuple(specs))
            for (exchange, pattern), specs in groups.items()
        ]

    async def _bind(self) -> None:
        bus = self.runtime.bus
        for route in self.routes:
            if route.binding is None:
                route.binding = await bus.bind(
                    route.address.exchange, route.address.routing_key, route
                )

    async def _unbind(self) -> None:
        bus = self.runtime.bus
        for route in self.routes:
            if route.binding is not None:
                binding, route.binding = route.binding, None
                await bus.unbind(binding)

    async def stop(self, *, final: bool) -> None:
        """Stop this incarnation (``final``: for good). Called from the actor's own task (a
        handler stopping its own actor through its ``ActorRef``), it cannot wait for that
        task: it asks for a stop after the current message, as ``ActorContext.stop`` does."""
        if self._task is not None and trio.lowlevel.current_task() is self._task:
            self.request_stop()
            return
        was_running = self.state is State.RUNNING
        self.generation += 1
        self._stop_mode = "final" if final else "restart"
        if final:
            self.state = State.STOPPING
            await self._unbind()
        deadline = self.runtime.stop_deadline(self.shutdown)
        allowed = deadline - trio.current_time()
        with trio.move_on_at(deadline) as grace:
            grace.shield = True
            await self._wait_task_done(drain=final and was_running)
            if was_running and self.actor is not None:
                await self._call_on_stop()
        if grace.cancelled_caught:
            if allowed > 0:
                log.warning("actor %s did not stop within %.3g s; cancelled", self.id, allowed)
            else:  # an error, a cancellation or Ctrl-C: the runtime leaves at once, by design
                log.debug("actor %s cancelled: the runtime is leaving at once", self.id)
            await self._cancel_task()
        if final:
            await self._close_mailbox()
            self.state = State.STOPPED
        elif self.state is State.RUNNING:
            self.state = State.STOPPED

    async def _wait_task_done(self, *, drain: bool) -> None:
        if drain and not self._active and len(self.mailbox) and self._nursery is not None:
            self._activate()
        if self._active and self._done is not None:
            if self._parked_task is not None:
                self.wake(_WAKE)
            await self._done.wait()

    async def _cancel_task(self) -> None:
        if self._scope is not None and self._done is not None:
            self._scope.cancel()
            with trio.CancelScope(shield=True):
                await self._done.wait()

    async def _call_on_stop(self) -> None:
        assert self.actor is not None
        try:
            await self.actor.on_stop()
        except Exception as exc:
            log.error("actor %s: on_stop raised %r", self.id, exc, exc_info=exc)

    async def _close_mailbox(self) -> None:
        self.mailbox.close()
        for _route, delivery in self.mailbox.drain():
            self.mailbox.dropped += 1
            delivery.settle()
            if delivery.responder is not None:
                await delivery.responder.respond_error(_stopped_error(self.id, "before handling"))

    def removed(self) -> None:
        self._on_removed(self)

    def owns_timer(self, generation: int) -> bool:
        """Whether a timer set by incarnation ``generation`` for itself may still fire."""
        return self.generation == generation

    def request_stop(self) -> None:
        """Stop after the current message (``ActorContext.stop``); the rest is refused."""
        if self._stop_mode is None:
            self._stop_mode = "self"
            if self._parked_task is not None:
                self.wake(_WAKE)

    # -- activation --------------------------------------------------------

    def _on_put(self) -> None:
        if self._parked_task is not None:
            self.wake(_WAKE)
        elif not self._active and self.state is State.RUNNING and self._stop_mode is None:
            self._activate()

    def wake(self, why: int | None) -> None:
        task = self._parked_task
        if task is not None:
            self._parked_task = None
            self.runtime.retirer.parked.discard(self)
            trio.lowlevel.reschedule(task, outcome.Value(why))

    def _activate(self) -> None:
        assert self._nursery is not None
        self._active = True
        self._done = trio.Event()
        self._nursery.start_soon(self._run, name=f"actor {self.id}")

    async def _park(self) -> bool:
        self._parked_task = trio.lowlevel.current_task()
        self.runtime.retirer.park(self)

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._parked_task = None
            self.runtime.retirer.parked.discard(self)
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort) is not _RETIRE

    async def _run(self) -> None:
        error: BaseException | None = None
        done = self._done
        mailbox = self.mailbox
        self._scope = scope = trio.CancelScope()
        self._task = trio.lowlevel.current_task()
        try:
            with scope:
                while True:
                    if self._stop_mode in ("restart", "self"):
                        break
                    try:
                        item = mailbox.get_nowait()
                    except trio.WouldBlock:
                        if self._stop_mode is not None or not await self._park():
                            break
                        continue
                    try:
                        error = await self._dispatch(item)
                    finally:
                        item[1].settle()
                    if error is not None:
                        break
        finally:
            self._active = False
            self._scope = None
            self._task = None
            if done is not None:
                done.set()
        if error is not None:
            self.state = State.CRASHED
            self.generation += 1
            self.crashes += 1
            self._report(error)
        elif self._stop_mode == "self":
            await self._stop_self()

    async def _stop_self(self) -> None:
        self.state = State.STOPPING
        self.generation += 1
        await self._unbind()
        if self.actor is not None:
            deadline = self.runtime.stop_deadline(self.shutdown)
            allowed = deadline - trio.current_time()
            with trio.move_on_at(deadline) as grace:
                await self._call_on_stop()
            if grace.cancelled_caught and allowed > 0:
                log.warning("actor %s: on_stop did not end within %.3g s", self.id, allowed)
        await self._close_mailbox()
        self.state = State.STOPPED
        self._report(None)

    def _report(self, error: BaseException | None) -> None:
        if self._on_exit is not None and self._stop_mode in (None, "self"):
            self._on_exit(self, error)

    async def _dispatch(self, item: tuple[Route, Delivery]) -> Exception | None:
        route, delivery = item
        self.messages_in += 1
        try:
            spec, message = self._select(route.handlers, delivery)
        except DecodeError as exc:
            await self._refuse(delivery, "DecodeError", str(exc))
            return None
        except Exception as exc:  # a handler type the codec cannot build: the actor's bug
            log.error("actor %s cannot decode a message for its handlers: %r", self.id, exc)
            await self._refuse(delivery, type(exc).__name__, str(exc), status=500)
            return None
        method = getattr(self.actor, spec.name)
        try:
            if spec.wants_delivery:
                result = await method(message, delivery)
            else:
                result = await method(message)
        except trio.Cancelled:
            if delivery.responder is not None:
                with trio.CancelScope(shield=True):
                    await delivery.responder.respond_error(
                        _stopped_error(self.id, "while handling")
                    )
            raise
        except Exception as exc:
            if self.observers:
                self._notify(spec.name, message, None, exc)
            if delivery.responder is None:
                return exc
            log.info("actor %s: call %s failed: %r", self.id, delivery.routing_key, exc)
            await delivery.responder.respond_error(
                ErrorEvent.from_exception(
                    exc,
                    context={"exchange": delivery.exchange, "routingKey": delivery.routing_key},
                    status=_status_of(exc),
                )
            )
            return None
        if delivery.responder is not None:
            try:
                await delivery.responder.respond(result)
            except EncodeError as exc:
                await delivery.responder.respond_error(ErrorEvent.from_exception(exc, status=500))
        if self.observers:
            self._notify(spec.name, message, result, None)
        return None

    def _select(
        self, handlers: tuple[HandlerSpec, ...], delivery: Delivery
    ) -> tuple[HandlerSpec, Any]:
        """The handler for a delivery and the message decoded for it.

        A handler whose type the payload already is wins; then one whose wire
        type name matches; an untyped JSON payload goes to the first handler it
        decodes into. ``DecodeError`` when none fits.
        """
        payload = delivery.payload
        for spec in handlers:
            wanted = spec.message_type
            if wanted is None or isinstance(payload, wanted):
                return spec, payload
        convert = self.runtime.codec.convert
        for spec in handlers:
            if spec.accepts(payload, delivery.type_name):
                return spec, convert(payload, spec.message_type)
        first_error: DecodeError | None = None
        if delivery.type_name == "Object":
            for spec in handlers:
                try:
                    return spec, convert(payload, spec.message_type)
                except DecodeError as exc:
                    first_error = first_error or exc
        if first_error is not None and len(handlers) == 1:
            raise first_error
        names = ", ".join(
            spec.message_type.__name__ for spec in handlers if spec.message_type is not None
        )
        raise DecodeError(
            f"no handler of {self.id!r} on {delivery.routing_key} takes this "
            f"{delivery.type_name} payload (expected one of: {names})"
            + (f"; {first_error}" if first_error else ""),
            first_error.fields if first_error else (),
        )

    def _notify(self, name: str, message: Any, result: Any, error: Exception | None) -> None:
        for observer in list(self.observers or ()):
            observer(name, message, result, error)

    async def _refuse(
        self, delivery: Delivery, name: str, reason: str, *, status: int = 400
    ) -> None:
        self.rejected += 1
        if delivery.responder is not None:
            await delivery.responder.respond_error(
                ErrorEvent(
                    name=name,
                    message=reason,
                    context={"exchange": delivery.exchange, "routingKey": delivery.routing_key},
                    status=status,
                )
            )
        else:
            log.warning("actor %s refused %r: %s", self.id, delivery, reason)
        return None


def _stopped_error(key: str, when: str) -> ErrorEvent:
    return ErrorEvent(
        name="ActorStopped", message=f"actor {key!r} stopped {when} the call", status=503
    )


def _status_of(exc: Exception) -> int:
    """An exception's own ``status`` (e.g. 400 for bad arguments) or 500."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else 500
