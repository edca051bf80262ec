"""The logging service: level routing, redaction, live level changes, bounded queue, console."""

from __future__ import annotations

import io
import logging
import string

import orjson
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.exchanges import logging as log_exchange
from actors.exchanges.configuration import ConfigurationClient
from actors.redaction import REDACTED, redact, redact_text
from actors.services.config_store import MemoryConfigStore
from actors.services.configuration import SERVICE_KEY, ConfigurationService
from actors.services.logging import (
    EMERG,
    NOTICE,
    SILLY,
    ConsoleFormatter,
    LogPublisher,
    level_name,
    start_logging,
)
from runtime import LogEvent, Runtime
from runtime.testing import Inbox

PYTHON_LEVELS = {
    "emerg": EMERG,
    "alert": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "notice": NOTICE,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "silly": SILLY,
}


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> logging.Logger:
    made = logging.getLogger(f"test.bus.{request.node.name}")
    made.setLevel(1)
    made.propagate = False
    return made


async def events_inbox(rt: Runtime, pattern: str = "#") -> Inbox:
    inbox = Inbox()
    await inbox.bind(rt.bus, log_exchange.NAME, pattern)
    return inbox


def test_every_python_level_maps_onto_one_of_the_eight() -> None:
    assert {level_name(n) for n in range(0, 80)} == set(log_exchange.LEVELS)
    for name, number in PYTHON_LEVELS.items():
        assert level_name(number) == name


async def test_each_level_is_published_on_its_own_key(autojump_clock, logger) -> None:
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        await start_logging(rt, console=False, logger=logger, min_level="silly")
        for name, number in PYTHON_LEVELS.items():
            logger.log(number, "a %s line", name, extra={"context": {"nodeId": "n1"}})
        deliveries = await inbox.wait_for(8)
    assert [d.routing_key for d in deliveries] == list(PYTHON_LEVELS)
    for delivery in deliveries:
        event = delivery.payload
        assert isinstance(event, LogEvent)
        assert event.message == f"a {delivery.routing_key} line"
        assert event.subject == "n1"
        assert event.module == logger.name
        assert event.caller.startswith("test_logging_service.py:")
        assert delivery.type_name == "LogEvent"


async def test_client_publishes_each_level_and_refuses_unknown_ones(autojump_clock) -> None:
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        client = log_exchange.LoggingClient(rt)
        for level in log_exchange.LEVELS:
            await client.log(LogEvent(level=level, message="m", timestamp="t", caller="c"))
        got = await inbox.wait_for(8)
        assert [d.routing_key for d in got] == list(log_exchange.LEVELS)
        with pytest.raises(ValueError, match="unknown log level 'crit'"):
            await client.log(LogEvent(level="crit", message="m", timestamp="t", caller="c"))


async def test_minimum_level_changes_live_through_configuration(autojump_clock, logger) -> None:
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        await rt.spawn(ConfigurationService, MemoryConfigStore(), key=SERVICE_KEY)
        publisher = await start_logging(rt, console=False, logger=logger)
        logger.debug("hidden at info")
        logger.info("shown at info")
        await inbox.wait_for(1)
        await ConfigurationClient(rt).set("logging.level", "debug")
        await trio.sleep(0.1)
        assert publisher.min_level == "debug"
        logger.debug("shown at debug")
        await inbox.wait_for(2)
        await ConfigurationClient(rt).set("logging.level", "error")
        await trio.sleep(0.1)
        logger.warning("hidden at error")
        logger.error("shown at error")
        got = await inbox.wait_for(3)
    assert [d.payload.message for d in got] == ["shown at info", "shown at debug", "shown at error"]
    assert len(inbox.deliveries) == 3


async def test_level_is_read_from_configuration_at_start(autojump_clock, logger) -> None:
    async with Runtime() as rt:
        await rt.spawn(ConfigurationService, MemoryConfigStore(), key=SERVICE_KEY)
        await ConfigurationClient(rt).set("logging.level", "notice")
        publisher = await start_logging(rt, console=False, logger=logger)
        assert publisher.min_level == "notice"


async def test_a_full_queue_counts_and_reports_what_it_dropped(autojump_clock, logger) -> None:
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        publisher = LogPublisher(capacity=5)
        logger.addHandler(publisher.handler)
        for n in range(12):
            logger.warning("line %d", n)  # the publisher is not running yet: the queue fills
        assert publisher.dropped == 7
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher.run, rt)
            got = await inbox.wait_for(6)
            nursery.cancel_scope.cancel()
        logger.removeHandler(publisher.handler)
    messages = [d.payload.message for d in got]
    assert messages[:5] == [f"line {n}" for n in range(5)]
    assert "7 log records were dropped" in messages[5]


async def test_records_from_other_threads_are_published(autojump_clock, logger) -> None:
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        await start_logging(rt, console=False, logger=logger)
        await trio.to_thread.run_sync(logger.warning, "from a worker thread")
        [delivery] = await inbox.wait_for(1)
    assert delivery.payload.message == "from a worker thread"


async def test_console_printer_prints_events(autojump_clock, logger) -> None:
    out = io.StringIO()
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        await start_logging(rt, console=out, logger=logger)
        logger.warning("disk %s is %d%% full", "sda", 91, extra={"context": {"nodeId": "n7"}})
        await inbox.wait_for(1)
        await trio.sleep(0.1)
    line = out.getvalue().strip()
    assert line.endswith(f"warning {logger.name} [n7]: disk sda is 91% full")


async def test_exceptions_travel_in_the_context(autojump_clock, logger) -> None:
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        await start_logging(rt, console=False, logger=logger)
        try:
            raise OSError("no route to BMC")
        except OSError:
            logger.exception("poll failed")
        [delivery] = await inbox.wait_for(1)
    assert "OSError: no route to BMC" in delivery.payload.context["error"]


def test_redaction_examples() -> None:
    assert redact({"password": "x", "obm": {"snmpCommunity": "c"}, "ok": 1}) == {
        "password": REDACTED,
        "obm": {"snmpCommunity": REDACTED},
        "ok": 1,
    }
    assert redact_text("login user=admin password=hunter2 api_key: abc") == (
        f"login user=admin password={REDACTED} api_key: {REDACTED}"
    )
    assert redact_text('{"token": "t0k3n"}') == f'{{"token": {REDACTED}}}'


SECRET_NAMES = st.sampled_from(
    [
        "password",
        "Password",
        "bmcPassword",
        "community",
        "snmpCommunity",
        "secret",
        "client_secret",
        "token",
        "authToken",
        "key",
        "apiKey",
        "PASSWD",
    ]
)
_SECRET_PART = st.text(
    alphabet=string.ascii_letters + string.digits + "#%+-/", min_size=4, max_size=20
)
# every secret holds a "!", which no other generated text does, so a hit is a real leak
SECRETS = st.tuples(_SECRET_PART, _SECRET_PART).map("!".join)
PLAIN = st.text(alphabet=string.ascii_lowercase + " ", max_size=20)


@st.composite
def contexts_with_secrets(draw: st.DrawFn) -> tuple[dict[str, object], list[str]]:
    secrets: list[str] = []

    def node(depth: int) -> dict[str, object]:
        out: dict[str, object] = {}
        for _ in range(draw(st.integers(1, 3))):
            secret = draw(SECRETS)
            secrets.append(secret)
            out[draw(SECRET_NAMES)] = secret
            out[f"plain{len(out)}"] = draw(PLAIN)
            if depth < 2 and draw(st.booleans()):
                out[f"nested{len(out)}"] = [node(depth + 1)]
        return out

    return node(0), secrets


@settings(max_examples=100)
@given(data=contexts_with_secrets(), inline=SECRETS, name=SECRET_NAMES)
async def test_no_generated_secret_is_ever_published(data, inline, name) -> None:
    context, secrets = data
    logger = logging.getLogger("test.bus.redaction")
    logger.setLevel(1)
    logger.propagate = False
    async with Runtime() as rt:
        inbox = await events_inbox(rt)
        out = io.StringIO()
        await start_logging(rt, console=out, logger=logger)
        logger.error("login failed %s=%s for %s", name, inline, "bmc", extra={"context": context})
        [delivery] = await inbox.wait_for(1)
        await trio.sleep(0.01)
    body = orjson.dumps(rt.codec.to_wire(delivery.payload)).decode()
    for secret in [*secrets, inline]:
        assert secret not in body
        assert secret not in out.getvalue()
    assert REDACTED in body


def test_the_console_formatter_prints_records_as_the_printer_does_and_redacted() -> None:
    record = logging.LogRecord(
        "rackbus.serve", logging.ERROR, __file__, 1, "login failed, password=%s", ("hunter2",), None
    )
    line = ConsoleFormatter().format(record)
    assert line.endswith(f"error   rackbus.serve: login failed, password={REDACTED}")
    assert "hunter2" not in line
