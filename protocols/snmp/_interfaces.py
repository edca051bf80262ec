"""The IF-MIB interface table as records, assembled from walks of ifTable and ifXTable (pure)."""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from ._oid import Oid
from ._values import Counter32, Counter64, Gauge32, Integer, OctetString, VarBind

IF_ENTRY = Oid.parse("1.3.6.1.2.1.2.2.1")
IF_X_ENTRY = Oid.parse("1.3.6.1.2.1.31.1.1.1")

#: ifEntry columns (RFC 2863).
IF_INDEX, IF_DESCR, IF_TYPE, IF_MTU, IF_SPEED, IF_PHYS_ADDRESS = 1, 2, 3, 4, 5, 6
IF_ADMIN_STATUS, IF_OPER_STATUS, IF_IN_OCTETS, IF_OUT_OCTETS = 7, 8, 10, 16
#: ifXEntry columns.
IF_NAME, IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, IF_HIGH_SPEED, IF_ALIAS = 1, 6, 10, 15, 18

_SPEED_SATURATED = 2**32 - 1


class AdminStatus(enum.Enum):
    """ifAdminStatus."""

    UP = 1
    DOWN = 2
    TESTING = 3
    UNKNOWN = 0  # any value the MIB does not define


class OperStatus(enum.Enum):
    """ifOperStatus."""

    UP = 1
    DOWN = 2
    TESTING = 3
    UNKNOWN = 4
    DORMANT = 5
    NOT_PRESENT = 6
    LOWER_LAYER_DOWN = 7


@attrs.frozen
class Interface:
    """One row of ifTable, with the ifXTable columns when the agent has them.

    ``speed`` is in bits per second, taken from ifHighSpeed when ifSpeed is saturated;
    the ``hc_`` counters are ``None`` when the agent has no ifXTable.
    """

    index: int
    descr: str
    type: int | None = None
    mtu: int | None = None
    speed: int | None = None
    phys_address: bytes = b""
    admin_status: AdminStatus | None = None
    oper_status: OperStatus | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    name: str | None = None
    alias: str | None = None
    hc_in_octets: int | None = None
    hc_out_octets: int | None = None

    @property
    def mac(self) -> str:
        """ifPhysAddress as ``aa:bb:cc:dd:ee:ff`` (empty when there is none)."""
        return self.phys_address.hex(":")


def _columns(varbinds: Iterable[VarBind], entry: Oid) -> dict[int, dict[int, object]]:
    """{row index: {column: value}} for the single-arc-indexed columns under ``entry``."""
    rows: dict[int, dict[int, object]] = {}
    for vb in varbinds:
        if not vb.oid.is_within(entry):
            continue
        suffix = vb.oid.suffix(entry)
        if len(suffix) != 2 or vb.is_exception:
            continue
        column, index = suffix
        rows.setdefault(index, {})[column] = vb.value
    return rows


def _int(value: object, *kinds: type) -> int | None:
    if isinstance(value, kinds):
        number = getattr(value, "value", None)
        return number if isinstance(number, int) else None
    return None


def _text(value: object) -> str | None:
    """A DisplayString column as text (undecodable bytes replaced, never a hex dump)."""
    return value.value.decode("utf-8", "replace") if isinstance(value, OctetString) else None


def _enum(kind: type[enum.Enum], value: object, fallback: enum.Enum) -> enum.Enum | None:
    number = _int(value, Integer)
    if number is None:
        return None
    try:
        return kind(number)
    except ValueError:
        return fallback


def interfaces_from_walk(
    if_table: Iterable[VarBind], if_x_table: Iterable[VarBind] = ()
) -> tuple[Interface, ...]:
    """Interfaces ordered by ifIndex, from the varbinds of walks of ifEntry and ifXEntry."""
    rows = _columns(if_table, IF_ENTRY)
    extra = _columns(if_x_table, IF_X_ENTRY)
    out = []
    for index in sorted(rows):
        row, x = rows[index], extra.get(index, {})
        speed = _int(row.get(IF_SPEED), Gauge32)
        high = _int(x.get(IF_HIGH_SPEED), Gauge32)
        if high is not None and (speed is None or speed == _SPEED_SATURATED):
            speed = high * 1_000_000
        phys = row.get(IF_PHYS_ADDRESS)
        admin = _enum(AdminStatus, row.get(IF_ADMIN_STATUS), AdminStatus.UNKNOWN)
        oper = _enum(OperStatus, row.get(IF_OPER_STATUS), OperStatus.UNKNOWN)
        out.append(
            Interface(
                index=index,
                descr=_text(row.get(IF_DESCR)) or "",
                type=_int(row.get(IF_TYPE), Integer),
                mtu=_int(row.get(IF_MTU), Integer),
                speed=speed,
                phys_address=phys.value if isinstance(phys, OctetString) else b"",
                admin_status=admin if isinstance(admin, AdminStatus) else None,
                oper_status=oper if isinstance(oper, OperStatus) else None,
                in_octets=_int(row.get(IF_IN_OCTETS), Counter32),
                out_octets=_int(row.get(IF_OUT_OCTETS), Counter32),
                name=_text(x.get(IF_NAME)),
                alias=_text(x.get(IF_ALIAS)),
                hc_in_octets=_int(x.get(IF_HC_IN_OCTETS), Counter64),
                hc_out_octets=_int(x.get(IF_HC_OUT_OCTETS), Counter64),
            )
        )
    return tuple(out)
