"""The ``rackbus serve`` configuration file (TOML).

Every section is optional; a service starts only when its section is there, and
a server listens only on the address its section names. Unknown keys, wrong
types and values that cannot work (a port outside 0-65535, a ``lease_time``
outside 1 to 2**32-1 seconds, a poll ``timeout`` that is not a finite number
greater than 0, a ``graph_id`` that is no routing-key word) are errors that
name the key (``ConfigError``)::

    state_dir = "/var/lib/rackbus"      # settings and leases; default: see the CLI

    [amqp]                              # run on RabbitMQ instead of the in-memory bus
    url = "amqps://rabbit.example/"     # credentials may be left out of the URL...
    user = "rackbus"
    password_file = "/etc/rackbus/amqp-password"   # ...and read from a file
    cafile = "/etc/rackbus/ca.pem"

    [nodes]                             # MAC -> node id, for events about known nodes
    "52:54:00:12:34:56" = "node-1"

    [dhcp]
    address = "10.1.0.1"                # listen here; also the server identifier
    interface = "eth1"                  # optional: only this interface
    proxy = true                        # ProxyDHCP on 4011 (and PXE answers on 67)
    next_server = "10.1.0.1"            # TFTP server for the boot file (default: address)
    api_address = "10.1.0.1"            # iPXE gets http://api_address:api_port/api/current/profiles

    [[dhcp.subnet]]
    network = "10.1.0.0/24"
    range = ["10.1.0.100", "10.1.0.199"]
    routers = ["10.1.0.1"]

    [tftp]
    address = "10.1.0.1"
    root = "/var/lib/rackbus/tftp"

    [pollers]                           # the poller service (pollers are made at run time)
    timeout = 10

    [credentials.bmc-admin]             # pollers name credentials; only this file holds them
    user = "admin"
    password_file = "/etc/rackbus/bmc-password"

    [credentials.switches]
    community_file = "/etc/rackbus/snmp-community"

Environment variables (``RACKBUS_AMQP_*``) take precedence over the file.
"""

from __future__ import annotations

import ipaddress
import math
import pathlib
import tomllib
from typing import Any

import attrs
import cattrs

from runtime import MacAddress

from .convention import check_id


class ConfigError(ValueError):
    """The configuration file cannot be read, or says something invalid."""


MAX_PORT = 65535
MAX_LEASE_TIME = 2**32 - 1
"""DHCP carries lease times in 32 bits."""


@attrs.frozen
class AmqpSection:
    """Where RabbitMQ is, and the credentials to use."""

    url: str | None = None
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    password_file: pathlib.Path | None = None
    cafile: pathlib.Path | None = None
    certfile: pathlib.Path | None = None
    keyfile: pathlib.Path | None = None


@attrs.frozen
class SubnetSection:
    """One subnet the DHCP server hands addresses out of."""

    network: ipaddress.IPv4Network
    range: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
    routers: tuple[ipaddress.IPv4Address, ...] = ()
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    domain: str | None = None
    lease_time: int = 86400


@attrs.frozen
class DhcpSection:
    """The DHCP server (port 67) and ProxyDHCP (port 4011)."""

    address: ipaddress.IPv4Address
    subnet: tuple[SubnetSection, ...]
    interface: str | None = None
    port: int = 67
    proxy: bool = False
    proxy_port: int = 4011
    next_server: ipaddress.IPv4Address | None = None
    api_address: str | None = None
    api_port: int = 9080
    lease_file: str = "dhcp-leases.sqlite3"
    reservation_time: float = 30.0
    quarantine_time: float = 600.0


@attrs.frozen
class TftpSection:
    """The TFTP server and the directory it serves."""

    address: ipaddress.IPv4Address
    root: pathlib.Path
    port: int = 69
    max_sessions: int = 512
    max_sessions_per_client: int = 8


@attrs.frozen
class CredentialSection:
    """IPMI credentials (``user`` and a password) or an SNMP v2c community, by reference.

    Secrets may sit in the file or, better, in a file of their own (``*_file``).
    """

    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    password_file: pathlib.Path | None = None
    community: str | None = attrs.field(default=None, repr=False)
    community_file: pathlib.Path | None = None


@attrs.frozen
class PollersSection:
    """The poller service: a deadline per poll, and the graph id in its routing keys."""

    timeout: float = 10.0
    graph_id: str = "pollers"
    snmp: bool = True


@attrs.frozen
class ServeConfig:
    """Everything ``rackbus serve`` reads from its configuration file."""

    state_dir: pathlib.Path | None = None
    amqp: AmqpSection | None = None
    nodes: dict[str, str] = attrs.Factory(dict)
    dhcp: DhcpSection | None = None
    tftp: TftpSection | None = None
    pollers: PollersSection | None = None
    credentials: dict[str, CredentialSection] = attrs.Factory(dict)


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    for cls in (ipaddress.IPv4Address, ipaddress.IPv4Network, pathlib.Path):
        conv.register_structure_hook(cls, lambda value, cls: cls(value))
    return conv


_CONVERTER = _converter()


def parse_config(data: dict[str, Any]) -> ServeConfig:
    """Structure parsed TOML into a ``ServeConfig``; ``ConfigError`` names each bad key."""
    try:
        config = _CONVERTER.structure(data, ServeConfig)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path="config"))
        raise ConfigError(f"invalid configuration: {problems}") from None
    for mac, node in config.nodes.items():
        try:
            MacAddress(mac)
        except ValueError:
            raise ConfigError(f"invalid configuration: config.nodes: {mac!r} is no MAC") from None
        try:
            check_id(node, "node id")
        except ValueError as exc:
            raise ConfigError(f"invalid configuration: config.nodes.{mac}: {exc}") from None
    _check_values(config)
    return config


def _check_values(config: ServeConfig) -> None:
    """``ConfigError`` naming the first value that has the right type but cannot work."""

    def refuse(key: str, reason: str) -> ConfigError:
        return ConfigError(f"invalid configuration: config.{key}: {reason}")

    ports: list[tuple[str, int]] = []
    if config.tftp is not None:
        ports.append(("tftp.port", config.tftp.port))
    if config.dhcp is not None:
        dhcp = config.dhcp
        ports += [("dhcp.port", dhcp.port), ("dhcp.proxy_port", dhcp.proxy_port)]
        ports.append(("dhcp.api_port", dhcp.api_port))
        for index, subnet in enumerate(dhcp.subnet):
            if not 0 < subnet.lease_time <= MAX_LEASE_TIME:
                raise refuse(
                    f"dhcp.subnet[{index}].lease_time",
                    f"must be 1-{MAX_LEASE_TIME} seconds, not {subnet.lease_time}",
                )
    for key, port in ports:
        if not 0 <= port <= MAX_PORT:
            raise refuse(key, f"must be a port number 0-{MAX_PORT}, not {port}")
    if config.pollers is not None:
        timeout = config.pollers.timeout
        if not (math.isfinite(timeout) and timeout > 0):
            raise refuse("pollers.timeout", f"must be a finite number > 0 (seconds), not {timeout}")
        try:
            check_id(config.pollers.graph_id, "graph id")
        except ValueError as exc:
            raise refuse("pollers.graph_id", str(exc)) from None


def load_config(path: pathlib.Path) -> ServeConfig:
    """Read and check the configuration file at ``path``."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML (not UTF-8): {exc}") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
