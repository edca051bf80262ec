"""The IPMI error taxonomy, and the pure mapping of pyghmi's failures onto it.

Every error is an :class:`IpmiError`; messages name the BMC as ``user@host:port`` and never
contain a password (pyghmi's own text is scrubbed before it is quoted).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Completion codes that mean "this BMC does not implement that" (IPMI 2.0 table 5-2).
UNSUPPORTED_CODES = frozenset({0xC1, 0xC2})

#: Substrings of pyghmi's login errors that mean the BMC refused the credentials.
_AUTH_MARKERS = (
    "password",
    "unauthorized name",
    "invalid rakp4",
    "invalid integrity check",
    "unauthorized role",
    "privelege level",
    "privilege level",
    "invalid username",
    "unauthorized guid",
)

#: Substrings of pyghmi's errors that mean nothing (valid) came back from the BMC.
_UNREACHABLE_MARKERS = (
    "timeout",
    "no longer connected",
    "unable to transmit",
    "session failed to initialize",
    "session disconnected",
)


class IpmiError(Exception):
    """Base of every IPMI error: ``bmc`` is ``user@host:port`` (or empty)."""

    def __init__(self, message: str, *, bmc: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.bmc = bmc

    def __str__(self) -> str:
        return f"{self.bmc}: {self.message}" if self.bmc else self.message


class Unreachable(IpmiError):
    """The BMC did not answer (no route, nothing listening, session lost)."""


class AuthenticationFailed(IpmiError):
    """The BMC refused the user name, the password or the privilege level."""


class Timeout(IpmiError):
    """The call did not finish before its deadline; its session is discarded."""


class Unsupported(IpmiError):
    """The BMC (or pyghmi) does not implement the command."""


class MalformedResponse(IpmiError):
    """The BMC answered with data too short or too strange to decode."""


class BmcError(IpmiError):
    """The BMC answered with a non-zero completion code."""

    def __init__(self, message: str, *, code: int, bmc: str = "") -> None:
        super().__init__(f"{message} (completion code 0x{code:02x})", bmc=bmc)
        self.code = code


def _forms(secret: str) -> tuple[str, ...]:
    """The secret, and how it shows inside the repr of its UTF-8 bytes."""
    return (secret, repr(secret.encode("utf-8"))[2:-1])


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


def error_for_code(code: int, message: str, *, bmc: str = "") -> IpmiError:
    """The error for a completion code the BMC returned."""
    if code in UNSUPPORTED_CODES:
        return Unsupported(f"{message} (completion code 0x{code:02x})", bmc=bmc)
    return BmcError(message, code=code, bmc=bmc)


def classify(
    exc: BaseException, *, bmc: str = "", secrets: Iterable[str] = (), during_login: bool = False
) -> IpmiError:
    """Map an exception raised by pyghmi (or its sockets) onto the taxonomy.

    Pure: it looks only at the exception's type, text and ``ipmicode``.
    """
    if isinstance(exc, IpmiError):
        return exc
    text = redact(str(exc), secrets)
    lowered = text.lower()
    code = getattr(exc, "ipmicode", 0)
    name = type(exc).__name__
    if isinstance(exc, NotImplementedError) or name == "UnsupportedFunctionality":
        return Unsupported(f"not supported: {text or name}", bmc=bmc)
    if isinstance(exc, OSError):
        return Unreachable(f"network error: {name}: {text}", bmc=bmc)
    if isinstance(code, int) and 0 < code < 0xFF:
        return error_for_code(code, text or name, bmc=bmc)
    if any(marker in lowered for marker in _AUTH_MARKERS):
        return AuthenticationFailed(f"login refused: {text}", bmc=bmc)
    if (
        during_login
        or lowered in ("", "none")
        or any(marker in lowered for marker in _UNREACHABLE_MARKERS)
    ):
        detail = "" if lowered in ("", "none") else f": {text}"
        return Unreachable(f"no answer from the BMC{detail}", bmc=bmc)
    return IpmiError(f"{name}: {text}", bmc=bmc)
