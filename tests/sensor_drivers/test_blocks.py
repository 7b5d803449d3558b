"""Blocks of samples: exact round trips to the single objects, grouping, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.blocks import (
    ACC_COLS,
    GYR_COLS,
    MAG_COLS,
    QUAT_COLS,
    ROW_WIDTH,
    ReadingBlock,
    SampleBlock,
    expand_blocks,
    group_samples,
    sample_row,
)
from sensor_drivers.sample import DeviceReading, DeviceStatus, ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import Site
from tests.sensor_drivers.protocols.strategies import MAX_EXAMPLES, readings
from tests.sensor_drivers.recording.generated_driver import GeneratedKitDriver

STATUS = DeviceStatus(battery_pct=80.0, acc_clip_count=0, gyr_clip_count=1)


@st.composite
def reading_runs(draw: st.DrawFn) -> list[DeviceReading]:
    """Readings that fit one block: the same channels, clock, counter and status."""
    with_mag, with_quat, with_time, with_seq = (draw(st.booleans()) for _ in range(4))
    status = draw(st.sampled_from([None, STATUS]))
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        r = draw(readings(with_mag=with_mag, with_quat=with_quat))
        out.append(
            DeviceReading(
                r.acc_m_s2,
                r.gyr_rad_s,
                device_time_s=1000.0 + i / 200.0 if with_time else None,
                seq=40 + i if with_seq else None,
                mag_ut=r.mag_ut,
                quat_wxyz=r.quat_wxyz,
                status=status,
            )
        )
    return out


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(reading_runs())
def test_a_block_expands_into_the_readings_and_samples_it_was_made_of(run: list[DeviceReading]) -> None:
    block = ReadingBlock.from_readings(run)
    assert len(block) == len(run)
    assert block.readings() == run
    driver_seq = None if run[0].seq is not None else tuple(range(len(run)))  # no device counter: the driver's
    stamped = SampleBlock.stamp(block, "s1", Site.SHANK_L, 12.5, seq=driver_seq)
    expected = [
        ImuSample.from_reading(r if r.seq is not None else _with_seq(r, i), "s1", Site.SHANK_L, 12.5)
        for i, r in enumerate(run)
    ]
    assert stamped.samples() == expected
    assert SampleBlock.from_samples(expected) == stamped
    values = stamped.values()
    assert values.shape == (len(run), ROW_WIDTH)
    np.testing.assert_array_equal(values[:, ACC_COLS], [r.acc_m_s2 for r in run])
    np.testing.assert_array_equal(values[:, GYR_COLS], [r.gyr_rad_s for r in run])
    assert np.isnan(values[:, MAG_COLS]).all() == (run[0].mag_ut is None)
    assert np.isnan(values[:, QUAT_COLS]).all() == (run[0].quat_wxyz is None)


def _with_seq(r: DeviceReading, seq: int) -> DeviceReading:
    return DeviceReading(r.acc_m_s2, r.gyr_rad_s, r.device_time_s, seq, r.mag_ut, r.quat_wxyz, r.status)


def _sample(sensor_id: str, host_time_s: float, seq: int, mag: bool = False) -> ImuSample:
    site = Site(sensor_id)
    return ImuSample(
        sensor_id,
        site,
        seq / 200.0,
        host_time_s,
        seq,
        (0.0, 0.0, 9.8),
        (0.1, 0.2, 0.3),
        (1.0, 2.0, 3.0) if mag else None,
    )


def test_runs_of_samples_are_grouped_by_sensor_arrival_and_layout_and_expand_back() -> None:
    event = LinkEvent("pelvis", Site.PELVIS, LinkState.GAP, 1.0, n_missing=2)
    items = [
        _sample("pelvis", 1.0, 0),
        _sample("pelvis", 1.0, 1),
        _sample("thigh_l", 1.0, 0),  # another sensor
        _sample("pelvis", 1.0, 2),
        event,
        _sample("pelvis", 1.0, 5),
        _sample("pelvis", 1.04, 6),  # another read
        _sample("pelvis", 1.04, 7, mag=True),  # another layout
    ]
    grouped = group_samples(items)
    assert [len(g) if isinstance(g, SampleBlock) else g for g in grouped] == [2, 1, 1, event, 1, 1, 1]
    assert expand_blocks(grouped) == items
    assert group_samples(grouped) == grouped  # blocks pass as they are


def test_sample_row_is_the_row_layout() -> None:
    sample = _sample("pelvis", 1.0, 0, mag=True)
    row = sample_row(sample)
    assert row[ACC_COLS] == sample.acc_m_s2
    assert row[GYR_COLS] == sample.gyr_rad_s
    assert row[MAG_COLS] == sample.mag_ut
    assert all(math.isnan(x) for x in row[QUAT_COLS])


def test_blocks_that_do_not_fit_together_are_clear_errors() -> None:
    row = (0.0,) * ROW_WIDTH
    with pytest.raises(ValueError, match="2 device times for 1 rows"):
        ReadingBlock((row,), (1.0, 2.0), (1,), False, False)
    with pytest.raises(ValueError, match="3 sequence numbers for 1 rows"):
        SampleBlock("pelvis", Site.PELVIS, 1.0, None, (1, 2, 3), (row,), False, False)
    with pytest.raises(ValueError, match="sample 1 differs from the first"):
        SampleBlock.from_samples([_sample("pelvis", 1.0, 0), _sample("pelvis", 1.0, 1, mag=True)])
    with pytest.raises(ValueError, match="reading 1 differs from the first"):
        ReadingBlock.from_readings(
            [DeviceReading((0.0,) * 3, (0.0,) * 3, seq=1), DeviceReading((0.0,) * 3, (0.0,) * 3, seq=None)]
        )
    with pytest.raises(ValueError, match="no samples"):
        SampleBlock.from_samples([])


def test_a_block_is_immutable() -> None:
    block = SampleBlock.from_samples([_sample("pelvis", 1.0, 0)])
    with pytest.raises(AttributeError):
        block.host_time_s = 2.0  # type: ignore[misc]
    assert isinstance(block.rows, tuple)
    assert isinstance(block.rows[0], tuple)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_a_driver_without_batches_streams_one_block_per_sample() -> None:
    driver = GeneratedKitDriver(sites=[Site.PELVIS], duration_s=0.1)
    async with driver:
        items = [item async for item in driver.stream_blocks()]
    blocks = [i for i in items if isinstance(i, SampleBlock)]
    assert blocks
    assert all(len(b) == 1 for b in blocks)
    assert [s.seq for b in blocks for s in b.samples()] == list(range(len(blocks)))
