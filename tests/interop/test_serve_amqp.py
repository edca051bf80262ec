"""``rackbus serve --amqp``: the services on RabbitMQ, and a clear refusal when it is not there."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pika
import pika.exceptions
import trio

from actors.exchanges import ALL

from .processes import close_process
from .test_serve_services import Serving

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BROKER = "amqp://guest:guest@127.0.0.1:5672/"


async def test_serve_on_rabbitmq_until_sigterm(tmp_path: pathlib.Path) -> None:
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "actors.cli",
            "serve",
            "--state-dir",
            str(tmp_path),
            "--amqp",
            "amqp://guest:guest@127.0.0.1:5672/",
        ],
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stderr is not None
    log = b""
    try:
        with trio.fail_after(60):
            while b"ready" not in log:
                chunk = await proc.stderr.receive_some()
                assert chunk, log.decode()
                log += chunk
            proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
            log += b"".join([chunk async for chunk in proc.stderr])
    finally:
        await close_process(proc)
    text = log.decode()
    assert code == 0, text
    assert "started on RabbitMQ at AmqpBus('amqp://guest:***@127.0.0.1:5672/'" in text
    assert "received SIGTERM" in text
    assert "guest:guest" not in text


def test_an_unreachable_broker_fails_start_up_naming_the_url_without_the_password(
    tmp_path: pathlib.Path,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors.cli",
            "serve",
            "--state-dir",
            str(tmp_path),
            "--amqp",
            "amqp://admin:hunter2secret@127.0.0.1:1/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert done.returncode == 2
    assert "cannot connect to amqp://admin:***@127.0.0.1:1/" in done.stderr
    assert "hunter2secret" not in done.stderr + done.stdout


async def test_serve_declares_all_nine_exchanges_at_start(tmp_path: pathlib.Path) -> None:
    names = [exchange.name for exchange in ALL]
    await trio.to_thread.run_sync(_delete_exchanges, names)
    assert await trio.to_thread.run_sync(_existing, names) == set()
    argv = [sys.executable, "-m", "actors.cli", "serve", "--state-dir", str(tmp_path),
            "--amqp", BROKER]  # fmt: skip
    async with Serving(argv):
        declared = await trio.to_thread.run_sync(_existing, names)
    assert declared == set(names)


def _delete_exchanges(names: list[str]) -> None:
    with pika.BlockingConnection(pika.URLParameters(BROKER)) as connection:
        channel = connection.channel()
        for name in names:
            channel.exchange_delete(name)


def _existing(names: list[str]) -> set[str]:
    """The exchanges among ``names`` that exist on the broker (a passive declare each)."""
    found = set()
    with pika.BlockingConnection(pika.URLParameters(BROKER)) as connection:
        for name in names:
            channel = connection.channel()
            try:
                channel.exchange_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                continue
            found.add(name)
            channel.close()
    return found
