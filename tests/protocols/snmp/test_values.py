"""Property tests of the pure core: pysnmp values into typed values, OIDs, interface records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyasn1.type import univ  # type: ignore[import-untyped, unused-ignore]
from pysnmp.proto import rfc1902, rfc1905  # type: ignore[import-untyped, unused-ignore]

from protocols.snmp import (
    IF_ENTRY,
    IF_X_ENTRY,
    AdminStatus,
    ConversionError,
    Counter32,
    Counter64,
    EndOfMibView,
    Gauge32,
    Integer,
    NoSuchInstance,
    NoSuchObject,
    Null,
    OctetString,
    Oid,
    OperStatus,
    SnmpValue,
    TimeTicks,
    VarBind,
    from_pysnmp,
    interfaces_from_walk,
    printable,
    to_pysnmp,
    varbind_from_pysnmp,
)
from protocols.snmp.strategies import oids, values


@given(values())
def test_round_trip_through_pysnmp(value: SnmpValue) -> None:
    assert from_pysnmp(to_pysnmp(value)) == value


@given(st.integers(0, 2**32 - 1))
def test_pysnmp_integer_types_keep_their_kind(n: int) -> None:
    assert from_pysnmp(rfc1902.Counter32(n)) == Counter32(n)
    assert from_pysnmp(rfc1902.Gauge32(n)) == Gauge32(n)
    assert from_pysnmp(rfc1902.Unsigned32(n)) == Gauge32(n)
    assert from_pysnmp(rfc1902.TimeTicks(n)) == TimeTicks(n)
    assert from_pysnmp(rfc1902.Counter64(n * 2**31)) == Counter64(n * 2**31)
    if n < 2**31:
        assert from_pysnmp(rfc1902.Integer32(-n)) == Integer(-n)


def test_markers_and_null() -> None:
    assert from_pysnmp(rfc1905.noSuchObject) == NoSuchObject()
    assert from_pysnmp(rfc1905.noSuchInstance) == NoSuchInstance()
    assert from_pysnmp(rfc1905.endOfMibView) == EndOfMibView()
    assert from_pysnmp(univ.Null("")) == Null()
    assert from_pysnmp(rfc1902.Bits(b"\x80")) == OctetString(b"\x80")
    with pytest.raises(ConversionError):
        from_pysnmp(univ.Boolean(True))
    with pytest.raises(ConversionError):
        from_pysnmp("not an SNMP value")


@given(st.binary(max_size=64))
def test_octet_strings_keep_bytes_and_text_only_when_printable(data: bytes) -> None:
    value = from_pysnmp(rfc1902.OctetString(data))
    assert isinstance(value, OctetString) and value.value == data
    text = value.text
    if text is not None:
        assert text.encode() == data and str(value) == text
    else:
        assert str(value) == data.hex(":")


@given(st.text().filter(str.isprintable))
def test_printable_text_is_kept(text: str) -> None:
    assert printable(text.encode()) == text


@given(oids(), oids())
def test_oid_order_is_tuple_order(a: Oid, b: Oid) -> None:
    assert (a < b) == (a.arcs < b.arcs)
    assert Oid.parse(str(a)) == a and Oid.parse("." + str(a)) == a
    assert a.child(1).is_within(a) and not a.is_within(a)
    assert varbind_from_pysnmp(rfc1902.ObjectName(str(a)), rfc1902.Integer32(1)).oid == a


@pytest.mark.parametrize("text", ["", "1..2", "1.x", "-1.3", ".".join(["1"] * 129)])
def test_bad_oids(text: str) -> None:
    with pytest.raises(ValueError):
        Oid.parse(text)


rows = st.dictionaries(
    st.integers(1, 2**31 - 1),
    st.tuples(
        st.text(max_size=12),
        st.integers(1, 300),
        st.integers(0, 2**32 - 1),
        st.sampled_from([1, 2, 3, 9]),
        st.integers(1, 7),
        st.integers(0, 2**32 - 1),
        st.none() | st.integers(0, 2**64 - 1),
        st.none() | st.integers(0, 100_000),
    ),
    max_size=6,
)


@given(rows)
def test_interfaces_from_walk(table: dict[int, tuple]) -> None:  # type: ignore[type-arg]
    if_rows: list[VarBind] = []
    x_rows: list[VarBind] = []
    for index, (descr, if_type, speed, admin, oper, octets, hc, high) in table.items():
        column = {
            2: OctetString(descr.encode()),
            3: Integer(if_type),
            5: Gauge32(speed),
            7: Integer(admin),
            8: Integer(oper),
            10: Counter32(octets),
            16: Counter32(octets),
        }
        if_rows += [VarBind(IF_ENTRY.child(c, index), v) for c, v in column.items()]
        if hc is not None:
            x_rows.append(VarBind(IF_X_ENTRY.child(6, index), Counter64(hc)))
        if high is not None:
            x_rows.append(VarBind(IF_X_ENTRY.child(15, index), Gauge32(high)))
    interfaces = interfaces_from_walk(sorted(if_rows, key=lambda vb: vb.oid), x_rows)
    assert [i.index for i in interfaces] == sorted(table)
    for interface in interfaces:
        descr, if_type, speed, admin, oper, octets, hc, high = table[interface.index]
        assert interface.descr == descr and interface.type == if_type
        assert interface.in_octets == interface.out_octets == octets
        assert interface.hc_in_octets == hc
        expected = high * 1_000_000 if high is not None and speed == 2**32 - 1 else speed
        assert interface.speed == expected
        assert interface.admin_status == (AdminStatus(admin) if admin < 4 else AdminStatus.UNKNOWN)
        assert interface.oper_status == OperStatus(oper)


def test_interface_rows_ignore_foreign_and_missing_values() -> None:
    rows = [
        VarBind(IF_ENTRY.child(2, 1), OctetString(b"eth0")),
        VarBind(IF_ENTRY.child(5, 1), NoSuchInstance()),
        VarBind(Oid.parse("1.3.6.1.2.1.1.1.0"), OctetString(b"elsewhere")),
    ]
    (eth0,) = interfaces_from_walk(rows)
    assert eth0.descr == "eth0" and eth0.speed is None and eth0.hc_in_octets is None
