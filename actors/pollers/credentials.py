"""``CredentialStore``: secrets by reference.

Pollers name their credentials (``credentialsRef``); only this store holds the
values, loaded from the configuration file's ``[credentials.<ref>]`` tables.
Nothing that leaves the process carries a secret, and ``secrets()`` lists them
so that logs and errors can be checked or scrubbed.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from protocols.ipmi import Credentials


class UnknownCredentials(LookupError):
    """No credentials are stored under that reference."""

    status = 400


@attrs.frozen(repr=False)
class SnmpSecret:
    """An SNMP v2c community (v3 users are future work); never shown in ``repr``."""

    community: str

    def __repr__(self) -> str:
        return "SnmpSecret(<hidden>)"


class CredentialStore:
    """IPMI credentials and SNMP communities by reference."""

    def __init__(
        self,
        ipmi: Mapping[str, Credentials] | None = None,
        snmp: Mapping[str, SnmpSecret] | None = None,
    ) -> None:
        self._ipmi = dict(ipmi or {})
        self._snmp = dict(snmp or {})

    def __repr__(self) -> str:
        return f"CredentialStore(ipmi={sorted(self._ipmi)}, snmp={sorted(self._snmp)})"

    def ipmi(self, ref: str) -> Credentials:
        """The IPMI credentials stored as ``ref``."""
        try:
            return self._ipmi[ref]
        except KeyError:
            raise UnknownCredentials(f"no IPMI credentials named {ref!r}") from None

    def snmp(self, ref: str) -> SnmpSecret:
        """The SNMP community stored as ``ref``."""
        try:
            return self._snmp[ref]
        except KeyError:
            raise UnknownCredentials(f"no SNMP credentials named {ref!r}") from None

    def secrets(self) -> list[str]:
        """Every secret held, for redaction and for tests that no secret escaped."""
        found = [c.password for c in self._ipmi.values() if c.password]
        return found + [s.community for s in self._snmp.values() if s.community]
