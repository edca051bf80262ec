"""The ``Actor`` base class and the ``@handler`` decorator.

An actor is a class with state and ``async`` handler methods. Each handler names
the binding it serves (an exchange and a routing-key pattern, where ``{key}``
stands for the actor's own key) and the message type it accepts, taken from
the annotation of its first parameter. Handlers without a binding serve
messages sent to the actor's own address, chosen by message type::

    class Node(Actor):
        @handler("on.task", "run.{key}")
        async def run(self, request: RunTask) -> Result: ...

        @handler()
        async def ping(self, message: Ping) -> str:
            return "pong"

The runtime binds, decodes and dispatches; an actor handles one message at a
time, in arrival order.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import attrs

from .mailbox import Overflow

if TYPE_CHECKING:
    from .context import ActorContext

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_HANDLER_ATTR = "__rackbus_handler__"


@attrs.frozen
class HandlerSpec:
    """One handler of an actor class, as declared with ``@handler``."""

    name: str
    exchange: str | None
    pattern: str | None
    control: bool
    message_type: type | None
    wants_delivery: bool

    @property
    def own_address(self) -> bool:
        """True for handlers reached through the actor's own address."""
        return self.exchange is None

    def accepts(self, payload: object, type_name: str) -> bool:
        """True when this handler is the one for a payload of that type."""
        wanted = self.message_type
        return (
            wanted is None
            or isinstance(payload, wanted)
            or getattr(wanted, "__rackbus_type__", wanted.__name__) == type_name
        )


def handler(
    exchange: str | None = None, pattern: str | None = None, *, control: bool = False
) -> Callable[[F], F]:
    """Mark an ``async`` method as a message handler.

    ``exchange`` and ``pattern`` give the binding (``{key}`` is replaced by the
    actor's key, which must then be one literal word); leave both out to serve
    the actor's own address. ``control=True`` puts these messages in the control
    lane: ahead of others, never dropped (use it for cancel and stop requests).
    """
    if (exchange is None) != (pattern is None):
        raise TypeError("give both exchange and pattern, or neither")

    def mark(func: F) -> F:
        if not inspect.iscoroutinefunction(cast(Any, func)):
            raise TypeError(f"handler {func.__qualname__} must be an async def")
        setattr(func, _HANDLER_ATTR, (exchange, pattern, control))
        return func

    return mark


def _message_type(func: Callable[..., Any]) -> tuple[type | None, bool]:
    params = list(inspect.signature(func).parameters.values())[1:]
    if not params or len(params) > 2:
        raise TypeError(
            f"handler {func.__qualname__} takes (self, message) or (self, message, delivery)"
        )
    hints = typing.get_type_hints(func)
    wanted = hints.get(params[0].name)
    if wanted is None or wanted is Any or wanted is object:
        return None, len(params) == 2
    if not isinstance(wanted, type):
        raise TypeError(
            f"handler {func.__qualname__}: annotate the message with a class, not {wanted!r}"
        )
    return wanted, len(params) == 2


class Actor:
    """Base class of every actor; subclass it and declare handlers.

    Class options: ``mailbox_size`` (bound of the mailbox) and ``overflow``
    (what a full mailbox does; ``Overflow.BLOCK`` makes senders wait).
    Hooks: ``on_start`` runs before the first message, ``on_stop`` after the
    last. ``self.ctx`` is the actor's ``ActorContext``.
    """

    mailbox_size: ClassVar[int] = 64
    overflow: ClassVar[Overflow] = Overflow.BLOCK
    _handler_specs: ClassVar[tuple[HandlerSpec, ...] | None] = None

    ctx: ActorContext

    async def on_start(self) -> None:
        """Called once per incarnation, before any message; raising fails the start."""

    async def on_stop(self) -> None:
        """Called when the actor stops for good or before a restart replaces it."""

    @classmethod
    def handler_specs(cls) -> tuple[HandlerSpec, ...]:
        """The handlers of this class, in definition order (resolved once per class)."""
        specs = cls.__dict__.get("_handler_specs")
        if specs is None:
            specs = tuple(_collect(cls))
            cls._handler_specs = specs
        return specs


def _collect(cls: type[Actor]) -> list[HandlerSpec]:
    seen: set[str] = set()
    specs: list[HandlerSpec] = []
    for klass in cls.__mro__:
        for name, func in vars(klass).items():
            marker = getattr(func, _HANDLER_ATTR, None)
            if marker is None or name in seen:
                continue
            seen.add(name)
            exchange, pattern, control = marker
            message_type, wants_delivery = _message_type(func)
            specs.append(
                HandlerSpec(name, exchange, pattern, control, message_type, wants_delivery)
            )
    return specs
