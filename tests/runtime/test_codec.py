"""Tests for runtime.codec: RackHD wire shapes, round trips, decode errors, convert and copy."""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.codec import (
    TYPE_ATTR,
    Codec,
    ErrorEvent,
    IpAddress,
    LogEvent,
    MacAddress,
    Result,
    message,
    wire_type_name,
)
from runtime.errors import DecodeError, EncodeError, RemoteError
from tests.strategies import ipv4_texts, json_objects, json_values, mac_texts

# ----------------------------------------------------------------------------- test messages


class Power(enum.Enum):
    ON = "on"
    OFF = "off"


class Role(enum.StrEnum):
    COMPUTE = "compute"
    SWITCH = "switch"


class Speed(enum.IntEnum):
    GIGABIT = 1000
    TEN_GIGABIT = 10000


@message("rackbus.test.Nic")
@attrs.frozen
class Nic:
    mac: MacAddress
    ip: IpAddress | None = None
    speed: Speed = Speed.GIGABIT


@message("rackbus.test.Node")
@attrs.frozen
class Node:
    id: str
    nics: tuple[Nic, ...]
    tags: list[str]
    power: Power
    role: Role = Role.COMPUTE
    meta: dict[str, Any] = attrs.Factory(dict)
    weight: float = 0.0
    slot: tuple[int, str] = (0, "")
    parent: Node | None = None


@attrs.define
class Mutable:
    items: list[int]
    label: str = ""


CODEC = Codec()
CODEC.register(Nic)
CODEC.register(Node)

REGISTERED: list[tuple[str, type]] = [
    ("Result", Result),
    ("ErrorEvent", ErrorEvent),
    ("IpAddress", IpAddress),
    ("MacAddress", MacAddress),
    ("LogEvent", LogEvent),
    ("rackbus.test.Nic", Nic),
    ("rackbus.test.Node", Node),
]


# ----------------------------------------------------------------------------- strategies


texts = st.text(max_size=20)
ip_addresses = st.builds(IpAddress, ipv4_texts)
mac_addresses = st.builds(MacAddress, mac_texts())
results = st.builds(Result, json_values())
error_events = st.builds(
    ErrorEvent,
    name=texts,
    message=texts,
    stack=texts,
    context=json_objects(),
    status=st.none() | st.integers(100, 599),
)
log_events = st.builds(
    LogEvent,
    level=st.sampled_from(["error", "warning", "info", "debug"]),
    message=texts,
    timestamp=st.datetimes().map(lambda moment: moment.isoformat()),
    caller=texts,
    subject=texts,
    name=texts,
    host=texts,
    module=texts,
    context=json_objects(),
)
nics = st.builds(Nic, mac=mac_addresses, ip=st.none() | ip_addresses, speed=st.sampled_from(Speed))
nodes = st.recursive(
    st.builds(
        Node,
        id=texts,
        nics=st.lists(nics, max_size=3).map(tuple),
        tags=st.lists(texts, max_size=3),
        power=st.sampled_from(Power),
        role=st.sampled_from(Role),
        meta=json_objects(),
        weight=st.floats(allow_nan=False, allow_infinity=False),
        slot=st.tuples(st.integers(-1000, 1000), texts),
    ),
    lambda children: st.builds(
        Node,
        id=texts,
        nics=st.just(()),
        tags=st.just([]),
        power=st.sampled_from(Power),
        parent=children,
    ),
    max_leaves=3,
)
messages = st.one_of(results, error_events, ip_addresses, mac_addresses, log_events, nics, nodes)


def _near_misses(cls: type) -> st.SearchStrategy[bytes]:
    """JSON objects with some of *cls*'s field names, holding any JSON values."""
    fields = {field.name: json_values() for field in attrs.fields(cls)}
    return st.fixed_dictionaries({}, optional=fields).map(orjson.dumps)


payloads = st.one_of(
    *(
        st.tuples(
            st.just(name),
            st.one_of(st.binary(max_size=64), json_values().map(orjson.dumps), _near_misses(cls)),
        )
        for name, cls in REGISTERED
    )
)
"""A registered wire name and a body: random bytes, random JSON, or a near-miss object."""


def decode_error(type_name: str, body: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(type_name, body)
    return info.value


def paths(error: DecodeError) -> list[str]:
    return [path for path, _ in error.fields]


# ----------------------------------------------------------------------------- round trips


@given(messages)
@settings(max_examples=100)
def test_encode_decode_round_trip(msg: object) -> None:
    type_name, body = CODEC.encode(msg)
    assert type_name == wire_type_name(msg)
    assert CODEC.decode(type_name, body) == msg
    assert CODEC.decode(None, body, into=type(msg)) == msg
    assert CODEC.to_wire(msg) == orjson.loads(body)


@given(json_values())
@settings(max_examples=100)
def test_plain_json_round_trip(value: Any) -> None:
    type_name, body = CODEC.encode(value)
    assert type_name == "Object"
    assert CODEC.decode(type_name, body) == value
    assert CODEC.to_wire(value) == value


# ----------------------------------------------------------------------------- RackHD wire shape


def test_result_wire_shape() -> None:
    assert CODEC.encode(Result(value=1)) == ("Result", b'{"value":1}')
    assert CODEC.encode(Result()) == ("Result", b'{"value":null}')


def test_error_event_omits_status_when_unset() -> None:
    type_name, body = CODEC.encode(ErrorEvent("Error", "boom"))
    assert type_name == "ErrorEvent"
    assert json.loads(body) == {"name": "Error", "message": "boom", "stack": "", "context": {}}


def test_error_event_includes_status_when_set() -> None:
    _, body = CODEC.encode(ErrorEvent("Error", "gone", context={"id": "n1"}, status=404))
    assert json.loads(body) == {
        "name": "Error",
        "message": "gone",
        "stack": "",
        "context": {"id": "n1"},
        "status": 404,
    }


@given(error_events)
@settings(max_examples=50)
def test_error_event_keys(event: ErrorEvent) -> None:
    keys = list(json.loads(CODEC.encode(event)[1]))
    expected = ["name", "message", "stack", "context"]
    assert keys == (expected if event.status is None else [*expected, "status"])


def test_address_wire_shapes() -> None:
    assert CODEC.encode(IpAddress("10.1.1.3")) == ("IpAddress", b'{"value":"10.1.1.3"}')
    assert CODEC.encode(MacAddress("00:1E:67:AB:CD:EF")) == (
        "MacAddress",
        b'{"value":"00:1e:67:ab:cd:ef"}',
    )


def test_log_event_wire_shape() -> None:
    event = LogEvent("info", "hello", "2024-05-01T12:00:00.000Z", "codec.py:1")
    assert json.loads(CODEC.encode(event)[1]) == {
        "level": "info",
        "message": "hello",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "caller": "codec.py:1",
        "subject": "Server",
        "name": "",
        "host": "",
        "module": "",
        "context": {},
    }


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], "text", 3, 2.5, True, None])
def test_plain_values_are_objects(value: object) -> None:
    assert wire_type_name(value) == "Object"
    assert CODEC.encode(value)[0] == "Object"


def test_wire_type_names() -> None:
    assert wire_type_name(Result(1)) == "Result"
    assert wire_type_name(ErrorEvent("E", "m")) == "ErrorEvent"
    assert wire_type_name(Mutable([])) == "Mutable"
    with pytest.raises(EncodeError, match="set"):
        wire_type_name({1, 2})


def test_decode_rackhd_result_with_extra_keys() -> None:
    assert CODEC.decode("Result", b'{"value": {"a": [1]}, "extra": 2}') == Result({"a": [1]})


def test_decode_unknown_type_returns_json() -> None:
    assert CODEC.decode("Object", b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert CODEC.decode("SomethingElse", b"[1]") == [1]
    assert CODEC.decode(None, b'"x"') == "x"


def test_decode_into_overrides_type_name() -> None:
    assert CODEC.decode("Result", b'{"value": "10.0.0.1"}', into=IpAddress) == IpAddress("10.0.0.1")


def test_mac_address_is_normalised_to_lower_case() -> None:
    assert MacAddress("AA:BB:CC:DD:EE:FF").value == "aa:bb:cc:dd:ee:ff"
    assert CODEC.decode("MacAddress", b'{"value": "AA:BB:CC:DD:EE:0F"}') == MacAddress(
        "aa:bb:cc:dd:ee:0f"
    )


@pytest.mark.parametrize("text", ["1.2.3", "256.1.1.1", "1.2.3.4.5", "::1", "", " 1.2.3.4"])
def test_ip_address_validation(text: str) -> None:
    with pytest.raises(ValueError, match="value"):
        IpAddress(text)


@pytest.mark.parametrize(
    "text", ["aa:bb:cc:dd:ee", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:fg", "aabbccddeeff", ""]
)
def test_mac_address_validation(text: str) -> None:
    with pytest.raises(ValueError, match="value"):
        MacAddress(text)


def test_error_event_from_exception_and_back() -> None:
    try:
        raise KeyError("node-1")
    except KeyError as exc:
        event = ErrorEvent.from_exception(exc, context={"id": "n1"}, status=404)
    assert (event.name, event.message, event.context, event.status) == (
        "KeyError",
        "'node-1'",
        {"id": "n1"},
        404,
    )
    assert "Traceback" in event.stack
    assert "KeyError" in event.stack
    error = event.to_error()
    assert isinstance(error, RemoteError)
    assert (error.name, error.message, error.stack, error.context, error.status) == (
        "KeyError",
        "'node-1'",
        event.stack,
        {"id": "n1"},
        404,
    )
    assert ErrorEvent.from_exception(ValueError("x")).context == {}


# ----------------------------------------------------------------------------- decode errors


def test_wrong_type_names_the_field() -> None:
    error = decode_error("IpAddress", b'{"value": 5}')
    assert "value" in str(error)
    assert error.fields == (("$.value", "expected str, got int"),)


@pytest.mark.parametrize("text", ["300.1.2.3", "1.2.3", "not an address"])
def test_bad_ipv4_names_the_field(text: str) -> None:
    error = decode_error("IpAddress", orjson.dumps({"value": text}))
    assert paths(error) == ["$.value"]
    assert "value" in str(error)


def test_bad_mac_names_the_field() -> None:
    assert paths(decode_error("MacAddress", b'{"value": "00:11:22"}')) == ["$.value"]


def test_missing_required_field_is_named() -> None:
    error = decode_error("ErrorEvent", b'{"name": "E"}')
    assert error.fields == (("$.message", "required field missing"),)
    assert "message" in str(error)


def test_every_bad_field_is_named() -> None:
    error = decode_error(
        "ErrorEvent", b'{"name": 1, "message": "m", "context": [], "status": true}'
    )
    assert paths(error) == ["$.name", "$.context", "$.status"]


def test_nested_errors_have_full_paths() -> None:
    body = orjson.dumps(
        {
            "id": "n1",
            "nics": [{"mac": {"value": "00:11:22:33:44:55"}}, {"mac": {"value": "bad"}}],
            "tags": ["a", 2],
            "power": "standby",
            "slot": [1],
            "parent": {"id": 7, "nics": [], "tags": [], "power": "on"},
        }
    )
    assert paths(decode_error("rackbus.test.Node", body)) == [
        "$.nics[1].mac.value",
        "$.tags[1]",
        "$.power",
        "$.slot",
        "$.parent.id",
    ]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"id": "n", "nics": [], "tags": "abc", "power": "on"}', "$.tags"),
        (b'{"id": "n", "nics": {}, "tags": [], "power": "on"}', "$.nics"),
        (b'{"id": "n", "nics": [], "tags": [], "power": "on", "meta": []}', "$.meta"),
        (b'{"id": "n", "nics": [], "tags": [], "power": "on", "role": "hub"}', "$.role"),
        (b'{"id": "n", "nics": [], "tags": [], "power": "ON"}', "$.power"),
        (
            b'{"id": "n", "nics": [{"mac": {"value": "00:00:00:00:00:01"}, "speed": "1000"}],'
            b' "tags": [], "power": "on"}',
            "$.nics[0].speed",
        ),
        (b'{"id": "n", "nics": [], "tags": [], "power": "on", "weight": true}', "$.weight"),
        (b'{"id": "n", "nics": [], "tags": [], "power": "on", "slot": [1, 2]}', "$.slot[1]"),
    ],
)
def test_json_types_are_not_coerced(body: bytes, path: str) -> None:
    assert paths(decode_error("rackbus.test.Node", body)) == [path]


@pytest.mark.parametrize("body", [b"[1]", b'"value"', b"null", b"5"])
def test_non_object_body(body: bytes) -> None:
    assert paths(decode_error("IpAddress", body)) == ["$"]


@pytest.mark.parametrize("body", [b"", b"{", b'{"value": }', b'"\xff"', b"\x00"])
def test_invalid_json(body: bytes) -> None:
    error = decode_error("Result", body)
    assert paths(error) == ["$"]
    assert "invalid JSON" in str(error)


@given(payloads)
@settings(max_examples=100)
def test_arbitrary_input_only_raises_decode_error(payload: tuple[str, bytes]) -> None:
    type_name, body = payload
    try:
        result = CODEC.decode(type_name, body)
    except DecodeError as error:
        assert error.fields
        assert all(path.startswith("$") for path in paths(error))
    else:
        assert isinstance(result, CODEC.lookup(type_name) or object)


# ----------------------------------------------------------------------------- convert


@given(messages)
@settings(max_examples=100)
def test_convert_and_copy_in_memory(msg: object) -> None:
    assert CODEC.convert(msg, type(msg)) is msg
    assert CODEC.copy(msg) is msg
    assert CODEC.convert(CODEC.to_wire(msg), type(msg)) == msg


def test_convert_dict_to_class() -> None:
    assert CODEC.convert({"value": "10.0.0.1"}, IpAddress) == IpAddress("10.0.0.1")
    node = CODEC.convert(
        {"id": "n1", "nics": [{"mac": {"value": "00:11:22:33:44:55"}}], "tags": [], "power": "on"},
        Node,
    )
    assert node == Node("n1", (Nic(MacAddress("00:11:22:33:44:55")),), [], Power.ON)


def test_convert_bad_dict_names_the_field() -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.convert({"value": "10.0.0"}, IpAddress)
    assert paths(info.value) == ["$.value"]
    with pytest.raises(DecodeError, match=r"\$\.value"):
        CODEC.convert(IpAddress("10.0.0.1"), MacAddress)


def test_convert_to_plain_types() -> None:
    assert CODEC.convert(5, int) == 5
    assert CODEC.convert(5, float) == 5.0
    assert CODEC.convert([1, 2], list[int]) == [1, 2]
    assert CODEC.convert((1, "a"), tuple[int, str]) == (1, "a")
    assert CODEC.convert(Result(1), dict[str, Any]) == {"value": 1}
    anything: Any = Any
    assert CODEC.convert(Result(1), anything) == {"value": 1}
    assert CODEC.convert("on", Power) is Power.ON
    assert CODEC.convert("switch", Role) is Role.SWITCH
    assert CODEC.convert(10000, Speed) is Speed.TEN_GIGABIT
    assert CODEC.convert(None, IpAddress | None) is None
    original = {"a": [1]}
    converted = CODEC.convert(original, dict[str, Any])
    assert converted == original
    assert converted is not original


@pytest.mark.parametrize(
    ("value", "into"),
    [("5", int), (True, int), (1.5, int), (None, str), ([1, "a"], list[int]), ("ab", list[str])],
)
def test_convert_rejects_mismatches(value: object, into: Any) -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.convert(value, into)
    assert info.value.fields[0][0].startswith("$")


def test_convert_refuses_unencodable_values() -> None:
    with pytest.raises(EncodeError):
        CODEC.convert({"value": {1, 2}}, Result)


# ----------------------------------------------------------------------------- copy


@pytest.mark.parametrize("value", ["text", 3, 2.5, True, None])
def test_copy_shares_scalars(value: object) -> None:
    assert CODEC.copy(value) is value


@given(json_objects())
@settings(max_examples=60)
def test_copy_of_dict_is_independent(original: dict[str, Any]) -> None:
    snapshot = orjson.loads(orjson.dumps(original))
    copied = CODEC.copy(original)
    assert copied == original
    assert copied is not original
    assert isinstance(copied, dict)
    copied["__new__"] = 1
    for value in copied.values():
        if isinstance(value, list):
            value.append("more")
        elif isinstance(value, dict):
            value["more"] = 1
    assert original == snapshot


def test_copy_unstructures_nested_messages() -> None:
    assert CODEC.copy({"ip": IpAddress("10.0.0.1"), "list": (1, 2)}) == {
        "ip": {"value": "10.0.0.1"},
        "list": [1, 2],
    }


def test_copy_of_mutable_attrs_instance() -> None:
    original = Mutable([1, 2], "x")
    copied = CODEC.copy(original)
    assert copied == original
    assert copied is not original
    assert isinstance(copied, Mutable)
    copied.items.append(3)
    assert original.items == [1, 2]


@pytest.mark.parametrize(
    "value",
    [{1, 2}, b"bytes", object(), {1: "a"}, {"a": {1, 2}}, [b"x"], Mutable([2**70])],
)
def test_copy_refuses_unencodable_values(value: object) -> None:
    with pytest.raises(EncodeError):
        CODEC.copy(value)


# ----------------------------------------------------------------------------- encode errors


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        (object(), "object"),
        ({"a": b"x"}, "bytes"),
        ({1: "a"}, "key"),
        (Result(value={1, 2}), "set"),
        (Result(value={2: "a"}), "int"),
    ],
)
def test_encode_errors_name_the_problem(value: object, named: str) -> None:
    with pytest.raises(EncodeError, match=named):
        CODEC.encode(value)


@pytest.mark.parametrize(
    ("value", "named"), [({1, 2}, "set"), ({"a": object()}, "object"), ({3: 1}, "int")]
)
def test_to_wire_errors_name_the_type(value: object, named: str) -> None:
    with pytest.raises(EncodeError, match=named):
        CODEC.to_wire(value)


def test_to_wire_unstructures_messages_anywhere() -> None:
    assert CODEC.to_wire(
        [Result(IpAddress("10.0.0.1")), {"mac": MacAddress("AA:00:00:00:00:01")}]
    ) == [
        {"value": {"value": "10.0.0.1"}},
        {"mac": {"value": "aa:00:00:00:00:01"}},
    ]
    assert CODEC.to_wire(Mutable([1])) == {"items": [1], "label": ""}
    assert CODEC.to_wire(Power.ON) == "on"
    assert CODEC.to_wire(Nic(MacAddress("00:00:00:00:00:01"))) == {
        "mac": {"value": "00:00:00:00:00:01"},
        "ip": None,
        "speed": 1000,
    }


def test_circular_value_is_an_encode_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(EncodeError):
        CODEC.encode(loop)
    with pytest.raises(EncodeError):
        CODEC.to_wire(loop)


# ----------------------------------------------------------------------------- registry


def test_envelopes_are_registered() -> None:
    codec = Codec()
    for cls in (Result, ErrorEvent, IpAddress, MacAddress, LogEvent):
        assert codec.lookup(getattr(cls, TYPE_ATTR)) is cls
    assert codec.lookup("rackbus.test.Node") is None
    assert codec.lookup("Object") is None


def test_message_default_name() -> None:
    @message()
    @attrs.frozen
    class Inventory:
        count: int

    assert getattr(Inventory, TYPE_ATTR) == "Inventory"
    codec = Codec()
    assert codec.register(Inventory) is Inventory
    assert codec.encode(Inventory(2)) == ("Inventory", b'{"count":2}')


def test_message_name_must_be_text() -> None:
    with pytest.raises(TypeError):
        message("")


def test_register_is_idempotent() -> None:
    codec = Codec()
    assert codec.register(Node) is Node
    assert codec.register(Node) is Node
    assert codec.lookup("rackbus.test.Node") is Node


def test_register_conflicting_name_names_both_classes() -> None:
    @message("Result")
    @attrs.frozen
    class Impostor:
        value: int

    codec = Codec()
    with pytest.raises(ValueError, match="Impostor") as info:
        codec.register(Impostor)
    assert "envelopes.Result" in str(info.value)
    assert codec.lookup("Result") is Result


def test_register_needs_a_named_attrs_class() -> None:
    class Plain:
        pass

    codec = Codec()
    with pytest.raises(TypeError):
        codec.register(Plain)
    with pytest.raises(TypeError, match="message"):
        codec.register(Mutable)


def test_register_refuses_the_object_name() -> None:
    @message("Object")
    @attrs.frozen
    class Shadow:
        value: int

    with pytest.raises(ValueError, match="Object"):
        Codec().register(Shadow)


def test_subclass_does_not_inherit_the_wire_name() -> None:
    @attrs.frozen
    class Special(Result):
        extra: int = 0

    assert wire_type_name(Special(1)) == "Special"
    with pytest.raises(TypeError):
        Codec().register(Special)
