"""Broker address and credentials for ``AmqpBus``, with the password kept out of sight.

The URL comes from the argument, else ``RACKBUS_AMQP_URL``, else the local
default; ``RACKBUS_AMQP_USER`` and ``RACKBUS_AMQP_PASSWORD`` override the
credentials in it. ``amqps://`` URLs use TLS: the default context verifies the
broker, and ``RACKBUS_AMQP_CAFILE``, ``RACKBUS_AMQP_CERTFILE`` and
``RACKBUS_AMQP_KEYFILE`` name a CA bundle and a client certificate. ``str()``,
``repr()`` and ``scrub()`` never show the password.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

import attrs
from yarl import URL

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


@attrs.frozen(repr=False)
class AmqpAddress:
    """Where the broker is and how to log in to it."""

    url: URL
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        *,
        heartbeat: int = 30,
        ssl_context: ssl.SSLContext | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AmqpAddress:
        """Build the address from ``url`` and the environment (see the module docstring)."""
        env = os.environ if env is None else env
        parsed = URL(url or env.get("RACKBUS_AMQP_URL") or DEFAULT_URL)
        if parsed.scheme not in ("amqp", "amqps"):
            raise ValueError(f"broker URL must be amqp:// or amqps://, not {parsed.scheme}://")
        if env.get("RACKBUS_AMQP_USER"):
            parsed = parsed.with_user(env["RACKBUS_AMQP_USER"])
        if env.get("RACKBUS_AMQP_PASSWORD"):
            parsed = parsed.with_password(env["RACKBUS_AMQP_PASSWORD"])
        if "heartbeat" not in parsed.query:
            parsed = parsed.update_query(heartbeat=str(heartbeat))
        if parsed.scheme == "amqps" and ssl_context is None:
            ssl_context = ssl.create_default_context(cafile=env.get("RACKBUS_AMQP_CAFILE"))
            if env.get("RACKBUS_AMQP_CERTFILE"):
                ssl_context.load_cert_chain(
                    env["RACKBUS_AMQP_CERTFILE"], env.get("RACKBUS_AMQP_KEYFILE")
                )
        return cls(parsed, ssl_context)

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
