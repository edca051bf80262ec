"""The contract every ``Bus`` honours; runs unchanged on each bus kind (see conftest)."""

from __future__ import annotations

import pytest
import trio

from runtime import (
    Bus,
    CallTimeout,
    DecodeError,
    EncodeError,
    InvalidRoutingKey,
    MailboxClosed,
    MailboxFull,
    NoResponder,
    RemoteError,
)
from runtime.delivery import Delivery
from runtime.testing import Inbox

from .conftest import Ping

EX = "on.contract"


async def test_publish_fans_out_to_every_matching_binding(clock, bus: Bus) -> None:
    exact, star, hash_, other = Inbox(), Inbox(), Inbox(), Inbox()
    await exact.bind(bus, EX, "node.n1.seen")
    await star.bind(bus, EX, "node.*.seen")
    await hash_.bind(bus, EX, "node.#")
    await other.bind(bus, EX, "node.n2.seen")
    await bus.publish(EX, "node.n1.seen", Ping(1))
    for inbox in (exact, star, hash_):
        [delivery] = await inbox.wait_for(1)
        assert delivery.payload == Ping(1)
        assert delivery.routing_key == "node.n1.seen"
        assert delivery.exchange == EX
        assert delivery.type_name == "ContractPing"
        assert not delivery.is_call
    await trio.testing.wait_all_tasks_blocked()
    assert other.deliveries == []


async def test_each_binding_gets_its_own_copy(clock, bus: Bus) -> None:
    inbox, marker = Inbox(), Inbox()
    await inbox.bind(bus, EX, "a.#")
    await inbox.bind(bus, EX, "a.*")
    await marker.bind(bus, EX, "a.b")
    await bus.publish(EX, "a.b", {"x": 1})
    await marker.wait_for(1)
    await trio.testing.wait_all_tasks_blocked()
    # Two bindings of one consumer are two subscriptions: each gets its copy, as
    # two queues would on a broker.
    assert [d.payload for d in inbox.deliveries] == [{"x": 1}, {"x": 1}]


async def test_publish_with_no_binding_is_not_an_error(clock, bus: Bus) -> None:
    await bus.publish(EX, "nobody.listens", {"a": 1})
    assert bus.statistics().unroutable >= 1


async def test_other_exchange_does_not_receive(clock, bus: Bus) -> None:
    here, there = Inbox(), Inbox()
    await here.bind(bus, EX, "#")
    await there.bind(bus, "on.elsewhere", "#")
    await bus.publish(EX, "k", 1)
    await here.wait_for(1)
    await trio.testing.wait_all_tasks_blocked()
    assert there.deliveries == []


async def test_unbind_stops_delivery(clock, bus: Bus) -> None:
    inbox, marker = Inbox(), Inbox()
    binding = await inbox.bind(bus, EX, "k")
    await marker.bind(bus, EX, "k")
    await bus.unbind(binding)
    await bus.unbind(binding)  # harmless twice
    await bus.publish(EX, "k", 1)
    await marker.wait_for(1)
    await trio.testing.wait_all_tasks_blocked()
    assert inbox.deliveries == []


async def test_messages_from_one_sender_arrive_in_order(clock, bus: Bus) -> None:
    inbox = Inbox()
    await inbox.bind(bus, EX, "seq.#")
    for i in range(200):
        await bus.publish(EX, f"seq.{i % 3}", Ping(i))
    await inbox.wait_for(200)
    assert [p.n for p in inbox.payloads] == list(range(200))


async def test_plain_json_payloads_are_copied_not_shared(clock, bus: Bus) -> None:
    inbox = Inbox()
    await inbox.bind(bus, EX, "k")
    sent = {"list": [1, 2], "nested": {"a": None}}
    await bus.publish(EX, "k", sent)
    [delivery] = await inbox.wait_for(1)
    sent["list"].append(3)
    assert delivery.payload == {"list": [1, 2], "nested": {"a": None}}
    assert delivery.type_name == "Object"


async def test_unencodable_payload_is_refused(clock, bus: Bus) -> None:
    inbox = Inbox(answer=lambda p: p)
    await inbox.bind(bus, EX, "k")
    with pytest.raises(EncodeError):
        await bus.publish(EX, "k", {"socket": object()})
    with pytest.raises(EncodeError):
        await bus.call(EX, "k", {1, 2, 3})
    assert inbox.deliveries == []


async def test_bad_names_are_refused(clock, bus: Bus) -> None:
    inbox = Inbox()
    with pytest.raises(ValueError, match="exchange"):
        await inbox.bind(bus, "bad exchange!", "k")
    with pytest.raises(InvalidRoutingKey):
        await inbox.bind(bus, EX, "x" * 256)
    with pytest.raises(InvalidRoutingKey):
        await bus.publish(EX, "y" * 256, 1)


async def test_declare_refuses_bad_names_and_takes_good_ones_twice(clock, bus: Bus) -> None:
    with pytest.raises(ValueError, match="exchange"):
        await bus.declare("bad exchange!")
    await bus.declare(EX)
    await bus.declare(EX)
    inbox = Inbox()
    await inbox.bind(bus, EX, "k")
    await bus.publish(EX, "k", 1)
    await inbox.wait_for(1)


async def test_call_returns_the_reply(clock, bus: Bus) -> None:
    server = Inbox(answer=lambda p: {"echo": p["n"] + 1})
    await server.bind(bus, EX, "methods.echo")
    assert await bus.call(EX, "methods.echo", {"n": 41}) == {"echo": 42}


async def test_call_converts_the_reply_to_the_type_asked_for(clock, bus: Bus) -> None:
    server = Inbox(answer=lambda p: {"n": 7, "note": "seven"})
    await server.bind(bus, EX, "methods.ping")
    reply = await bus.call(EX, "methods.ping", Ping(1), returns=Ping)
    assert reply == Ping(7, "seven")
    [request] = server.deliveries
    assert request.payload == Ping(1)
    assert request.is_call


async def test_call_with_a_reply_of_the_wrong_shape_raises_decode_error(clock, bus: Bus) -> None:
    server = Inbox(answer=lambda p: {"n": "not a number"})
    await server.bind(bus, EX, "methods.bad")
    with pytest.raises(DecodeError, match="n"):
        await bus.call(EX, "methods.bad", {}, returns=Ping)


async def test_call_to_nobody_fails_at_once(clock, bus: Bus) -> None:
    start = trio.current_time()
    with pytest.raises(NoResponder) as caught:
        await bus.call(EX, "methods.nobody", {}, timeout=5)
    assert trio.current_time() - start < 5
    assert caught.value.exchange == EX
    assert caught.value.routing_key == "methods.nobody"
    assert "methods.nobody" in str(caught.value)
    assert bus.statistics().no_responder >= 1


async def test_call_timeout_names_exchange_and_key(clock, bus: Bus) -> None:
    silent = Inbox()  # records the request, never answers
    await silent.bind(bus, EX, "methods.slow")
    start = trio.current_time()
    with pytest.raises(CallTimeout) as caught:
        await bus.call(EX, "methods.slow", {}, timeout=0.5)
    assert trio.current_time() - start >= 0.5
    assert caught.value.exchange == EX
    assert caught.value.routing_key == "methods.slow"
    assert f"{EX}/methods.slow" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)


async def test_default_call_deadline_is_five_seconds(clock, bus: Bus) -> None:
    silent = Inbox()
    await silent.bind(bus, EX, "methods.slow")
    start = trio.current_time()
    with pytest.raises(CallTimeout):
        await bus.call(EX, "methods.slow", {})
    # virtual time is exact; on a real broker the clock is real and the deadline too
    assert trio.current_time() - start == pytest.approx(5.0, abs=0 if clock else 0.5)


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
async def test_call_needs_a_finite_deadline(clock, bus: Bus, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await bus.call(EX, "methods.any", {}, timeout=timeout)


async def test_remote_error_carries_the_error_event_fields(clock, bus: Bus) -> None:
    def fail(payload: object) -> object:
        raise LookupError("node n1 not found")

    server = Inbox(answer=fail)
    await server.bind(bus, EX, "methods.fail")
    with pytest.raises(RemoteError) as caught:
        await bus.call(EX, "methods.fail", {"id": "n1"})
    error = caught.value
    assert error.name == "LookupError"
    assert error.message == "node n1 not found"
    assert "LookupError" in error.stack
    assert isinstance(error.context, dict)
    assert error.status == 500


async def test_first_reply_wins(clock, bus: Bus) -> None:
    first = Inbox(answer=lambda p: "first")
    second = Inbox(answer=lambda p: "second")
    await first.bind(bus, EX, "methods.who")
    await second.bind(bus, EX, "methods.who")
    assert await bus.call(EX, "methods.who", {}) == "first"
    # the second responder also got the request and answered into the void
    await second.wait_for(1)


async def test_statistics_count_traffic(clock, bus: Bus) -> None:
    inbox = Inbox(answer=lambda p: p)
    await inbox.bind(bus, EX, "k")
    before = bus.statistics()
    await bus.publish(EX, "k", 1)
    await bus.call(EX, "k", 2)
    after = bus.statistics()
    assert after.bindings == before.bindings
    assert after.published == before.published + 1
    assert after.calls == before.calls + 1


class Refusing:
    """A consumer that refuses everything, as a full ``Overflow.REJECT`` mailbox or a stopped
    actor does."""

    def __init__(self, refusal: Exception) -> None:
        self.refusal = refusal
        self.tries = 0

    async def deliver(self, delivery: Delivery, deadline: float) -> None:
        self.tries += 1
        await trio.lowlevel.checkpoint()
        raise self.refusal


class Gate:
    """A consumer that takes nothing until ``opened`` is set (a full mailbox), then records."""

    def __init__(self) -> None:
        self.opened = trio.Event()
        self.payloads: list[object] = []
        self.arrived = trio.Event()

    async def deliver(self, delivery: Delivery, deadline: float) -> None:
        if not self.opened.is_set():
            with trio.fail_at(deadline):  # past the deadline: TooSlowError, nothing taken
                await self.opened.wait()
        self.payloads.append(delivery.payload)
        self.arrived.set()
        self.arrived = trio.Event()
        delivery.settle()
        await trio.lowlevel.checkpoint()


REFUSALS = [MailboxFull("refuser", 1), MailboxClosed("mailbox of refuser is closed")]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: type(r).__name__)
async def test_a_refusing_consumer_does_not_keep_the_message_from_others(
    clock, bus: Bus, refusal: Exception
) -> None:
    refusing, inbox = Refusing(refusal), Inbox()
    before = bus.statistics().refused
    await bus.bind(EX, "r.#", refusing)
    await inbox.bind(bus, EX, "r.#")
    for n in range(3):
        await bus.publish(EX, "r.k", Ping(n))
    await inbox.wait_for(3)
    assert inbox.payloads == [Ping(0), Ping(1), Ping(2)]
    assert refusing.tries == 3
    assert bus.statistics().refused == before + 3
    # the bus goes on working: a call still gets its answer
    await Inbox(answer=lambda p: "still here").bind(bus, EX, "r2.k")
    assert await bus.call(EX, "r2.k", {}) == "still here"


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: type(r).__name__)
async def test_a_call_every_consumer_refused_fails_at_once_with_503(
    clock, bus: Bus, refusal: Exception
) -> None:
    await bus.bind(EX, "refused.call", Refusing(refusal))
    with trio.fail_after(2), pytest.raises(RemoteError) as caught:  # well before the 5 s deadline
        await bus.call(EX, "refused.call", Ping(1))
    assert caught.value.name == type(refusal).__name__
    assert caught.value.status == 503
    assert caught.value.context == {"exchange": EX, "routingKey": "refused.call"}


async def test_a_full_consumer_holds_up_only_its_own_deliveries(clock, bus: Bus) -> None:
    gate, inbox = Gate(), Inbox()
    await bus.bind(EX, "slow.k", gate)
    await inbox.bind(bus, EX, "fast.k")
    async with trio.open_nursery() as nursery:
        # on the in-memory bus the publisher itself waits (backpressure), so publish aside
        async def publish_slow() -> None:
            for n in range(5):
                await bus.publish(EX, "slow.k", Ping(n))

        nursery.start_soon(publish_slow)
        await bus.publish(EX, "fast.k", Ping(99))
        await inbox.wait_for(1)
        assert gate.payloads == []
        gate.opened.set()
        with trio.fail_after(5):
            while len(gate.payloads) < 5:
                await gate.arrived.wait()
    assert gate.payloads == [Ping(n) for n in range(5)]
