"""Closing a client is clean whatever arrives while it closes: late answers are dropped."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio_asyncio  # type: ignore[import-untyped, unused-ignore]
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped, unused-ignore]
from pysnmp.proto import api  # type: ignore[import-untyped, unused-ignore]

from protocols.snmp import CommunityAuth, SnmpClient, SnmpTarget

from ._peers import HOST, SilentPeer

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
_V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


def _answer(request: bytes) -> bytes:
    """A well-formed v2c response to ``request`` (same request-id, its varbinds echoed)."""
    message, _ = decoder.decode(request, asn1Spec=_V2C.Message())
    return bytes(encoder.encode(_V2C.apiMessage.get_response(message)))


@pytest.mark.parametrize("loop", ["own loop", "caller's loop"])
async def test_closing_is_clean_while_late_answers_keep_arriving(loop: str) -> None:
    outer = trio_asyncio.open_loop() if loop == "caller's loop" else contextlib.nullcontext()
    with SilentPeer() as agent, trio.fail_after(30):
        target = SnmpTarget(HOST, CommunityAuth("public"), port=agent.port)
        async with outer:
            for _ in range(5):
                async with SnmpClient(timeout=5.0, retries=0) as snmp:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(snmp.get, target, SYS_DESCR)
                        request, client = await agent.receive()
                        nursery.cancel_scope.cancel()  # given up: its answers all come late
                    for _ in range(30):
                        agent.send(_answer(request), client)
                        await trio.lowlevel.checkpoint()  # let pysnmp read some before closing
                for _ in range(30):  # and some more arrive after it closed
                    agent.send(_answer(request), client)
                    await trio.lowlevel.checkpoint()
