"""Stamper: identity, host time and sequence gaps."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from sensor_drivers.blocks import ReadingBlock, expand_blocks
from sensor_drivers.drivers.stamping import Stamper
from sensor_drivers.sample import DeviceReading, DeviceStatus, ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import Site


def reading(seq: int | None, **kwargs: object) -> DeviceReading:
    return DeviceReading(acc_m_s2=(1.0, 2.0, 3.0), gyr_rad_s=(0.1, 0.2, 0.3), seq=seq, **kwargs)  # type: ignore[arg-type]


def test_samples_equal_from_reading_field_for_field() -> None:
    full = DeviceReading(
        acc_m_s2=(1.0, -2.0, 9.8),
        gyr_rad_s=(0.1, 0.2, -0.3),
        device_time_s=12.5,
        seq=7,
        mag_ut=(20.0, 0.0, -44.0),
        quat_wxyz=(1.0, 0.0, 0.0, 0.0),
        status=DeviceStatus(battery_pct=80.0, rssi_dbm=-60.0, acc_clip_count=1, gyr_clip_count=2),
    )
    [sample] = Stamper("s1", Site.THIGH_R).stamp([full], 100.25)
    assert sample == ImuSample.from_reading(full, "s1", Site.THIGH_R, 100.25)


def test_counter_for_devices_without_sequence_numbers() -> None:
    stamper = Stamper("s", Site.PELVIS)
    items = stamper.stamp([reading(None)] * 3, 1.0) + stamper.stamp([reading(None)], 2.0)
    assert [i.seq for i in items] == [0, 1, 2, 3]
    assert all(isinstance(i, ImuSample) for i in items)
    assert stamper.n_samples == 4


def test_forward_jump_is_a_gap_before_the_sample() -> None:
    stamper = Stamper("s", Site.PELVIS)
    items = stamper.stamp([reading(1), reading(2), reading(6)], 5.0)
    assert isinstance(items[2], LinkEvent)
    assert (items[2].state, items[2].n_missing, items[2].host_time_s) == (LinkState.GAP, 3, 5.0)
    assert items[3].seq == 6
    assert (stamper.n_gaps, stamper.n_missing, stamper.n_samples) == (1, 3, 3)


def test_wrap_around_is_not_a_gap_but_a_jump_across_it_is() -> None:
    stamper = Stamper("s", Site.PELVIS, seq_modulus=256)
    items = stamper.stamp([reading(254), reading(255), reading(0), reading(1), reading(4)], 1.0)
    gaps = [i for i in items if isinstance(i, LinkEvent)]
    assert [(g.n_missing, g.reason) for g in gaps] == [(2, "sequence jump from 1 to 4")]
    items = stamper.stamp([reading(253), reading(2)], 2.0)  # 253 → 4 is back; 253 → 2 is forward across the wrap
    gaps = [i for i in items if isinstance(i, LinkEvent)]
    assert [g.n_missing for g in gaps] == [None, 4]
    assert "went back from 4 to 253" in gaps[0].reason


def test_repeat_is_passed_on_and_counted_restart_forgets() -> None:
    stamper = Stamper("s", Site.PELVIS)
    items = stamper.stamp([reading(5), reading(5)], 1.0)
    assert [type(i) for i in items] == [ImuSample, ImuSample]
    assert stamper.n_seq_repeats == 1
    stamper.restart()
    assert all(isinstance(i, ImuSample) for i in stamper.stamp([reading(900)], 2.0))


@given(st.lists(st.integers(min_value=0, max_value=2**16 - 1), max_size=60))
def test_every_sequence_step_is_accounted_for(seqs: list[int]) -> None:
    modulus = 2**16
    stamper = Stamper("s", Site.PELVIS, seq_modulus=modulus)
    got = [
        ("gap", i.n_missing) if isinstance(i, LinkEvent) else ("sample", i.seq)
        for i in stamper.stamp([reading(s) for s in seqs], 0.0)
    ]
    expected: list[tuple[str, int | None]] = []
    for index, seq in enumerate(seqs):
        if index:
            step = (seq - seqs[index - 1]) % modulus
            if step > modulus // 2:
                expected.append(("gap", None))
            elif step > 1:
                expected.append(("gap", step - 1))
        expected.append(("sample", seq))
    assert got == expected


@given(
    st.lists(
        st.one_of(
            st.lists(st.integers(0, 300), min_size=1, max_size=8),  # a read's sequence numbers: jumps, repeats, back
            st.builds(lambda n: [None] * n, st.integers(1, 5)),  # a device without a counter
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([None, 256]),
)
def test_blocks_are_stamped_as_their_readings_would_be(reads: list[list[int | None]], modulus: int | None) -> None:
    one_by_one = Stamper("s", Site.SHANK_R, seq_modulus=modulus)
    by_block = Stamper("s", Site.SHANK_R, seq_modulus=modulus)
    for k, seqs in enumerate(reads):
        host_s = 10.0 + 0.04 * k
        readings = [reading(s) for s in seqs]
        expected = one_by_one.stamp(readings, host_s)
        got = by_block.stamp_blocks([ReadingBlock.from_readings(readings)], host_s)
        assert expand_blocks(got) == expected
        # Blocks are split exactly where a gap event goes between them.
        assert all(isinstance(a, LinkEvent) or isinstance(b, LinkEvent) for a, b in itertools.pairwise(got))
    counters = ("n_samples", "n_gaps", "n_missing", "n_seq_repeats")
    assert [getattr(by_block, c) for c in counters] == [getattr(one_by_one, c) for c in counters]
