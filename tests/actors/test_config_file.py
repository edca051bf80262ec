"""The ``rackbus serve`` configuration file and the node directory."""

from __future__ import annotations

import ipaddress
import pathlib

import pytest

from actors.config_file import ConfigError, load_config, parse_config
from actors.exchanges.events import EXTERNAL
from actors.services.nodes import NodeDirectory

EXAMPLE = """
state_dir = "/var/lib/rackbus"

[amqp]
url = "amqps://rabbit.example/"
user = "rackbus"
password = "s3cret-pw"

[nodes]
"52:54:00:12:34:56" = "node-1"

[dhcp]
address = "10.1.0.1"
interface = "eth1"
proxy = true

[[dhcp.subnet]]
network = "10.1.0.0/24"
range = ["10.1.0.100", "10.1.0.199"]
routers = ["10.1.0.1"]

[tftp]
address = "10.1.0.1"
root = "/srv/tftp"
"""


def test_a_full_file_is_read(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rackbus.toml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    assert config.state_dir == pathlib.Path("/var/lib/rackbus")
    assert config.amqp is not None and config.amqp.user == "rackbus"
    assert config.nodes == {"52:54:00:12:34:56": "node-1"}
    assert config.dhcp is not None
    assert config.dhcp.address == ipaddress.IPv4Address("10.1.0.1")
    assert config.dhcp.port == 67 and config.dhcp.proxy
    (subnet,) = config.dhcp.subnet
    assert subnet.network == ipaddress.IPv4Network("10.1.0.0/24")
    assert subnet.range[1] == ipaddress.IPv4Address("10.1.0.199")
    assert config.tftp is not None and config.tftp.root == pathlib.Path("/srv/tftp")


def test_the_password_stays_out_of_repr(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rackbus.toml"
    path.write_text(EXAMPLE)
    assert "s3cret-pw" not in repr(load_config(path))


def test_an_empty_file_starts_nothing() -> None:
    config = parse_config({})
    assert (config.amqp, config.dhcp, config.tftp, config.nodes) == (None, None, None, {})


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"bogus": 1}, "bogus"),
        ({"dhcp": {"address": "not-an-ip", "subnet": []}}, "config.dhcp.address"),
        ({"tftp": {"root": "/x"}}, "config.tftp.address"),
        ({"tftp": {"address": "10.0.0.1", "root": "/x", "port": "69x"}}, "config.tftp.port"),
        ({"nodes": {"zz": "node-1"}}, "'zz'"),
        ({"nodes": {"52:54:00:12:34:56": "a.b"}}, "config.nodes.52:54:00:12:34:56"),
    ],
)
def test_bad_values_are_named(data: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        parse_config(data)
    assert named in str(caught.value)


def test_unreadable_and_invalid_files_are_named(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.toml"):
        load_config(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[dhcp\n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load_config(broken)


def test_node_directory_maps_macs_and_ips() -> None:
    nodes = NodeDirectory({"52:54:00:AA:BB:CC": "node-1"})
    assert nodes.node_for_mac("52:54:00:aa:bb:cc") == "node-1"
    assert nodes.node_for_mac("52:54:00:00:00:01") == EXTERNAL
    assert nodes.node_for_mac("garbage") == EXTERNAL
    assert nodes.node_for_ip("10.0.0.5") == EXTERNAL
    nodes.learn_address("10.0.0.5", "52:54:00:aa:bb:cc")
    assert nodes.node_for_ip("10.0.0.5") == "node-1"
    nodes.forget_address("10.0.0.5")
    assert nodes.node_for_ip("10.0.0.5") == EXTERNAL
    with pytest.raises(ValueError, match="node id"):
        nodes.register("52:54:00:00:00:02", "bad.id")


def test_credentials_come_from_the_file_or_files_beside_it(tmp_path: pathlib.Path) -> None:
    from actors.pollers.credentials import credentials_from_config

    (tmp_path / "pw").write_text("from-a-file\n")
    config = parse_config(
        {
            "pollers": {"timeout": 5},
            "credentials": {
                "bmc": {"user": "admin", "password_file": str(tmp_path / "pw")},
                "inline": {"user": "root", "password": "calvin"},
                "switches": {"community": "s3cret-community"},
            },
        }
    )
    assert config.pollers is not None and config.pollers.timeout == 5
    assert "calvin" not in repr(config) and "s3cret-community" not in repr(config)
    store = credentials_from_config(config.credentials)
    assert store.ipmi("bmc").password == "from-a-file"
    assert store.ipmi("inline").username == "root"
    assert store.snmp("switches").secrets == ("s3cret-community",)
    assert store.scrub("login calvin/from-a-file failed") == "login ***/*** failed"
    assert "calvin" not in repr(store)
    with pytest.raises(ValueError, match=r"\[credentials.half\]: give user and password"):
        credentials_from_config(parse_config({"credentials": {"half": {"user": "x"}}}).credentials)
    with pytest.raises(ValueError, match="cannot read"):
        missing = {"m": {"user": "x", "password_file": str(tmp_path / "nope")}}
        credentials_from_config(parse_config({"credentials": missing}).credentials)
