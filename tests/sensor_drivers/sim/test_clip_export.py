"""A virtual recording written to a clip: every delivered sample kept, truth beside it, clocks aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capture_app.core.signals import signals_from_clip
from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.sample import LinkState
from sensor_drivers.sim import GroundTruth, VirtualPatient, from_source_options
from sensor_drivers.sim.clip_export import truth_path_for, write_virtual_clip
from sensor_drivers.sites import KIT_SITES, Site


@pytest.fixture(scope="module")
def recording():
    options = {"walkway": "4", "still_start": "1", "still_end": "1", "seed": "5", "disconnect": "thigh_r:2:0.5"}
    return VirtualPatient(from_source_options("healthy", options)).generate()


@pytest.mark.parametrize("transport", ["serial", "ble"])
def test_clip_holds_every_delivered_sample_and_the_truth(tmp_path: Path, recording, transport: str) -> None:
    path = tmp_path / "walk.stclip"
    truth_path = write_virtual_clip(recording, path, transport=transport, seed=1)
    assert truth_path == truth_path_for(path) == tmp_path / "walk.truth.npz"
    clip = read_clip(path)
    assert clip.metadata["patient"]["pseudonym"].startswith("VIRTUAL-HEALTHY")
    assert clip.metadata["protocol"]["walkway_length_m"] == 4.0
    for site in KIT_SITES:
        track = recording.tracks[site]
        stream = clip.at_site(site)
        assert stream is not None
        assert stream.n_samples == int(track.delivered.sum())
        np.testing.assert_array_equal(stream.seq, track.seq[track.delivered])
        np.testing.assert_allclose(stream.acc_m_s2, track.acc_m_s2[track.delivered], rtol=1e-6, atol=1e-5)
        # Arrival is never before the sample was taken, and within the transport's worst delays.
        delay_s = stream.host_time_s - track.true_time_s[track.delivered]
        assert delay_s.min() >= 0.0
        assert delay_s.max() < 0.5
    states = [(e.site, e.state) for e in clip.link_events]
    assert states == [(Site.THIGH_R, LinkState.DISCONNECTED), (Site.THIGH_R, LinkState.CONNECTED)]
    truth = GroundTruth.load(truth_path)
    assert truth.steady_speed_m_s == pytest.approx(recording.truth.steady_speed_m_s)


def test_grid_clock_equals_true_time(tmp_path: Path, recording) -> None:
    """Clip clock zero is simulation time zero: the mapped pelvis signal lines up with its true samples."""
    path = tmp_path / "walk.stclip"
    write_virtual_clip(recording, path, transport="serial", seed=2)
    kit = signals_from_clip(read_clip(path), rate_hz=200.0)
    pelvis = kit.sites[Site.PELVIS]
    track = recording.tracks[Site.PELVIS]
    truth_acc = np.stack([np.interp(kit.time_s, track.true_time_s, track.acc_m_s2[:, k]) for k in range(3)], axis=1)
    # Compare the vertical channel where the walker moves: the clock maps to within the latency floor (~2 ms).
    moving = pelvis.valid & (kit.time_s > 1.5) & (kit.time_s < kit.time_s[-1] - 1.5)
    best_lag_ms = min(
        range(-10, 11),
        key=lambda lag: np.nanmean(np.abs(np.roll(truth_acc[:, 2], lag)[moving] - pelvis.acc_m_s2[moving, 2])),
    ) * 1000.0 / kit.rate_hz
    assert abs(best_lag_ms) <= 5.0
