"""Broker address and credentials for ``AmqpBus``, with the password kept out of sight.

Each setting comes from the first of: an explicit argument (``url=``, say a
command-line option), the environment, a configuration mapping (say the
``[amqp]`` section of a config file, see ``AmqpAddress.from_config``), the
URL's own credentials, the default. The environment variables are:

* ``RACKBUS_AMQP_URL``: the broker URL (default ``amqp://guest:guest@127.0.0.1:5672/``);
* ``RACKBUS_AMQP_USER``, ``RACKBUS_AMQP_PASSWORD``: override the URL's credentials;
  ``RACKBUS_AMQP_PASSWORD_FILE`` names a file holding the password;
* ``RACKBUS_AMQP_CAFILE``, ``RACKBUS_AMQP_CERTFILE``, ``RACKBUS_AMQP_KEYFILE``: a CA
  bundle and a client certificate for ``amqps://`` URLs.

``amqps://`` URLs use TLS: the default context verifies the broker. ``str()``,
``repr()`` and ``scrub()`` never show the password.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import attrs
from yarl import URL

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
CONFIG_KEYS = ("url", "user", "password", "password_file", "cafile", "certfile", "keyfile")
"""The keys ``AmqpAddress.from_config`` accepts; each has a ``RACKBUS_AMQP_<KEY>`` variable."""


def _setting(config: Mapping[str, object], env: Mapping[str, str], key: str) -> str | None:
    """The environment's value for ``key``, else the configuration's; empty means unset."""
    value = env.get(f"RACKBUS_AMQP_{key.upper()}")
    if value:
        return value
    configured = config.get(key)
    if configured is None or configured == "":
        return None
    if not isinstance(configured, str):
        raise ValueError(f"amqp setting {key!r} must be a string, not {type(configured).__name__}")
    return configured


def _password(config: Mapping[str, object], env: Mapping[str, str]) -> str | None:
    if env.get("RACKBUS_AMQP_PASSWORD"):
        return env["RACKBUS_AMQP_PASSWORD"]
    path = env.get("RACKBUS_AMQP_PASSWORD_FILE")
    if not path:
        if config.get("password") and config.get("password_file"):
            raise ValueError("amqp settings 'password' and 'password_file' exclude each other")
        path = _setting(config, {}, "password_file")
        if path is None:
            return _setting(config, {}, "password")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the AMQP password file {path}: {exc.strerror}") from None
    password = text.rstrip("\r\n")
    if not password:
        raise ValueError(f"the AMQP password file {path} is empty")
    return password


@attrs.frozen(repr=False)
class AmqpAddress:
    """Where the broker is and how to log in to it."""

    url: URL
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, object],
        *,
        url: str | None = None,
        heartbeat: int = 30,
        ssl_context: ssl.SSLContext | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AmqpAddress:
        """Build the address from a configuration mapping (keys: ``CONFIG_KEYS``).

        For each key the environment variable ``RACKBUS_AMQP_<KEY>`` takes
        precedence over the mapping; ``url``, when given, beats both. A user or
        password (from ``password`` or the first line of ``password_file``)
        replaces the one in the URL. Unknown keys, non-string values and
        both ``password`` and ``password_file`` raise ``ValueError``.
        """
        env = os.environ if env is None else env
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown amqp settings {unknown}; expected some of {list(CONFIG_KEYS)}"
            )
        parsed = URL(url or _setting(config, env, "url") or DEFAULT_URL)
        if parsed.scheme not in ("amqp", "amqps"):
            raise ValueError(f"broker URL must be amqp:// or amqps://, not {parsed.scheme}://")
        user = _setting(config, env, "user")
        if user:
            parsed = parsed.with_user(user)
        password = _password(config, env)
        if password:
            parsed = parsed.with_password(password)
        if "heartbeat" not in parsed.query:
            parsed = parsed.update_query(heartbeat=str(heartbeat))
        if parsed.scheme == "amqps" and ssl_context is None:
            ssl_context = ssl.create_default_context(cafile=_setting(config, env, "cafile"))
            certfile = _setting(config, env, "certfile")
            if certfile:
                ssl_context.load_cert_chain(certfile, _setting(config, env, "keyfile"))
        return cls(parsed, ssl_context)

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        *,
        heartbeat: int = 30,
        ssl_context: ssl.SSLContext | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AmqpAddress:
        """Build the address from ``url`` and the environment alone (see the module docstring)."""
        return cls.from_config({}, url=url, heartbeat=heartbeat, ssl_context=ssl_context, env=env)

    @property
    def safe(self) -> str:
        """The URL with the password replaced by ``***`` and without query options."""
        shown = self.url.with_query(None)
        return str(shown.with_password("***") if shown.password else shown)

    def scrub(self, text: str) -> str:
        """``text`` with the password (and the full URL) replaced."""
        password = self.url.password
        text = text.replace(str(self.url), self.safe)
        return text.replace(password, "***") if password else text

    def __str__(self) -> str:
        return self.safe

    def __repr__(self) -> str:
        return f"AmqpAddress({self.safe!r})"
