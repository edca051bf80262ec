"""The AMQP bus over TLS, against a RabbitMQ node that listens only on TLS and wants a client
certificate: the broker is verified, the client is verified, and every refusal says why without
showing the password."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

import attrs
import pytest
import trio

from runtime import Actor, Address, BusUnavailable, Runtime, handler, message
from runtime.amqp_bus import AmqpBus
from runtime.amqp_url import AmqpAddress
from runtime.supervisor import Backoff

from .test_serve_services import Serving, serve_argv
from .tls_broker import TlsBroker, tls_broker

SECRET = "not-the-password-7f3a"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with tls_broker(tmp_path_factory.mktemp("tls-broker")) as running:
        yield running


def address(broker: TlsBroker, *, host: str = "localhost", **overrides: object) -> AmqpAddress:
    config: dict[str, object] = {
        "cafile": str(broker.cafile),
        "certfile": str(broker.certfile),
        "keyfile": str(broker.keyfile),
    }
    config.update(overrides)
    return AmqpAddress.from_config(config, url=broker.url(host), env={}, heartbeat=5)


@message("TlsPing")
@attrs.frozen
class Ping:
    n: int


class Echo(Actor):
    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    @handler("on.tls", "methods.echo.{key}")
    async def echo(self, ping: Ping) -> int:
        return ping.n * 2

    @handler("on.tls", "event.{key}")
    async def event(self, ping: Ping) -> None:
        self.seen.append(ping.n)


async def refusal(address: AmqpAddress) -> str:
    with trio.fail_after(30), pytest.raises(BusUnavailable) as refused:
        async with Runtime(AmqpBus(address, name="tls-refused", connect_timeout=10)):
            pass
    return str(refused.value)


async def test_calls_and_events_travel_over_tls_and_survive_a_reconnect(broker: TlsBroker) -> None:
    key = uuid.uuid4().hex[:8]
    seen: list[int] = []
    bus = AmqpBus(address(broker), name=f"tls-{key}", reconnect=Backoff(0.05, 2.0, 1.0, 0.1))
    with trio.fail_after(90):
        async with Runtime(bus) as rt:
            await rt.spawn(Echo, seen, key=key)
            assert await rt.call(Address("on.tls", f"methods.echo.{key}"), Ping(21)) == 42
            await rt.publish("on.tls", f"event.{key}", Ping(1))
            while seen != [1]:
                await trio.sleep(0.05)

            await trio.to_thread.run_sync(broker.rabbitmqctl, "close_all_connections", "test")
            while bus.statistics().reconnects < 1:
                await trio.sleep(0.05)
            assert await rt.call(Address("on.tls", f"methods.echo.{key}"), Ping(5)) == 10
            await rt.publish("on.tls", f"event.{key}", Ping(2))
            while seen != [1, 2]:
                await trio.sleep(0.05)


async def test_a_broker_certificate_from_an_unknown_authority_is_refused(
    broker: TlsBroker,
) -> None:
    text = await refusal(address(broker, cafile="", password=SECRET))
    assert "TLS: certificate verify failed" in text
    assert SECRET not in text


async def test_a_broker_certificate_for_another_name_is_refused(broker: TlsBroker) -> None:
    text = await refusal(address(broker, host="127.0.0.1", password=SECRET))
    assert "TLS: certificate verify failed" in text
    assert "127.0.0.1" in text
    assert SECRET not in text


@pytest.mark.parametrize("certificate", ["none", "stranger"])
async def test_the_broker_refuses_a_client_without_a_certificate_it_trusts(
    broker: TlsBroker, certificate: str
) -> None:
    if certificate == "none":
        client = address(broker, certfile="", keyfile="", password=SECRET)
    else:
        client = address(
            broker,
            certfile=str(broker.stranger_certfile),
            keyfile=str(broker.stranger_keyfile),
            password=SECRET,
        )
    text = await refusal(client)
    # the broker's TLS alert, or, when its close overtakes the alert, the hint
    assert "TLS: tlsv1" in text or "may not accept the client certificate" in text, text
    assert SECRET not in text


async def test_plain_amqp_on_the_tls_port_is_refused_clearly(broker: TlsBroker) -> None:
    url = f"amqp://guest:{SECRET}@127.0.0.1:{broker.port}/"
    text = await refusal(AmqpAddress.from_config({}, url=url, env={}))
    assert text.startswith(f"cannot connect to amqp://guest:***@127.0.0.1:{broker.port}/: ")
    assert SECRET not in text


async def test_serve_connects_over_tls_from_the_config_file(
    broker: TlsBroker, tmp_path: pathlib.Path
) -> None:
    config = tmp_path / "rackbus.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n\n[amqp]\nurl = "{broker.url()}"\n'
        f'cafile = "{broker.cafile}"\ncertfile = "{broker.certfile}"\n'
        f'keyfile = "{broker.keyfile}"\n'
    )
    async with Serving(serve_argv(config)) as serving:
        pass
    assert f"started on RabbitMQ at AmqpBus('amqps://guest:***@localhost:{broker.port}/'" in (
        serving.text
    )
    assert "guest:guest" not in serving.text


def test_serve_without_the_authority_fails_naming_the_tls_error(
    broker: TlsBroker, tmp_path: pathlib.Path
) -> None:
    config = tmp_path / "rackbus.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n\n[amqp]\nurl = "{broker.url(password=SECRET)}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "actors.cli", "serve", "--config", str(config)],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=pathlib.Path(__file__).resolve().parents[2],
    )
    err = done.stderr.decode(errors="replace")
    assert done.returncode != 0, err
    assert "TLS: certificate verify failed" in err
    assert SECRET not in err
