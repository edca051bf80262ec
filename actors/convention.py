"""The building blocks of the nine exchange definitions: exchanges, routing keys, ids, callers.

A ``KeyDef`` is one routing key of the conventions, written as a template such
as ``ipmi.command.{command}.result.{graphid}``. It builds concrete keys
(``key(command="power", graphid=g)``) with every id validated, the binding
pattern that matches them (``pattern()`` gives ``ipmi.command.*.result.*``),
and the pattern an actor binds with its own key in one place
(``actor_pattern("graphid")`` gives ``ipmi.command.*.result.{key}``). An id is
one word of letters, digits and ``-_:@``: it can never carry a dot or a
wildcard, so a hostile id can never widen a binding.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

import attrs

from runtime import DEFAULT_CALL_TIMEOUT, Address, InvalidRoutingKey

T = TypeVar("T")

MAX_ID_LENGTH = 128
_ID = re.compile(rf"[A-Za-z0-9_\-:@]{{1,{MAX_ID_LENGTH}}}\Z")
_PLACEHOLDER = re.compile(r"\{([a-z]+)\}")


class InvalidId(InvalidRoutingKey):
    """An id that cannot be one word of a routing key.

    Raised by a payload's field validator it carries attrs' arguments
    ``(message, attribute, value)``, so a decode error names the field; its
    text is the message alone either way.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _id_message(value: object, what: str) -> str:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return (
        f"invalid {what} {shown}: 1-{MAX_ID_LENGTH} characters of letters, digits "
        "and '-_:@' (no dots, no wildcards)"
    )


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a safe routing-key word, else raise ``InvalidId`` naming it."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidId(_id_message(value, what))
    return value


ID_FIELD = {"id": True}
"""Metadata of a payload field holding an id that routing keys carry (node, task, graph,
poller): ``attrs.field(validator=valid_id, metadata=ID_FIELD)``."""


def valid_id(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: the field is an id as ``check_id`` wants it.

    Checked whenever the payload is built, so a payload from the bus with ``#``,
    ``*``, a dot or an empty id is refused (a 400 for a call) before any handler
    could put it in a routing key.
    """
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidId(_id_message(value, attribute.name), attribute, value)


def valid_optional_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: the field is ``None`` or an id (see ``valid_id``)."""
    if value is not None:
        valid_id(instance, attribute, value)


class Kind(enum.Enum):
    """How a key is used."""

    RPC = "rpc"
    """A request that gets one reply (the first wins)."""
    EVENT = "event"
    """A broadcast to whoever listens."""
    COMMAND = "command"
    """A one-way message to whoever serves a target (a task, a poller)."""


@attrs.frozen
class KeyDef:
    """One routing key of an exchange; see the module docstring."""

    exchange: str
    template: str
    kind: Kind
    request: type | None
    """Payload class of the request, event or command (``None``: any JSON object)."""
    reply: type | None = None
    """Payload class of an RPC's reply value (``None``: any JSON value)."""
    stub: str | None = None
    """Name of the client method that sends it, if any."""
    seed: str | None = None
    """The key as the conventions write it; ``None`` marks a documented addition."""
    doc: str = ""

    @property
    def params(self) -> tuple[str, ...]:
        """The placeholders of the template, in order."""
        return tuple(_PLACEHOLDER.findall(self.template))

    def key(self, **params: str) -> str:
        """The concrete routing key; every parameter is required and validated."""
        self._check_names(params)
        missing = [name for name in self.params if name not in params]
        if missing:
            raise TypeError(f"{self.template} needs {', '.join(missing)}")
        return self._fill({name: check_id(value, name) for name, value in params.items()})

    def address(self, **params: str) -> Address:
        """``Address(exchange, key(**params))``."""
        return Address(self.exchange, self.key(**params))

    def pattern(self, **params: str) -> str:
        """The binding pattern; parameters left out match any one word."""
        self._check_names(params)
        return self._fill(
            {name: check_id(params[name], name) if name in params else "*" for name in self.params}
        )

    def actor_pattern(self, param: str, **params: str) -> str:
        """The pattern for ``@handler``: ``param`` becomes the actor's ``{key}``."""
        if param not in self.params:
            raise TypeError(f"{self.template} has no parameter {param!r}")
        filled = self.pattern(**{k: v for k, v in params.items() if k != param})
        words = self.template.split(".")
        out = filled.split(".")
        for index, word in enumerate(words):
            if word == "{" + param + "}":
                out[index] = "{key}"
        return ".".join(out)

    def parse(self, routing_key: str) -> dict[str, str] | None:
        """The parameters of a concrete key of this template, or ``None`` if it is not one.

        A parameter the template names twice must have the same value both times.
        """
        words = self.template.split(".")
        given = routing_key.split(".")
        if len(words) != len(given):
            return None
        found: dict[str, str] = {}
        for word, value in zip(words, given, strict=True):
            match = _PLACEHOLDER.fullmatch(word)
            if match:
                if not _ID.match(value) or found.get(match.group(1), value) != value:
                    return None
                found[match.group(1)] = value
            elif word != value:
                return None
        return found

    def _check_names(self, params: dict[str, Any]) -> None:
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(f"{self.template} has no parameter {', '.join(sorted(unknown))}")

    def _fill(self, values: dict[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)


@attrs.frozen
class ExchangeDef:
    """One of the nine exchanges: its AMQP name, its keys and its client class."""

    name: str
    """AMQP name, ``on.<something>``."""
    title: str
    """The name the conventions use (``DHCP``, ``task-graph-runner``)."""
    summary: str
    keys: tuple[KeyDef, ...]
    client: type | None = None
    type: str = "topic"
    """AMQP exchange type; RackHD declared every exchange this way."""
    durable: bool = True
    """Survives a broker restart (RackHD: durable, not auto-deleted)."""

    def __iter__(self) -> Iterator[KeyDef]:
        return iter(self.keys)

    def get(self, template: str) -> KeyDef:
        """The key with that template; ``KeyError`` otherwise."""
        for key in self.keys:
            if key.template == template:
                return key
        raise KeyError(f"{self.name} has no key {template!r}")


class Messenger(Protocol):
    """What a client needs: a ``Runtime`` or an ``ActorContext`` both qualify."""

    async def publish(
        self, exchange: str, routing_key: str, message: object, *, timeout: float | None = None
    ) -> None: ...

    async def call(
        self,
        to: Any,
        message: object,
        *,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        returns: type[T] | None = None,
    ) -> Any: ...


class Client:
    """Base of the per-exchange client stubs: holds the messenger and the call deadline."""

    def __init__(self, messenger: Messenger, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> None:
        self.messenger = messenger
        self.timeout = timeout

    async def _call(self, key: KeyDef, message: object, returns: Any = None, **params: str) -> Any:
        return await self.messenger.call(
            key.address(**params), message, timeout=self.timeout, returns=returns
        )

    async def _publish(self, key: KeyDef, message: object, **params: str) -> None:
        await self.messenger.publish(key.exchange, key.key(**params), message)
