"""Who to talk to and how to log in: a BMC address and credentials that never show the password."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ._errors import redact

#: IPMI 2.0 limits: user names up to 16 bytes, passwords up to 20 bytes.
MAX_USERNAME_BYTES = 16
MAX_PASSWORD_BYTES = 20


def _check_length(limit: int) -> Callable[[object, attrs.Attribute[str], str], None]:
    def check(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
        if len(value.encode("utf-8")) > limit:
            # The value itself is never quoted: it may be a secret.
            raise ValueError(f"{attribute.name} is longer than {limit} bytes")

    return check


@attrs.frozen(repr=False)
class Credentials:
    """An IPMI user name and password; ``repr`` and ``str`` never show the password."""

    username: str = attrs.field(
        validator=[attrs.validators.instance_of(str), _check_length(MAX_USERNAME_BYTES)]
    )
    password: str = attrs.field(
        validator=[attrs.validators.instance_of(str), _check_length(MAX_PASSWORD_BYTES)]
    )

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        """The strings that must never appear in a message (empty passwords hide nothing)."""
        return (self.password,) if self.password else ()


@attrs.frozen
class BmcTarget:
    """One BMC: host, UDP port and credentials; one session is kept per (host, port, username)."""

    host: str = attrs.field(validator=attrs.validators.instance_of(str))
    credentials: Credentials = attrs.field(validator=attrs.validators.instance_of(Credentials))
    port: int = attrs.field(default=623, validator=attrs.validators.instance_of(int))

    @property
    def session_key(self) -> tuple[str, int, str]:
        """The identity of the session used for this BMC."""
        return (self.host, self.port, self.credentials.username)

    def describe(self) -> str:
        """``user@host:port``, the form used in error messages (a password in it is masked)."""
        label = f"{self.credentials.username}@{self.host}:{self.port}"
        return redact(label, self.credentials.secrets)
