"""``AmqpAddress``: the broker address from arguments, environment and configuration."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from runtime.amqp_url import AmqpAddress


def test_defaults_to_the_local_broker() -> None:
    address = AmqpAddress.from_config({}, env={})
    assert address.url.host == "127.0.0.1"
    assert address.url.user == "guest"
    assert address.url.query["heartbeat"] == "30"
    assert address.ssl_context is None


def test_configuration_sets_url_and_credentials() -> None:
    address = AmqpAddress.from_config(
        {"url": "amqp://broker:5673/rackhd", "user": "onrack", "password": "s3cret"}, env={}
    )
    assert (address.url.host, address.url.port, address.url.path) == ("broker", 5673, "/rackhd")
    assert (address.url.user, address.url.password) == ("onrack", "s3cret")


def test_environment_takes_precedence_over_configuration() -> None:
    env = {
        "RACKBUS_AMQP_URL": "amqp://env-host/",
        "RACKBUS_AMQP_USER": "env-user",
        "RACKBUS_AMQP_PASSWORD": "env-password",
    }
    address = AmqpAddress.from_config(
        {"url": "amqp://file-host/", "user": "file-user", "password": "file-password"}, env=env
    )
    assert (address.url.host, address.url.user, address.url.password) == (
        "env-host",
        "env-user",
        "env-password",
    )


def test_an_explicit_url_beats_environment_and_configuration() -> None:
    address = AmqpAddress.from_config(
        {"url": "amqp://file-host/"}, url="amqp://flag-host/", env={"RACKBUS_AMQP_URL": "amqp://e/"}
    )
    assert address.url.host == "flag-host"


def test_empty_environment_values_do_not_override() -> None:
    address = AmqpAddress.from_config({"user": "file-user"}, env={"RACKBUS_AMQP_USER": ""})
    assert address.url.user == "file-user"


def test_password_file_is_read_without_its_newline(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    address = AmqpAddress.from_config({"password_file": str(secret)}, env={})
    assert address.url.password == "from-a-file"
    assert "from-a-file" not in repr(address) and "from-a-file" not in str(address)


def test_password_file_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("env-file")
    address = AmqpAddress.from_config(
        {"password": "file-password"}, env={"RACKBUS_AMQP_PASSWORD_FILE": str(secret)}
    )
    assert address.url.password == "env-file"


def test_password_variable_beats_a_configured_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file")
    address = AmqpAddress.from_config(
        {"password_file": str(secret)}, env={"RACKBUS_AMQP_PASSWORD": "env-password"}
    )
    assert address.url.password == "env-password"


def test_password_and_password_file_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        AmqpAddress.from_config(
            {"password": "x", "password_file": str(tmp_path / "password")}, env={}
        )


def test_unreadable_or_empty_password_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        AmqpAddress.from_config({"password_file": str(tmp_path / "missing")}, env={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        AmqpAddress.from_config({"password_file": str(empty)}, env={})


def test_unknown_keys_and_wrong_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown amqp settings"):
        AmqpAddress.from_config({"pasword": "typo"}, env={})
    with pytest.raises(ValueError, match="must be a string"):
        AmqpAddress.from_config({"user": 7}, env={})


def test_only_amqp_schemes() -> None:
    with pytest.raises(ValueError, match="amqp:// or amqps://"):
        AmqpAddress.from_config({"url": "http://broker/"}, env={})


def test_tls_settings_come_from_configuration(tmp_path: Path) -> None:
    ca = tmp_path / "missing-ca.pem"
    with pytest.raises(FileNotFoundError):  # the CA file is used, and it is missing
        AmqpAddress.from_config({"url": "amqps://broker/", "cafile": str(ca)}, env={})
    address = AmqpAddress.from_config({"url": "amqps://broker/"}, env={})
    assert isinstance(address.ssl_context, ssl.SSLContext)
    assert address.ssl_context.verify_mode is ssl.CERT_REQUIRED


def test_resolve_keeps_its_meaning() -> None:
    env = {"RACKBUS_AMQP_URL": "amqp://env-host/", "RACKBUS_AMQP_PASSWORD": "p"}
    assert AmqpAddress.resolve(env=env).url.host == "env-host"
    assert AmqpAddress.resolve("amqp://arg-host/", env=env).url.host == "arg-host"
    assert AmqpAddress.resolve(env=env).url.password == "p"
    assert AmqpAddress.resolve(env={}, heartbeat=5).url.query["heartbeat"] == "5"


def test_the_password_never_shows() -> None:
    address = AmqpAddress.from_config({"url": "amqp://u:hunter2@broker/"}, env={})
    assert "hunter2" not in address.safe
    assert address.scrub(f"failed: {address.url} (hunter2)") == (
        "failed: amqp://u:***@broker/ (***)"
    )
