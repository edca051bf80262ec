"""``CredentialStore``: secrets by reference.

Pollers name their credentials (``credentialsRef``); only this store holds the
values, loaded from the configuration file's ``[credentials.<ref>]`` tables.
Nothing that leaves the process carries a secret, and ``scrub`` removes any
that an error message might still hold.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

from protocols.ipmi import Credentials
from protocols.snmp import CommunityAuth, UsmAuth

from ..config_file import CredentialSection

SnmpAuth = CommunityAuth | UsmAuth


class UnknownCredentials(LookupError):
    """No credentials are stored under that reference."""

    status = 400


class CredentialStore:
    """IPMI credentials and SNMP authentication by reference."""

    def __init__(
        self,
        ipmi: Mapping[str, Credentials] | None = None,
        snmp: Mapping[str, SnmpAuth] | None = None,
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

    def snmp(self, ref: str) -> SnmpAuth:
        """The SNMP authentication stored as ``ref``."""
        try:
            return self._snmp[ref]
        except KeyError:
            raise UnknownCredentials(f"no SNMP credentials named {ref!r}") from None

    def secrets(self) -> list[str]:
        """Every secret held, longest first."""
        found = [c.password for c in self._ipmi.values() if c.password]
        found += [secret for auth in self._snmp.values() for secret in auth.secrets]
        return sorted(set(found), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret held replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


def _secret(value: str | None, file: pathlib.Path | None, what: str) -> str | None:
    if file is None:
        return value
    try:
        return file.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {file}: {exc.strerror}") from None


def credentials_from_config(sections: Mapping[str, CredentialSection]) -> CredentialStore:
    """A store from the configuration's ``[credentials.<ref>]`` tables."""
    ipmi: dict[str, Credentials] = {}
    snmp: dict[str, SnmpAuth] = {}
    for ref, section in sections.items():
        where = f"[credentials.{ref}]"
        password = _secret(section.password, section.password_file, where)
        community = _secret(section.community, section.community_file, where)
        if community is not None:
            snmp[ref] = CommunityAuth(community)
        elif section.user is not None and password is not None:
            ipmi[ref] = Credentials(section.user, password)
        else:
            raise ValueError(f"{where}: give user and password (IPMI) or community (SNMP)")
    return CredentialStore(ipmi, snmp)
