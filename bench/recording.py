"""Recording benchmark: writer cost per sample, peak resident memory of long recordings, clip read time.

Goal (issue 2): a 20-minute 5 × 200 Hz recording keeps resident memory flat, and the capture path stays within 2 % of
one core at 1000 samples/s (the writer's share is measured here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_SENSORS = 5
RATE_HZ = 200.0
#: Python to run in a fresh process: write MINUTES of synthetic 5 × 200 Hz samples, print peak RSS and figures.
_CHILD = """
import json, sys, time
from bench.memory import peak_rss_mb
from bench.recording import write_synthetic
t0 = time.perf_counter()
n = write_synthetic(sys.argv[1], float(sys.argv[2]))
wall = time.perf_counter() - t0
print(json.dumps({"n_samples": n, "wall_s": wall, "peak_rss_mb": peak_rss_mb()}))
"""


def _samples_at(k: int, host_time_s: float) -> list:
    from sensor_drivers.sample import ImuSample
    from sensor_drivers.sites import KIT_SITES

    t = k / RATE_HZ
    return [
        ImuSample(f"S{i}", site, t, host_time_s, k, (0.1 * i, 0.2, 9.81), (0.01, 0.02 * i, 0.03), (20.0, 0.0, -44.0))
        for i, site in enumerate(KIT_SITES[:N_SENSORS])
    ]


def write_synthetic(path: str | Path, minutes: float) -> int:
    """Stream ``minutes`` of a 5 × 200 Hz recording into a clip at ``path``, generating samples as it goes (so the
    generator itself holds nothing); returns the number of samples written."""
    from sensor_drivers.recording.clipfile import ClipWriter

    n_steps = int(minutes * 60 * RATE_HZ)
    with ClipWriter(path, metadata={"patient": {"pseudonym": "BENCH"}}) as writer:
        for k in range(n_steps):
            for sample in _samples_at(k, 1000.0 + k / RATE_HZ):
                writer.add(sample)
    return n_steps * N_SENSORS


def peak_rss_of_recording(minutes: float, directory: str | Path) -> dict[str, float]:
    """Peak RSS (MB) of a fresh process streaming ``minutes`` of recording to disk, with its sample count."""
    path = Path(directory) / f"rss-{minutes:g}min.stclip"
    path.unlink(missing_ok=True)
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(minutes)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["file_mb"] = path.stat().st_size / 1e6
    result["path"] = str(path)
    return result


def writer_cost_us_per_sample(seconds: float = 60.0) -> float:
    """CPU time of ``ClipWriter.add`` per sample (samples built beforehand, so only the writer is timed)."""
    from sensor_drivers.recording.clipfile import ClipWriter

    batch = [s for k in range(int(RATE_HZ)) for s in _samples_at(k, 1000.0 + k / RATE_HZ)]
    n_batches = int(seconds)
    with tempfile.TemporaryDirectory() as tmp, ClipWriter(Path(tmp) / "cost.stclip") as writer:
        add = writer.add
        t0 = time.process_time()
        for _ in range(n_batches):
            for sample in batch:
                add(sample)
        cpu = time.process_time() - t0
    return cpu / (n_batches * len(batch)) * 1e6


def run(quick: bool = False) -> dict:
    """Figures for ``stridetwin bench recording``."""
    from sensor_drivers.recording.clipfile import read_clip

    short_min, long_min = (1.0, 4.0) if quick else (2.0, 20.0)
    cost_us = writer_cost_us_per_sample(10.0 if quick else 60.0)
    with tempfile.TemporaryDirectory() as tmp:
        short = peak_rss_of_recording(short_min, tmp)
        long = peak_rss_of_recording(long_min, tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        clip = read_clip(long["path"])
        read_s, read_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        n_read = sum(s.n_samples for s in clip.sensors.values())
    return {
        "writer_us_per_sample": round(cost_us, 2),
        "writer_core_pct_at_1000_samples_s": round(cost_us * 1000 / 1e6 * 100, 3),
        f"peak_rss_mb_{short_min:g}min": round(short["peak_rss_mb"], 1),
        f"peak_rss_mb_{long_min:g}min": round(long["peak_rss_mb"], 1),
        "peak_rss_growth_mb": round(long["peak_rss_mb"] - short["peak_rss_mb"], 1),
        f"write_wall_s_{long_min:g}min": round(long["wall_s"], 2),
        f"clip_mb_{long_min:g}min": round(long["file_mb"], 1),
        "bytes_per_sample": round(long["file_mb"] * 1e6 / long["n_samples"], 1),
        f"read_s_{long_min:g}min": round(read_s, 3),
        f"read_cpu_s_{long_min:g}min": round(read_cpu_s, 3),
        "samples_read": n_read,
    }
