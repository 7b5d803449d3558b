"""The ``sim:`` source: the virtual patient through real transports, nothing lost that was delivered."""

from __future__ import annotations

import pytest

from sensor_drivers.blocks import SampleBlock
from sensor_drivers.drivers.registry import build_driver
from sensor_drivers.errors import SourceError
from sensor_drivers.sample import ImuSample, LinkEvent, LinkState
from sensor_drivers.sim.source import SimDriver
from sensor_drivers.sites import KIT_SITES

SHORT = "walkway=2&still_start=0.5&still_end=0.5&loss=0"


async def _run(source: str, in_blocks: bool = False) -> tuple[SimDriver, dict[str, list[ImuSample]], list[LinkEvent]]:
    driver = build_driver(source)
    assert isinstance(driver, SimDriver)
    samples: dict[str, list[ImuSample]] = {}
    events: list[LinkEvent] = []
    async with driver:
        async for item in driver.stream_blocks() if in_blocks else driver.stream():
            for single in item.samples() if isinstance(item, SampleBlock) else [item]:
                if isinstance(single, ImuSample):
                    samples.setdefault(single.site.value, []).append(single)
                else:
                    events.append(single)
    return driver, samples, events


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("options", "in_blocks"),
    [
        ("transport=serial&protocol=stridetwin", False),
        ("transport=serial&protocol=stridetwin", True),  # the block stream
        ("transport=serial&protocol=witmotion", False),
        ("transport=ble&protocol=dot", False),
    ],
)
async def test_every_delivered_sample_arrives_through_the_real_transport(options: str, in_blocks: bool) -> None:
    driver, samples, events = await _run(f"sim:healthy?{SHORT}&{options}", in_blocks)
    assert driver.recording is not None
    assert sorted(samples) == sorted(site.value for site in KIT_SITES)
    for site, track in driver.recording.tracks.items():
        got = samples[site.value]
        assert len(got) == int(track.delivered.sum()), site
        assert {s.sensor_id for s in got} == {track.sensor_id}
    assert [e.state for e in events] == [LinkState.CONNECTED] * 5
    metadata = driver.clip_metadata()
    assert metadata["simulation"]["truth_origin_host_s"] is not None
    assert metadata["protocol"]["walkway_length_m"] == 2.0


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_simulated_outage_is_a_real_unplug_marked_in_the_stream() -> None:
    driver, samples, events = await _run(f"sim:healthy?{SHORT}&disconnect=shank_r:1.5:1.0")
    states = [(e.site.value, e.state) for e in events if e.state is not LinkState.CONNECTED or "re" in e.reason]
    assert ("shank_r", LinkState.DISCONNECTED) in states
    assert driver.recording is not None
    track = driver.recording.tracks[next(s for s in KIT_SITES if s.value == "shank_r")]
    got_seq = {s.seq for s in samples["shank_r"]}
    before = track.seq[track.delivered & (track.true_time_s < 1.5)]
    inside = track.seq[(track.true_time_s > 1.55) & (track.true_time_s < 2.45)]
    after = track.seq[track.delivered & (track.true_time_s > 3.0)]
    # Everything sent before the unplug arrived, nothing inside it did, and the driver reopened the port and
    # received the rest (bytes sent while it was still backing off before reopening are lost, as on real USB).
    assert set(before.tolist()) <= got_seq
    assert not set(inside.tolist()) & got_seq
    assert set(after.tolist()) <= got_seq


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("sim:athletic", "unknown virtual patient profile 'athletic'"),
        ("sim:healthy?transport=usb", "transport"),
        ("sim:healthy?transport=ble&protocol=stridetwin", "no ble protocol of that name; accepted: dot, witmotion-ble"),
        ("sim:healthy?pace=0", "pace"),
        ("sim:healthy?colour=red", "unknown sim option"),
    ],
)
def test_bad_sim_sources_give_clear_errors(source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        build_driver(source)
