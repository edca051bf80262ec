"""SNMP targets and credentials (v2c communities, v3 USM users) that never show their secrets."""

from __future__ import annotations

import enum

import attrs

from ._errors import redact

#: RFC 3414 requires passphrases of at least 8 characters (net-snmp refuses shorter ones).
MIN_KEY_LENGTH = 8


class AuthProtocol(enum.Enum):
    """SNMPv3 authentication protocols."""

    MD5 = "md5"
    SHA = "sha"
    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


class PrivProtocol(enum.Enum):
    """SNMPv3 privacy (encryption) protocols."""

    DES = "des"
    TRIPLE_DES = "3des"
    AES128 = "aes128"
    AES192 = "aes192"
    AES256 = "aes256"


@attrs.frozen(repr=False)
class CommunityAuth:
    """SNMPv2c: a community string, hidden from ``repr`` and ``str``."""

    community: str = attrs.field(validator=attrs.validators.instance_of(str))

    def __repr__(self) -> str:
        return "CommunityAuth(community=<hidden>)"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        """The strings that must never appear in a message."""
        return (self.community,) if self.community else ()


def _key(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or len(value) < MIN_KEY_LENGTH):
        raise ValueError(f"{attribute.name} must be at least {MIN_KEY_LENGTH} characters long")


@attrs.frozen(repr=False)
class UsmAuth:
    """SNMPv3 USM: user name, optional auth and privacy passphrases (never shown)."""

    user: str = attrs.field(validator=attrs.validators.instance_of(str))
    auth_key: str | None = attrs.field(default=None, validator=_key)
    priv_key: str | None = attrs.field(default=None, validator=_key)
    auth_protocol: AuthProtocol = AuthProtocol.SHA
    priv_protocol: PrivProtocol = PrivProtocol.AES128

    def __attrs_post_init__(self) -> None:
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("privacy needs authentication: give auth_key too")

    @property
    def security_level(self) -> str:
        """``noAuthNoPriv``, ``authNoPriv`` or ``authPriv``."""
        if self.auth_key is None:
            return "noAuthNoPriv"
        return "authNoPriv" if self.priv_key is None else "authPriv"

    def __repr__(self) -> str:
        auth = self.auth_protocol.value if self.auth_key else "none"
        priv = self.priv_protocol.value if self.priv_key else "none"
        return f"UsmAuth(user={self.user!r}, auth={auth}, priv={priv}, keys=<hidden>)"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        """The strings that must never appear in a message."""
        return tuple(k for k in (self.auth_key, self.priv_key) if k)


@attrs.frozen
class SnmpTarget:
    """An agent: host, UDP port, credentials and (v3) context name."""

    host: str = attrs.field(validator=attrs.validators.instance_of(str))
    auth: CommunityAuth | UsmAuth = attrs.field(
        validator=attrs.validators.instance_of((CommunityAuth, UsmAuth))
    )
    port: int = 161
    context: str = ""

    def describe(self) -> str:
        """``host:port``, the form used in error messages (a secret in it is masked)."""
        return redact(f"{self.host}:{self.port}", self.auth.secrets)
