"""``on.configuration``: read and change settings at run time.

RackHD deleted its configuration protocol in 2015 and never defined payloads
worth keeping, so they are defined here:

* ``methods.set`` takes ``ConfigurationSet {key, value}`` and replies with the
  stored ``ConfigurationValue {key, value}``. Keys are dotted
  (``<section>.<name>``, e.g. ``logging.level``) and must be known settings;
  unknown keys and bad values are refused with an error naming them.
* ``methods.get`` takes ``ConfigurationGet {key}``: a setting's key gives its
  value, a section (``logging``) gives ``{key: value}`` of every setting in it,
  and ``""`` gives every setting.
* Addition: ``changed.<section>`` (event) carries ``ConfigurationChanged
  {key, value, previous}`` after every change, so services react at once.
"""

from __future__ import annotations

from typing import Any

import attrs

from runtime import message

from ..convention import Client, ExchangeDef, KeyDef, Kind

NAME = "on.configuration"


@message("ConfigurationSet")
@attrs.frozen
class ConfigurationSet:
    """Request of ``methods.set``."""

    key: str
    value: Any


@message("ConfigurationGet")
@attrs.frozen
class ConfigurationGet:
    """Request of ``methods.get``; ``key`` is a setting, a section or ``""`` for all."""

    key: str = ""


@message("ConfigurationValue")
@attrs.frozen
class ConfigurationValue:
    """Reply of ``methods.set`` and ``methods.get``."""

    key: str
    value: Any


@message("ConfigurationChanged")
@attrs.frozen
class ConfigurationChanged:
    """Event ``changed.<section>``: a setting changed from ``previous`` to ``value``."""

    key: str
    value: Any
    previous: Any = None


SET = KeyDef(
    NAME,
    "methods.set",
    Kind.RPC,
    ConfigurationSet,
    ConfigurationValue,
    stub="set",
    seed="methods.set",
    doc="change one setting",
)
GET = KeyDef(
    NAME,
    "methods.get",
    Kind.RPC,
    ConfigurationGet,
    ConfigurationValue,
    stub="get",
    seed="methods.get",
    doc="read a setting, a section or everything",
)
CHANGED = KeyDef(
    NAME,
    "changed.{section}",
    Kind.EVENT,
    ConfigurationChanged,
    stub="changed",
    doc="addition: published after every change, keyed by the setting's section",
)


class ConfigurationClient(Client):
    """Calls the configuration service: ``await config.set("logging.level", "debug")``."""

    async def set(self, key: str, value: Any) -> Any:
        """Change a setting; returns the value as stored."""
        reply = await self._call(SET, ConfigurationSet(key, value), ConfigurationValue)
        return reply.value

    async def get(self, key: str = "") -> Any:
        """A setting's value, a section's ``{key: value}``, or everything for ``""``."""
        reply = await self._call(GET, ConfigurationGet(key), ConfigurationValue)
        return reply.value

    async def changed(self, event: ConfigurationChanged) -> None:
        """Announce a change (the configuration service does this itself)."""
        await self._publish(CHANGED, event, section=event.key.split(".", 1)[0])


EXCHANGE = ExchangeDef(
    NAME,
    "Configuration",
    "RPC channel for making dynamic system configuration changes",
    (SET, GET, CHANGED),
    ConfigurationClient,
)
