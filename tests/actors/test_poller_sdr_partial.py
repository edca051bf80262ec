"""One sensor that cannot be decoded does not cost the SDR poller the others: it is reported
``NOT_AVAILABLE`` with its ``error``, against a real BMC (ipmi_sim)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from actors.pollers.definitions import PollerDefinition
from actors.pollers.poller import PollerActor
from protocols.ipmi import _pyghmi

from ._ipmi_sim import polling_ipmi_sim


async def test_an_undecodable_sensor_is_skipped_and_the_others_reported(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ipmi_sim's sensor 2 (CPU Temp) comes back without a name (an SDR with no ID
    string): the round still succeeds and reports MB Temp."""
    read_sensors = _pyghmi.read_sensors

    def one_nameless(command: Any) -> Any:
        rows = read_sensors(command)
        return [
            (number, {**reading, "name": None} if number == 2 else reading, formula, raw)
            for number, reading, formula, raw in rows
        ]

    monkeypatch.setattr(_pyghmi, "read_sensors", one_nameless)
    async with polling_ipmi_sim(tmp_path, "sdr") as sim:
        sdr = PollerDefinition(
            id="sdr", type="ipmi", command="sdr", nodeId="node-3", host="127.0.0.1",
            credentialsRef="sim", port=sim.port, interval=3600.0,
        )  # fmt: skip
        await sim.rt.spawn(PollerActor, sdr, sim.tools, key="poller:sdr")
        (delivery,) = await sim.results.wait_for(1, timeout=30)
    result = delivery.payload
    assert result.error is None
    sensors = {sensor["number"]: sensor for sensor in result.result}
    assert sensors[1]["name"] == "MB Temp" and sensors[1]["error"] is None
    assert (
        sensors[2]["name"] == "sensor 2" and sensors[2]["status"] == "ns"
    )  # not available, as ipmitool says
    assert "has no name" in sensors[2]["error"]
