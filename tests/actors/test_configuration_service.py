"""The configuration service: set/get, validation, persistence across restarts, change events."""

from __future__ import annotations

import pathlib

import pytest

from actors.exchanges import configuration as conv
from actors.services.config_store import MemoryConfigStore, SqliteConfigStore
from actors.services.configuration import SERVICE_KEY, ConfigurationService
from actors.services.settings import Schema, Setting
from runtime import Address, RemoteError, Runtime
from runtime.testing import Inbox


async def start(rt: Runtime, store: object) -> conv.ConfigurationClient:
    await rt.spawn(ConfigurationService, store, key=SERVICE_KEY)
    return conv.ConfigurationClient(rt)


async def test_set_and_get(autojump_clock) -> None:
    async with Runtime() as rt:
        config = await start(rt, MemoryConfigStore())
        assert await config.get("logging.level") == "info"
        assert await config.set("logging.level", "debug") == "debug"
        assert await config.get("logging.level") == "debug"
        assert await config.get("logging") == {"logging.level": "debug"}
        everything = await config.get()
        assert everything["logging.level"] == "debug"
        assert everything["rpc.timeout"] == 5.0
        assert await config.set("rpc.timeout", 2) == 2.0


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("logging.levle", "info", "logging.levle"),
        ("nope", 1, "nope"),
        ("logging.level", "loud", "loud"),
        ("logging.level", 3, "logging.level"),
        ("rpc.timeout", -1, "greater than 0"),
        ("rpc.timeout", "soon", "rpc.timeout"),
    ],
)
async def test_bad_keys_and_values_are_refused_by_name(
    autojump_clock, key: str, value: object, named: str
) -> None:
    async with Runtime() as rt:
        config = await start(rt, MemoryConfigStore())
        with pytest.raises(RemoteError) as caught:
            await config.set(key, value)
        assert caught.value.name == "SettingError"
        assert caught.value.status == 400
        assert named in caught.value.message
        assert await config.get("logging.level") == "info"  # nothing changed


async def test_unknown_section_on_get(autojump_clock) -> None:
    async with Runtime() as rt:
        config = await start(rt, MemoryConfigStore())
        with pytest.raises(RemoteError, match="unknown setting or section 'dhcp'"):
            await config.get("dhcp")


async def test_malformed_request_is_refused(autojump_clock) -> None:
    async with Runtime() as rt:
        await start(rt, MemoryConfigStore())
        with pytest.raises(RemoteError) as caught:
            await rt.call(Address(conv.NAME, "methods.set"), {"value": 1})
        assert caught.value.name == "DecodeError"
        assert "key" in caught.value.message


async def test_settings_survive_a_restart(tmp_path: pathlib.Path) -> None:
    # real time: SQLite works in a worker thread, which virtual time would not wait for
    path = tmp_path / "state" / "config.sqlite3"
    async with Runtime() as rt:
        config = await start(rt, SqliteConfigStore(path))
        await config.set("logging.level", "warning")
        await config.set("rpc.timeout", 1.5)
    async with Runtime() as rt:
        config = await start(rt, SqliteConfigStore(path))
        assert await config.get("logging.level") == "warning"
        assert await config.get("rpc.timeout") == 1.5


async def test_a_stored_value_the_schema_no_longer_accepts_is_ignored(
    autojump_clock, caplog
) -> None:
    store = MemoryConfigStore()
    store.values = {"logging.level": "loud", "gone.setting": 1}
    async with Runtime() as rt:
        config = await start(rt, store)
        assert await config.get("logging.level") == "info"
    assert "ignoring stored setting" in caplog.text


async def test_changes_are_announced(autojump_clock) -> None:
    async with Runtime() as rt:
        config = await start(rt, MemoryConfigStore())
        changes = Inbox()
        await changes.bind(rt.bus, conv.NAME, conv.CHANGED.pattern(section="logging"))
        await config.set("logging.level", "debug")
        await config.set("logging.level", "debug")  # no change, no event
        await config.set("rpc.timeout", 3)  # other section
        await config.set("logging.level", "error")
        [first, second] = await changes.wait_for(2)
        assert first.payload == conv.ConfigurationChanged("logging.level", "debug", "info")
        assert second.payload == conv.ConfigurationChanged("logging.level", "error", "debug")
        assert first.routing_key == "changed.logging"
        assert len(changes.deliveries) == 2


def test_schema_rejects_malformed_definitions() -> None:
    with pytest.raises(ValueError, match="section"):
        Schema([Setting("flat", int, 1, "no section")])
    with pytest.raises(ValueError, match="twice"):
        Schema([Setting("a.b", int, 1, ""), Setting("a.b", int, 2, "")])
    with pytest.raises(ValueError, match="bad value"):
        Schema([Setting("a.b", int, "not an int", "")])
