"""``PollerDefinition``: what one poller polls, how often, and with which credentials.

A definition names its credentials by reference (``credentialsRef``), never by
value, so it can be stored, listed and sent on the bus. Definitions are checked
when made: a bad one is refused with a ``PollerDefinitionError`` (status 400)
naming the field; alert rules are compiled then (``AlertRule.from_config``), so
a bad pattern or severity is refused before anything is stored.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from protocols.snmp import Oid
from runtime import message

from ..convention import check_id
from .alerts import AlertRule

IPMI_COMMANDS = frozenset({"power", "chassis", "sel", "sdr"})
SNMP_COMMANDS = frozenset({"oids", "interfaces"})
MIN_INTERVAL = 1.0
MAX_ALERT_RULES = 64
MAX_OIDS = 256


class PollerDefinitionError(ValueError):
    """A poller definition (or a request naming a poller) is invalid."""

    status = 400


def _check(definition: PollerDefinition) -> None:
    check_id(definition.id, "poller id")
    check_id(definition.nodeId, "node id")
    check_id(definition.credentialsRef, "credentials reference")
    if definition.type not in ("ipmi", "snmp"):
        raise PollerDefinitionError(f"type must be 'ipmi' or 'snmp', not {definition.type!r}")
    commands = IPMI_COMMANDS if definition.type == "ipmi" else SNMP_COMMANDS
    if definition.command not in commands:
        raise PollerDefinitionError(
            f"{definition.type} command must be one of {sorted(commands)}, "
            f"not {definition.command!r}"
        )
    if not MIN_INTERVAL <= definition.interval <= 86400:
        raise PollerDefinitionError(f"interval must be {MIN_INTERVAL}-86400 s")
    if not definition.host or len(definition.host) > 253:
        raise PollerDefinitionError("host must be 1-253 characters")
    if not 0 < definition.port < 65536:
        raise PollerDefinitionError(f"port must be 1-65535, not {definition.port}")
    if len(definition.alerts) > MAX_ALERT_RULES or len(definition.oids) > MAX_OIDS:
        raise PollerDefinitionError(f"at most {MAX_ALERT_RULES} alert rules and {MAX_OIDS} OIDs")
    if definition.type == "snmp" and definition.command == "oids":
        if not definition.oids:
            raise PollerDefinitionError("oids: an oids poller needs at least one OID")
        for index, oid in enumerate(definition.oids):
            try:
                Oid.parse(oid)
            except (TypeError, ValueError) as exc:
                raise PollerDefinitionError(f"oids[{index}]: {exc}") from None
    for index, rule in enumerate(definition.alerts):
        try:
            AlertRule.from_config(rule)
        except ValueError as exc:
            raise PollerDefinitionError(f"alerts[{index}]: {exc}") from None


@message("PollerDefinition")
@attrs.frozen
class PollerDefinition:
    """One poller. ``interval`` is in seconds; ``alerts`` are SEL/SNMP rules
    (``{"field": "text" or "/regex/", "severity": ...}``)."""

    id: str
    type: Literal["ipmi", "snmp"]
    command: str
    nodeId: str
    host: str
    credentialsRef: str
    interval: float = 60.0
    port: int = 0
    oids: list[str] = attrs.Factory(list)
    alerts: list[dict[str, Any]] = attrs.Factory(list)
    paused: bool = False

    def __attrs_post_init__(self) -> None:
        if self.port == 0:
            object.__setattr__(self, "port", 623 if self.type == "ipmi" else 161)
        try:
            _check(self)
        except PollerDefinitionError:
            raise
        except ValueError as exc:
            raise PollerDefinitionError(str(exc)) from None
