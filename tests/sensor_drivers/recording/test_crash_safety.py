"""Crash safety and flat memory, measured on real processes: a writer killed with SIGKILL, and long recordings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.recording import peak_rss_of_recording
from sensor_drivers.recording.clipfile import UnfinishedClipError, read_clip, recover

REPO_ROOT = Path(__file__).resolve().parents[3]

#: A real-time 5 × 200 Hz writer that prints, after each batch, the host time and count of the last sample it added.
_WRITER = """
import sys, time
from sensor_drivers.recording.clipfile import ClipWriter
from sensor_drivers.sample import ImuSample
from sensor_drivers.sites import KIT_SITES
w = ClipWriter(sys.argv[1], metadata={"patient": {"pseudonym": "CRASH"}})
start = time.monotonic()
k = 0
while True:
    now = time.monotonic()
    while k < int((now - start) * 200):
        for i, site in enumerate(KIT_SITES):
            w.add(ImuSample(f"S{i}", site, k / 200, now, k, (0.0, 0.0, 9.81), (0.01, 0.0, 0.0)))
        k += 1
    print(f"{now!r} {k}", flush=True)
    time.sleep(0.01)
"""


@pytest.mark.slow
def test_sigkill_mid_recording_loses_at_most_one_second(tmp_path):
    path = tmp_path / "crash.stclip"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        count = 0
        while count < 400 and time.monotonic() < deadline:  # ≥ 2 s recorded
            line = proc.stdout.readline()
            if not line:
                break
            count = int(line.split()[1])
        assert count >= 400, "writer did not start"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read().split("\n")
        proc.wait(timeout=10)
    last_line = [ln for ln in rest if ln.strip()][-1] if any(ln.strip() for ln in rest) else line
    last_added_host_s, last_added_k = float(last_line.split()[0]), int(last_line.split()[1])

    with pytest.raises(UnfinishedClipError):
        read_clip(path)
    report = recover(path)
    clip = read_clip(report.out_path)
    assert clip.recovered
    assert clip.metadata["patient"]["pseudonym"] == "CRASH"
    for stream in clip.sensors.values():
        # everything recovered is the exact prefix of what was added: no hole, no damage
        np.testing.assert_array_equal(stream.seq, np.arange(stream.n_samples))
        lost_s = last_added_host_s - stream.host_time_s[-1]
        assert lost_s <= 1.0, f"{stream.sensor_id}: lost {lost_s:.3f} s"
        assert last_added_k - stream.n_samples <= 200


@pytest.mark.slow
def test_resident_memory_stays_flat_while_streaming(tmp_path):
    """Peak RSS of a 4-minute 5 × 200 Hz recording is that of a 1-minute one (the 20-minute case is in
    ``stridetwin bench recording``)."""
    short = peak_rss_of_recording(1.0, tmp_path)
    long = peak_rss_of_recording(4.0, tmp_path)
    assert long["n_samples"] == 4 * short["n_samples"]
    assert long["file_mb"] > 3.9 * short["file_mb"]
    assert long["peak_rss_mb"] - short["peak_rss_mb"] < 4.0, (short, long)
