"""Hypothesis strategies for SNMP OIDs, typed values and varbinds (public, for users' own tests)."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from ._oid import Oid
from ._values import (
    Counter32,
    Counter64,
    EndOfMibView,
    Gauge32,
    Integer,
    IpAddress,
    NoSuchInstance,
    NoSuchObject,
    Null,
    ObjectIdentifier,
    OctetString,
    Opaque,
    SnmpValue,
    TimeTicks,
    VarBind,
)


def oids(min_size: int = 2, max_size: int = 16) -> st.SearchStrategy[Oid]:
    """OIDs whose first arcs are valid BER (0-2, then 0-39 under 0 and 1)."""
    first = st.integers(0, 2)
    return first.flatmap(
        lambda a: st.tuples(
            st.just(a),
            st.integers(0, 39) if a < 2 else st.integers(0, 2**32 - 81),
            st.lists(st.integers(0, 2**32 - 1), min_size=min_size - 2, max_size=max_size - 2),
        ).map(lambda t: Oid((t[0], t[1], *t[2])))
    )


def values() -> st.SearchStrategy[SnmpValue]:
    """Every kind of typed value, across its whole range."""
    return st.one_of(
        st.builds(Integer, st.integers(-(2**31), 2**31 - 1)),
        st.builds(Counter32, st.integers(0, 2**32 - 1)),
        st.builds(Counter64, st.integers(0, 2**64 - 1)),
        st.builds(Gauge32, st.integers(0, 2**32 - 1)),
        st.builds(TimeTicks, st.integers(0, 2**32 - 1)),
        st.builds(OctetString, st.binary(max_size=64)),
        st.builds(OctetString, st.text(max_size=32).map(str.encode)),
        st.builds(ObjectIdentifier, oids()),
        st.builds(IpAddress, st.ip_addresses(v=4).map(ipaddress.IPv4Address)),
        st.builds(Opaque, st.binary(max_size=32)),
        st.just(Null()),
        st.just(NoSuchObject()),
        st.just(NoSuchInstance()),
        st.just(EndOfMibView()),
    )


def varbinds() -> st.SearchStrategy[VarBind]:
    """An OID with any value."""
    return st.builds(VarBind, oids(), values())
