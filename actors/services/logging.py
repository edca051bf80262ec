"""The logging service: Python ``logging`` in, ``LogEvent`` on ``on.logging`` out.

``LogPublisher.handler`` is a stdlib ``logging.Handler``: it maps Python levels
onto the eight conventions' levels, drops records below the minimum level
(changed live through the ``logging.level`` setting), redacts secrets and
queues the event; ``LogPublisher.run`` publishes the queue on the bus. The
queue is bounded: when it is full, records are counted and the count is
published as a warning once there is room, so nothing vanishes unannounced.
``ConsolePrinter`` prints every event it receives, one line each (control
characters escaped), for ``rackbus serve``.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import os
import re
import reprlib
import socket
import sys
import threading
from collections import deque
from typing import Any, TextIO

import trio

from runtime import Actor, Delivery, LogEvent, NoResponder, Restart, Runtime, TaskChild, handler

from ..exchanges import configuration as config_exchange
from ..exchanges import logging as log_exchange
from ..redaction import redact, redact_text

log = logging.getLogger("rackbus.logging")

EMERG = 60
NOTICE = 25
SILLY = 5

_publishing = contextvars.ContextVar("rackbus_log_publishing", default=False)


def level_name(levelno: int) -> str:
    """The conventions' level for a Python level number."""
    if levelno >= EMERG:
        return "emerg"
    if levelno >= logging.CRITICAL:
        return "alert"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= NOTICE:
        return "notice"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "silly"


def _subject(context: dict[str, Any]) -> str:
    for name in ("nodeId", "id", "macaddress", "mac", "ip"):
        value = context.get(name)
        if isinstance(value, str) and value:
            return value
    return "Server"


def to_event(record: logging.LogRecord, *, name: str, host: str) -> LogEvent:
    """A redacted ``LogEvent`` for a record; ``extra={"context": {...}}`` becomes its context."""
    raw = getattr(record, "context", None)
    context: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    if record.exc_info:
        context["error"] = logging.Formatter().formatException(record.exc_info)
    context = redact(_jsonable(context))
    return LogEvent(
        level=level_name(record.levelno),
        message=redact_text(record.getMessage()),
        timestamp=datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
        caller=f"{os.path.basename(record.pathname)}:{record.lineno}",
        subject=_subject(context),
        name=name,
        host=host,
        module=record.name,
        context=context,
    )


def unformattable_event(
    record: logging.LogRecord, error: Exception, *, name: str, host: str
) -> LogEvent:
    """A ``LogEvent`` for a record whose message cannot be formatted (its arguments do not
    fit its format): it names the format (redacted) and the error's type, never the
    arguments, which may hold secrets."""
    try:
        template = redact_text(str(record.msg))
    except Exception:
        template = f"<unprintable {type(record.msg).__name__}>"
    caller = f"{os.path.basename(str(record.pathname))}:{record.lineno}"
    return LogEvent(
        level=level_name(record.levelno),
        message=f"log call at {caller} could not be formatted "
        f"({type(error).__name__}); its format was: {template}",
        timestamp=datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
        caller=caller,
        name=name,
        host=host,
        module=str(record.name),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


class BusLogHandler(logging.Handler):
    """Queues redacted ``LogEvent``s for ``LogPublisher``; safe to call from any thread."""

    def __init__(self, publisher: LogPublisher) -> None:
        super().__init__(logging.NOTSET)
        self.publisher = publisher

    def emit(self, record: logging.LogRecord) -> None:
        publisher = self.publisher
        if log_exchange.RANK[level_name(record.levelno)] < log_exchange.RANK[publisher.min_level]:
            return
        if _publishing.get():
            publisher.dropped += 1  # raised while publishing a record: counted, not looped
            return
        try:
            event = to_event(record, name=publisher.name, host=publisher.host)
        except Exception as exc:
            # Not ``handleError``: it prints the record's raw arguments to stderr.
            event = unformattable_event(record, exc, name=publisher.name, host=publisher.host)
        publisher.enqueue(event)


class LogPublisher:
    """The bounded queue between ``BusLogHandler`` and the bus."""

    def __init__(self, *, name: str = "rackbus", min_level: str = "info", capacity: int = 10_000):
        self.name = name
        self.host = socket.gethostname().split(".")[0]
        self.min_level = log_exchange.check_level(min_level)
        self.capacity = capacity
        self.dropped = 0
        self.published = 0
        self.handler = BusLogHandler(self)
        self._queue: deque[LogEvent] = deque()
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._wakeup = trio.Event()
        self._closing = False

    @property
    def running(self) -> bool:
        """True while ``run`` publishes (records are then queued rather than lost)."""
        return self._token is not None and not self._closing

    def set_level(self, level: str) -> None:
        """Change the minimum level; takes effect for the next record."""
        self.min_level = log_exchange.check_level(level)

    def enqueue(self, event: LogEvent) -> None:
        """Queue an event (any thread); counts it as dropped when the queue is full."""
        with self._lock:
            if len(self._queue) >= self.capacity:
                self.dropped += 1
            else:
                self._queue.append(event)
        token = self._token
        if token is not None:
            try:
                token.run_sync_soon(self._wake)
            except trio.RunFinishedError:
                pass

    def _wake(self) -> None:
        self._wakeup.set()

    async def run(self, runtime: Runtime) -> None:
        """Publish queued events until cancelled (a supervised task)."""
        self._token = trio.lowlevel.current_trio_token()
        self._closing = False
        client = log_exchange.LoggingClient(runtime)
        try:
            while True:
                await self._drain(client)
                if self._closing:
                    return
                await self._wakeup.wait()
                self._wakeup = trio.Event()
        finally:
            self._token = None

    async def close(self) -> None:
        """Ask ``run`` to publish what is queued and return."""
        self._closing = True
        self._wakeup.set()
        await trio.lowlevel.checkpoint()

    async def _drain(self, client: log_exchange.LoggingClient) -> None:
        marker = _publishing.set(True)
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        dropped, self.dropped = self.dropped, 0
                        break
                    event = self._queue.popleft()
                await client.log(event)
                self.published += 1
            if dropped:
                await client.log(self._dropped_event(dropped))
        finally:
            _publishing.reset(marker)

    def _dropped_event(self, count: int) -> LogEvent:
        return LogEvent(
            level="warning",
            message=f"{count} log records were dropped: the log queue was full",
            timestamp=datetime.datetime.now(datetime.UTC).isoformat(),
            caller=f"{__name__}",
            name=self.name,
            host=self.host,
            module=__name__,
            context={"dropped": count},
        )


class LogLevelWatcher(Actor):
    """Applies ``logging.level`` changes to a publisher as soon as they are announced."""

    def __init__(self, publisher: LogPublisher) -> None:
        self.publisher = publisher

    async def on_start(self) -> None:
        client = config_exchange.ConfigurationClient(self.ctx)
        try:
            self.publisher.set_level(await client.get("logging.level"))
        except NoResponder:
            pass  # no configuration service: keep the level given at start

    @handler(config_exchange.NAME, config_exchange.CHANGED.pattern(section="logging"))
    async def changed(self, event: config_exchange.ConfigurationChanged) -> None:
        """Apply a new level; one that is no level (anyone may publish) is logged and ignored."""
        if event.key != "logging.level":
            return
        try:
            self.publisher.set_level(event.value)
        except ValueError:
            log.warning(
                "logging.level change to %s ignored: no log level; keeping %r",
                reprlib.repr(event.value),
                self.publisher.min_level,
            )


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(char: re.Match[str]) -> str:
    found = char.group()
    return _ESCAPES.get(found) or (
        f"\\x{ord(found):02x}" if ord(found) < 0x100 else f"\\u{ord(found):04x}"
    )


def printable(text: object) -> str:
    """``text`` with every control character (C0, DEL, C1, line separators) escaped as
    ``\\n``, ``\\x1b``..., so that it prints on one line and cannot drive a terminal."""
    return _CONTROL.sub(_escape_control, str(text))


def console_line(event: LogEvent) -> str:
    """How a ``LogEvent`` reads on a console: time, level, module, subject, message.

    Always one line: control characters in any field are escaped (``printable``), as
    anyone on the bus may publish events.
    """
    subject = "" if event.subject == "Server" else f" [{printable(event.subject)}]"
    return (
        f"{printable(event.timestamp)} {printable(event.level):<7} "
        f"{printable(event.module)}{subject}: {printable(event.message)}"
    )


class ConsoleFormatter(logging.Formatter):
    """Formats a record as ``ConsolePrinter`` prints its event, redacted alike: for stderr
    while the bus is down (before it is up, after it is gone). A record whose arguments
    do not fit its format prints as a notice without them (``unformattable_event``)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            event = to_event(record, name="", host="")
        except Exception as exc:
            event = unformattable_event(record, exc, name="", host="")
        return console_line(event)


class ConsolePrinter(Actor):
    """Prints every ``LogEvent`` on ``on.logging`` as one line."""

    mailbox_size = 1024

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @handler(log_exchange.NAME, "#")
    async def print_event(self, event: LogEvent, delivery: Delivery) -> None:
        stream = self.stream or sys.stderr
        stream.write(console_line(event) + "\n")
        stream.flush()


async def start_logging(
    runtime: Runtime,
    *,
    console: TextIO | bool | None = True,
    logger: logging.Logger | None = None,
    min_level: str = "info",
) -> LogPublisher:
    """Bridge ``logger`` (the root logger by default) onto ``on.logging`` in ``runtime``.

    Starts the publisher as a supervised task, the level watcher, and (unless
    ``console`` is False) a console printer writing to ``console`` or stderr.
    The handler is removed from the logger when the publisher stops.
    """
    publisher = LogPublisher(min_level=min_level, name=runtime.name)
    target = logger or logging.getLogger()

    async def publish() -> None:
        target.addHandler(publisher.handler)
        try:
            await publisher.run(runtime)
        finally:
            target.removeHandler(publisher.handler)

    # Started in this order so that shutdown (reverse order) stops the publisher
    # first, after it published what was queued, while the printer still listens.
    if console is not False:
        stream = None if console is True else console
        await runtime.spawn(
            ConsolePrinter, stream, key="logging.console", restart=Restart.PERMANENT
        )
    await runtime.spawn(
        LogLevelWatcher, publisher, key="logging.level-watcher", restart=Restart.PERMANENT
    )
    await runtime.root.start_child(
        TaskChild("logging.publisher", publish, graceful_stop=publisher.close)
    )
    return publisher


class WhileBusDown(logging.Filter):
    """Passes records only while ``publisher`` is not running (for a console fallback)."""

    def __init__(self, publisher: LogPublisher) -> None:
        super().__init__()
        self.publisher = publisher

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.publisher.running
