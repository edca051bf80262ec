"""The facade against net-snmp's snmpd: GET, GETNEXT, walks, the interface table, v2c and v3."""

from __future__ import annotations

import ipaddress

import pytest
import trio

from protocols.snmp import (
    AuthenticationFailed,
    CommunityAuth,
    Counter32,
    Counter64,
    Gauge32,
    Integer,
    IpAddress,
    NoSuchInstance,
    NoSuchObject,
    ObjectIdentifier,
    OctetString,
    Oid,
    OperStatus,
    SnmpClient,
    SnmpTarget,
    Timeout,
    TimeTicks,
    UnknownUser,
    UsmAuth,
)
from tests.peers import free_udp_port

from ._peers import HOST, V3_PRIV_KEY, V3_USER, net_snmp

SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
SYSTEM = "1.3.6.1.2.1.1"


async def test_get_typed_values_v2c_and_v3(
    snmp: SnmpClient, v2c: SnmpTarget, v3: SnmpTarget, snmpd_port: int
) -> None:
    for target in (v2c, v3):
        descr, object_id, uptime, location = await snmp.get(
            target, SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_LOCATION
        )
        assert descr.oid == Oid.parse(SYS_DESCR)
        assert isinstance(descr.value, OctetString) and descr.value.text
        assert isinstance(object_id.value, ObjectIdentifier)
        assert isinstance(uptime.value, TimeTicks)
        assert location.value == OctetString(b"rack 7")
    (line,) = await net_snmp("snmpget", snmpd_port, "-Oqv", SYS_DESCR)
    assert descr.value.text == line.strip().strip('"')


async def test_missing_objects_are_explicit_markers(snmp: SnmpClient, v2c: SnmpTarget) -> None:
    no_object, no_instance = await snmp.get(v2c, "1.3.6.1.2.1.1.99.0", "1.3.6.1.2.1.1.1.99")
    assert no_object.value == NoSuchObject() and no_object.is_exception
    assert no_instance.value == NoSuchInstance()


async def test_get_next(snmp: SnmpClient, v3: SnmpTarget) -> None:
    (vb,) = await snmp.get_next(v3, SYSTEM)
    assert vb.oid == Oid.parse(SYS_DESCR)


@pytest.mark.parametrize("repetitions", [3, 25])
async def test_walk_stays_in_the_subtree_and_matches_snmpbulkwalk(
    snmp: SnmpClient, v2c: SnmpTarget, snmpd_port: int, repetitions: int
) -> None:
    rows = await snmp.walk(v2c, SYSTEM, max_repetitions=repetitions)
    root = Oid.parse(SYSTEM)
    assert rows and all(vb.oid.is_within(root) for vb in rows)
    assert [vb.oid for vb in rows] == sorted({vb.oid for vb in rows})
    lines = await net_snmp("snmpbulkwalk", snmpd_port, SYSTEM)
    assert [vb.oid for vb in rows] == [Oid.parse(line.split(" = ")[0]) for line in lines]


async def test_walk_v3_and_walk_of_a_leaf(snmp: SnmpClient, v3: SnmpTarget) -> None:
    assert len(await snmp.walk(v3, SYSTEM)) > 5
    assert await snmp.walk(v3, SYS_DESCR) == ()  # nothing lies under an instance


async def test_typed_table_values(snmp: SnmpClient, v2c: SnmpTarget) -> None:
    (in_octets, speed, if_type) = await snmp.get(
        v2c, "1.3.6.1.2.1.2.2.1.10.1", "1.3.6.1.2.1.2.2.1.5.1", "1.3.6.1.2.1.2.2.1.3.1"
    )
    assert isinstance(in_octets.value, Counter32)
    assert isinstance(speed.value, Gauge32)
    assert if_type.value == Integer(24)  # softwareLoopback
    (hc,) = await snmp.get(v2c, "1.3.6.1.2.1.31.1.1.1.6.1")
    assert isinstance(hc.value, Counter64)
    addresses = await snmp.walk(v2c, "1.3.6.1.2.1.4.20.1.1")
    assert IpAddress(ipaddress.IPv4Address("127.0.0.1")) in [vb.value for vb in addresses]


async def test_interfaces_match_the_agent(
    snmp: SnmpClient, v3: SnmpTarget, snmpd_port: int
) -> None:
    interfaces = await snmp.get_interfaces(v3)
    descrs = await net_snmp("snmpbulkwalk", snmpd_port, "-Oqv", "1.3.6.1.2.1.2.2.1.2")
    assert [i.descr for i in interfaces] == [d.strip('"') for d in descrs]
    loopback = next(i for i in interfaces if i.type == 24)
    assert loopback.oper_status is OperStatus.UP and loopback.mtu and loopback.mtu > 0
    assert loopback.name == loopback.descr and loopback.hc_in_octets is not None
    assert all(i.in_octets is not None and i.admin_status is not None for i in interfaces)


async def test_wrong_v3_key_and_unknown_user(snmp: SnmpClient, snmpd_port: int) -> None:
    wrong_key = UsmAuth(V3_USER, "not-the-auth-key", V3_PRIV_KEY)
    with pytest.raises(AuthenticationFailed) as caught:
        await snmp.get(SnmpTarget(HOST, wrong_key, port=snmpd_port), SYS_DESCR)
    assert "not-the-auth-key" not in str(caught.value)
    stranger = UsmAuth("stranger", "auth-key-123", "priv-key-456")
    with pytest.raises(UnknownUser):
        await snmp.get(SnmpTarget(HOST, stranger, port=snmpd_port), SYS_DESCR)


async def test_wrong_community_times_out(snmp: SnmpClient, snmpd_port: int) -> None:
    target = SnmpTarget(HOST, CommunityAuth("guess-me-not"), port=snmpd_port)
    with pytest.raises(Timeout) as caught:
        await snmp.get(target, SYS_DESCR, timeout=0.3, retries=0)
    assert "guess-me-not" not in str(caught.value) + repr(caught.value)


async def test_silent_agent_times_out_before_the_deadline(snmp: SnmpClient) -> None:
    target = SnmpTarget(HOST, CommunityAuth("public"), port=free_udp_port())
    with pytest.raises(Timeout), trio.fail_after(10):  # never hangs, whatever the load
        await snmp.walk(target, SYSTEM, timeout=0.2, retries=2)


async def test_concurrent_requests(snmp: SnmpClient, v2c: SnmpTarget, v3: SnmpTarget) -> None:
    results = []

    async def one(target: SnmpTarget) -> None:
        results.append(await snmp.get(target, SYS_LOCATION))

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(one, v2c if i % 2 else v3)
    assert len(results) == 40
    assert all(vbs[0].value == OctetString(b"rack 7") for vbs in results)


async def test_client_inside_an_existing_asyncio_loop(v2c: SnmpTarget) -> None:
    import trio_asyncio  # type: ignore[import-untyped, unused-ignore]

    async with trio_asyncio.open_loop(), SnmpClient() as snmp:
        (vb,) = await snmp.get(v2c, SYS_LOCATION)
    assert vb.value == OctetString(b"rack 7")
