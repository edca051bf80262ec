"""The facade against OpenIPMI's ipmi_sim: sensors with thresholds, the SEL, power, device id."""

from __future__ import annotations

from protocols.ipmi import (
    BmcTarget,
    IpmiClient,
    PowerAction,
    PowerState,
    SensorStatus,
    Thresholds,
)

from ._peers import SENSOR_VALUES, THRESHOLDS, ipmitool


async def test_sensors_with_readings_states_and_thresholds(
    ipmi: IpmiClient, ipmi_sim: BmcTarget
) -> None:
    sensors = {s.name: s for s in await ipmi.get_sensors(ipmi_sim)}
    assert set(sensors) == {name for name, _, _ in SENSOR_VALUES.values()}
    board, cpu = sensors["MB Temp"], sensors["CPU Temp"]
    assert (board.number, board.value, board.status, board.states) == (1, 48.0, SensorStatus.OK, ())
    assert board.units == "°C" and board.sensor_type == "Temperature"
    assert cpu.value == 85.0
    assert cpu.status is SensorStatus.NON_CRITICAL
    assert cpu.states == ("upper non-critical threshold",)
    assert board.thresholds == cpu.thresholds == Thresholds(*THRESHOLDS)


async def test_sensor_status_agrees_with_ipmitool(ipmi: IpmiClient, ipmi_sim: BmcTarget) -> None:
    listing = await ipmitool(ipmi_sim.port, "sdr", "list")
    statuses = {
        line.split("|")[0].strip(): line.split("|")[2].strip() for line in listing.splitlines()
    }
    for sensor in await ipmi.get_sensors(ipmi_sim):
        assert statuses[sensor.name] == sensor.status.value


async def test_sel_entries_decoded(ipmi: IpmiClient, ipmi_sim: BmcTarget) -> None:
    entries = await ipmi.get_sel(ipmi_sim)
    assert [e.record_id for e in entries] == [1, 2, 3]
    first, supply, last = entries
    assert (first.sensor_type, first.sensor_number, first.event_type) == (0x01, 2, 0x01)
    assert first.asserted and not last.asserted
    assert first.event_data == bytes([0x59, 0x5B, 0x5A])
    assert first.sensor_name == "CPU Temp" and first.sensor_type_name == "Temperature"
    assert first.severity == "critical" and last.severity == "information"
    assert supply.sensor_type_name == "Power Supply" and supply.description == "Failure"
    assert all(len(e.raw) == 16 and e.generator_id == 0x20 for e in entries)


async def test_sel_since_and_clear(ipmi: IpmiClient, ipmi_sim: BmcTarget) -> None:
    since_first = await ipmi.get_sel_since(ipmi_sim, 1)
    assert [e.record_id for e in since_first.entries] == [2, 3]
    assert not since_first.reset and since_first.last_record_id == 3
    nothing_new = await ipmi.get_sel_since(ipmi_sim, 3)
    assert nothing_new.entries == () and nothing_new.last_record_id == 3
    await ipmi.clear_sel(ipmi_sim)
    assert await ipmi.get_sel(ipmi_sim) == ()
    cleared = await ipmi.get_sel_since(ipmi_sim, 3)
    assert cleared.reset and cleared.entries == () and cleared.last_record_id is None


async def test_power_and_chassis_agree_with_ipmitool(ipmi: IpmiClient, ipmi_sim: BmcTarget) -> None:
    assert await ipmi.get_power(ipmi_sim) == PowerState(on=False)
    await ipmi.set_power(ipmi_sim, PowerAction.ON)
    assert "Chassis Power is on" in await ipmitool(ipmi_sim.port, "power", "status")
    status = await ipmi.get_chassis_status(ipmi_sim)
    assert status.power_on and not status.power_fault
    await ipmitool(ipmi_sim.port, "power", "off")
    assert await ipmi.get_power(ipmi_sim) == PowerState(on=False)


async def test_device_id(ipmi: IpmiClient, ipmi_sim: BmcTarget) -> None:
    device = await ipmi.get_device_id(ipmi_sim)
    info = await ipmitool(ipmi_sim.port, "mc", "info")
    assert device.firmware_version == "9.08" and "Firmware Revision         : 9.08" in info
    assert device.manufacturer_id == 0x1291 and device.product_id == 0x0F02
    assert device.ipmi_version == "2.0" and device.device_revision == 3
