"""Recording a driver's stream: every way a recording can end leaves a finished clip with everything received."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from sensor_drivers.recording.clipfile import read_clip
from sensor_drivers.recording.recorder import record_driver
from sensor_drivers.recording.stats import inspect_clip
from sensor_drivers.sample import LinkState, StreamItem
from tests.sensor_drivers.recording.generated_driver import GeneratedKitDriver

REPO_ROOT = Path(__file__).resolve().parents[3]


def _assert_contiguous(clip) -> None:
    for stream in clip.sensors.values():
        np.testing.assert_array_equal(stream.seq, np.arange(stream.n_samples))


@pytest.mark.asyncio
async def test_records_for_the_requested_duration(tmp_path):
    driver = GeneratedKitDriver(duration_s=None)
    result = await record_driver(
        driver, tmp_path / "d.stclip", duration_s=0.6, metadata={"patient": {"pseudonym": "P-3"}}
    )
    assert result.stopped_by == "duration"
    assert driver.closed
    clip = read_clip(result.path)
    assert clip.metadata["recording"]["stopped_by"] == "duration"
    assert clip.metadata["patient"]["pseudonym"] == "P-3"
    assert len(clip.sensors) == 5
    for sid, stream in clip.sensors.items():
        assert stream.n_samples == result.n_samples[sid]
        assert 80 <= stream.n_samples <= 160  # 0.6 s at 200 Hz, with scheduling slack on a busy machine
        assert stream.info["firmware"] == "gen-1.0"  # device info known after connecting
        assert stream.nominal_rate_hz == 200.0
    _assert_contiguous(clip)


@pytest.mark.asyncio
async def test_a_finite_source_ends_the_recording(tmp_path):
    result = await record_driver(GeneratedKitDriver(duration_s=0.3), tmp_path / "e.stclip")
    assert result.stopped_by == "stream ended"
    clip = read_clip(result.path)
    assert all(s.n_samples == 60 for s in clip.sensors.values())


@pytest.mark.asyncio
async def test_stop_event_and_a_sensor_lost_mid_walk(tmp_path):
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.8, stop.set)
    driver = GeneratedKitDriver(duration_s=None, stop_sensor_after_s=("GEN-3", 0.3))
    result = await record_driver(driver, tmp_path / "s.stclip", stop=stop)
    assert result.stopped_by == "stopped"
    clip = read_clip(result.path)
    assert [e.state for e in clip.link_events] == [LinkState.DISCONNECTED]
    lost = next(s for s in inspect_clip(clip).sensors if s.sensor_id == "GEN-3")
    assert lost.n_disconnects == 1
    assert lost.gaps[-1].edge == "end"
    assert clip.sensors["GEN-3"].n_samples == 60


class _FailingDriver(GeneratedKitDriver):
    """Its stream breaks with an exception after ``n_items`` items (a driver bug)."""

    def __init__(self, n_items: int) -> None:
        super().__init__(duration_s=None)
        self.n_items = n_items

    async def stream(self) -> AsyncIterator[StreamItem]:
        n = 0
        async for item in super().stream():
            yield item
            n += 1
            if n == self.n_items:
                raise RuntimeError("decoder crashed")


@pytest.mark.asyncio
async def test_a_failing_driver_still_leaves_a_finished_clip(tmp_path):
    with pytest.raises(RuntimeError, match="decoder crashed"):
        await record_driver(_FailingDriver(503), tmp_path / "f.stclip", duration_s=5)
    clip = read_clip(tmp_path / "f.stclip")
    assert sum(s.n_samples for s in clip.sensors.values()) == 503
    assert clip.metadata["recording"]["stopped_by"].startswith("error: RuntimeError")


@pytest.mark.asyncio
async def test_cancelling_the_recording_finishes_the_clip(tmp_path):
    task = asyncio.create_task(record_driver(GeneratedKitDriver(duration_s=None), tmp_path / "c.stclip"))
    await asyncio.sleep(0.4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    clip = read_clip(tmp_path / "c.stclip")
    assert clip.metadata["recording"]["stopped_by"] == "cancelled"
    assert all(s.n_samples > 20 for s in clip.sensors.values())
    _assert_contiguous(clip)


_RECORD_UNTIL_CTRL_C = """
import json, sys
from sensor_drivers.recording.recorder import record_until_interrupted
from tests.sensor_drivers.recording.generated_driver import GeneratedKitDriver
print("recording", flush=True)
result = record_until_interrupted(GeneratedKitDriver(duration_s=None), sys.argv[1])
print(json.dumps({"stopped_by": result.stopped_by, "n_samples": result.n_samples}), flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_finishes_the_clip_with_everything_recorded(tmp_path):
    path = tmp_path / "ctrl-c.stclip"
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECORD_UNTIL_CTRL_C, str(path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "recording"
        deadline = time.monotonic() + 20
        while (not path.exists() or path.stat().st_size < 20_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["stopped_by"] == "stopped"
    clip = read_clip(path)
    assert {k: s.n_samples for k, s in clip.sensors.items()} == result["n_samples"]
    assert min(result["n_samples"].values()) > 50
    _assert_contiguous(clip)
