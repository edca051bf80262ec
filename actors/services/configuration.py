"""``ConfigurationService``: hosts ``on.configuration`` over a schema and a store.

Settings start at their defaults, overlaid by what the store kept. ``methods.set``
validates, persists, then announces ``changed.<section>``; ``methods.get`` reads.
A stored value the schema no longer accepts is logged and ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from runtime import Actor, handler

from ..exchanges import configuration as conv
from .config_store import ConfigStore
from .settings import Schema

log = logging.getLogger("rackbus.configuration")

SERVICE_KEY = "configuration"


class ConfigurationService(Actor):
    """The configuration service; spawn one per runtime."""

    def __init__(self, store: ConfigStore, schema: Schema | None = None) -> None:
        self.store = store
        self.schema = schema or Schema()
        self.values: dict[str, Any] = {}

    async def on_start(self) -> None:
        self.values = self.schema.defaults()
        for key, value in (await self.store.load()).items():
            try:
                self.values[key] = self.schema.validate(key, value)
            except ValueError as exc:
                log.warning("ignoring stored setting: %s", exc)

    @handler(conv.NAME, conv.SET.template)
    async def set(self, request: conv.ConfigurationSet) -> conv.ConfigurationValue:
        value = self.schema.validate(request.key, request.value)
        previous = self.values.get(request.key)
        await self.store.save(request.key, value)
        self.values[request.key] = value
        if value != previous:
            await conv.ConfigurationClient(self.ctx).changed(
                conv.ConfigurationChanged(request.key, value, previous)
            )
        return conv.ConfigurationValue(request.key, value)

    @handler(conv.NAME, conv.GET.template)
    async def get(self, request: conv.ConfigurationGet) -> conv.ConfigurationValue:
        keys = self.schema.select(request.key)
        if keys == [request.key]:
            return conv.ConfigurationValue(request.key, self.values[request.key])
        return conv.ConfigurationValue(request.key, {key: self.values[key] for key in keys})
