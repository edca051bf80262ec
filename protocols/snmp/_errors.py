"""The SNMP error taxonomy, and the pure mapping of pysnmp's error indications onto it.

Every error is an :class:`SnmpClientError`; messages name the agent as ``host:port`` and never
contain a community or a v3 key. SNMPv2c agents drop requests with a wrong community, so a
wrong community shows up as :class:`Timeout`.
"""

from __future__ import annotations

from collections.abc import Iterable

#: RFC 3416 error-status names.
ERROR_STATUS_NAMES = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)


class SnmpClientError(Exception):
    """Base of every SNMP error: ``agent`` is ``host:port`` (or empty)."""

    def __init__(self, message: str, *, agent: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.agent = agent

    def __str__(self) -> str:
        return f"{self.agent}: {self.message}" if self.agent else self.message


class Timeout(SnmpClientError):
    """No answer after every retry, or the call's deadline passed."""


class Overloaded(SnmpClientError):
    """The request found no free in-flight slot in time, so the agent was never asked."""


class AuthenticationFailed(SnmpClientError):
    """The agent (or the answer) failed SNMPv3 authentication or decryption."""


class UnknownUser(AuthenticationFailed):
    """The agent does not know the SNMPv3 user."""


class SnmpError(SnmpClientError):
    """The agent answered with a non-zero error-status; ``index`` is 1-based (0: none)."""

    def __init__(self, status: int, index: int, *, oid: str | None = None, agent: str = "") -> None:
        name = status_name(status)
        where = f" at {oid}" if oid else (f" at varbind {index}" if index else "")
        super().__init__(f"agent answered {name} ({status}){where}", agent=agent)
        self.status = status
        self.status_name = name
        self.index = index
        self.oid = oid


class TransportError(SnmpClientError):
    """The request could not be sent (bad address, socket error) or the answer was garbage."""


class WalkError(SnmpClientError):
    """A walk went wrong: the agent returned OIDs out of order, or too many rows."""


def status_name(status: int) -> str:
    """The RFC 3416 name of an error-status."""
    if 0 <= status < len(ERROR_STATUS_NAMES):
        return ERROR_STATUS_NAMES[status]
    return f"error-{status}"


def _forms(secret: str) -> tuple[str, ...]:
    return (secret,)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret masked; if one still shows (overlaps), the text is withheld."""
    forms = [f for secret in secrets if secret for f in _forms(secret)]
    for form in forms:
        mask = "***" if form not in "***" else "???"
        text = text.replace(form, mask)
    if not any(form in text for form in forms):
        return text
    for fallback in ("<message withheld: it contained a secret>", "***", "???"):
        if not any(form in fallback for form in forms):
            return fallback
    return ""


_UNKNOWN_USER = ("UnknownUserName", "UnknownSecurityName")
_AUTH = (
    "WrongDigest",
    "AuthenticationFailure",
    "AuthenticationError",
    "DecryptionError",
    "UnsupportedSecurityLevel",
    "NoAuthentication",
    "UnknownCommunityName",
)
_TIMEOUT = ("RequestTimedOut",)


def from_indication(
    indication: object, *, secrets: Iterable[str] = (), agent: str = ""
) -> SnmpClientError:
    """Map a pysnmp error indication (an ``ErrorIndication`` instance) onto the taxonomy.

    Pure: it looks at the indication's class name and text only.
    """
    kind = type(indication).__name__
    text = redact(str(indication), secrets)
    if kind in _TIMEOUT:
        return Timeout(f"no answer: {text}", agent=agent)
    if kind in _UNKNOWN_USER:
        return UnknownUser(f"unknown SNMPv3 user: {text}", agent=agent)
    if kind in _AUTH:
        return AuthenticationFailed(f"authentication failed: {text}", agent=agent)
    return TransportError(f"{kind}: {text}", agent=agent)
