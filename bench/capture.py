"""The capture path of the bedside kit, end to end (`stridetwin bench capture`): issue 2's performance goals.

1. **Virtual patient over pseudo-terminals**: five sensors × 200 Hz of a walking virtual patient (no loss configured)
   are served over real ptys speaking the StrideTwin serial protocol by a child process, and read here by the real
   :class:`~sensor_drivers.drivers.serial.SerialDriver` s in a kit. Loss = samples the devices sent minus samples
   received (goal: zero).
2. **CPU of decoding + timestamping + resampling** (goal ≤ 2 % of one core): this process's CPU time over the wall
   time of the stream, for the transport alone (reader thread, decode, stamp: the baseline) and for the full path
   (the same plus clock mapping and resampling onto a 100 Hz grid every 50 ms), measured in the same run; and the
   goal's own parts in the full run: the serial reader thread's CPU clock (port reads, decoding, stamping) plus the
   consumer's thread time inside the clock mapping and resampling. The rest of the process total is asyncio's
   hand-over between threads, the kit's merge and the consumer loop. The consumer reads the kit's block stream
   (``stream_blocks()``: one :class:`~sensor_drivers.blocks.SampleBlock` per port read) as the app's timing path
   should; a consumer of single samples (``stream()``) pays for expanding the blocks on top
   (``python -m bench.serial_transport`` measures that path).
3. **Clock sync** (goal: 100 ppm drift recovered within 1 ms over 5 minutes):
   :func:`bench.capture_timing.clock_accuracy`.
4. **Memory while recording** (goal: flat): peak RSS of a fresh process streaming 2 and 20 minutes of 5 × 200 Hz to a
   clip, :func:`bench.recording.peak_rss_of_recording`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.capture_timing import clock_accuracy
from bench.recording import peak_rss_of_recording
from sensor_drivers.blocks import SampleBlock
from sensor_drivers.drivers.kit import KitDriver
from sensor_drivers.drivers.pty_server import PtyServer
from sensor_drivers.drivers.registry import default_registry
from sensor_drivers.drivers.serial import reader_thread
from sensor_drivers.protocols.stridetwin_frame import DeviceInfo, StrideTwinEncoder
from sensor_drivers.sites import KIT_SITES

RATE_HZ = 200.0
GRID_RATE_HZ = 100.0
EMIT_PERIOD_S = 0.05
WALK_SPEED_M_S = 1.0


def _patient_options(duration_s: float) -> dict[str, str]:
    """A healthy walk lasting about ``duration_s`` (still 2 s at each end), no packet loss."""
    walkway_m = max(2.0, (duration_s - 6.0) * WALK_SPEED_M_S)
    return {
        "speed": f"{WALK_SPEED_M_S}",
        "walkway": f"{walkway_m:.1f}",
        "still_start": "2",
        "still_end": "2",
        "loss": "0",
        "seed": "11",
    }


def _serve(links: list[str], duration_s: float, conn: Any) -> None:
    """Child process: the virtual patient's five sensors on ptys; streams on 'go', reports what it sent."""
    from sensor_drivers.sim import VirtualPatient, from_source_options

    recording = VirtualPatient(from_source_options("healthy", _patient_options(duration_s))).generate()
    servers = []
    for index, (link, site) in enumerate(zip(links, KIT_SITES, strict=True)):
        info = DeviceInfo("virtual IMU", "bench", index, RATE_HZ)
        track = recording.tracks[site]
        servers.append(PtyServer(track.readings(), StrideTwinEncoder(info), link_path=link, origin_s=0.0).open())
    conn.send("ready")
    t0_wall = conn.recv()
    for server in servers:
        server.start(t0_wall=t0_wall)
    for server in servers:
        server.wait_finished()
    conn.send(
        {
            "n_sent": sum(s.n_readings_sent for s in servers),
            "n_overflowed_bytes": sum(s.n_bytes_overflowed for s in servers),
        }
    )
    conn.recv()
    for server in servers:
        server.close()


async def _consume(links: list[str], conn: Any, with_timing: bool) -> dict[str, Any]:
    from sensor_drivers.timing.assembler import GridAssembler

    drivers = [
        default_registry.build_one(f"serial:{link}?protocol=stridetwin&site={site.value}&id={site.value}")
        for link, site in zip(links, KIT_SITES, strict=True)
    ]
    kit = KitDriver(drivers)
    assembler = GridAssembler(rate_hz=GRID_RATE_HZ) if with_timing else None
    if assembler is not None:
        for site in KIT_SITES:
            assembler.add_sensor(site.value, RATE_HZ, has_mag=True)
    counts = {"samples": 0, "rows": 0}
    timing_cpu_s = [0.0]

    async def consume() -> None:
        next_emit_s = time.monotonic() + EMIT_PERIOD_S
        async for item in kit.stream_blocks():
            if type(item) is SampleBlock:
                counts["samples"] += len(item)
            if assembler is not None:
                t0 = time.thread_time()
                assembler.feed(item)
                now = time.monotonic()
                if now >= next_emit_s:
                    block = assembler.emit(now)
                    counts["rows"] += 0 if block is None else len(block.time_s)
                    next_emit_s = now + EMIT_PERIOD_S
                timing_cpu_s[0] += time.thread_time() - t0

    async with kit:
        reader = reader_thread()
        reader_clock = time.pthread_getcpuclockid(reader.ident) if reader is not None and reader.ident else None
        conn.send(time.monotonic() + 0.3)
        cpu0, wall0 = time.process_time(), time.monotonic()
        reader0 = time.clock_gettime(reader_clock) if reader_clock is not None else float("nan")
        consumer = asyncio.create_task(consume())
        report = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await asyncio.sleep(0.5)  # what is still in the ptys and the drivers' hands
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        reader_s = time.clock_gettime(reader_clock) - reader0 if reader_clock is not None else float("nan")
    conn.send("bye")
    stream_s = wall_s - 0.5 - 0.3  # the drain and the start delay carry no samples
    return {
        "n_received": counts["samples"],
        "n_sent": report["n_sent"],
        "grid_rows": counts["rows"],
        "cpu_pct_of_one_core": 100.0 * cpu_s / stream_s,
        "reader_thread_pct_of_one_core": 100.0 * reader_s / stream_s,
        "timing_pct_of_one_core": 100.0 * timing_cpu_s[0] / stream_s,
        "stream_s": stream_s,
    }


def pty_path(duration_s: float, with_timing: bool) -> dict[str, Any]:
    """One measured run of the virtual patient over ptys (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="stridetwin-bench-") as tmp:
        links = [str(Path(tmp) / f"tty-{site.value}") for site in KIT_SITES]
        parent, child = multiprocessing.get_context("spawn").Pipe()
        server = multiprocessing.get_context("spawn").Process(target=_serve, args=(links, duration_s, child))
        server.start()
        try:
            if parent.recv() != "ready":
                raise RuntimeError("virtual patient server did not start")
            return asyncio.run(_consume(links, parent, with_timing))
        finally:
            server.join(timeout=10)
            if server.is_alive():
                server.kill()


def run(quick: bool = False) -> dict[str, Any]:
    """All four figures; ``quick`` shortens the pty runs to 15 s and the long recording to 5 minutes."""
    duration_s = 15.0 if quick else 60.0
    baseline = pty_path(duration_s, with_timing=False)
    full = pty_path(duration_s, with_timing=True)
    figures: dict[str, Any] = {
        "pty_stream_s": round(full["stream_s"], 1),
        "pty_sensors_x_rate": f"5 x {RATE_HZ:g} Hz",
        "pty_samples_sent": full["n_sent"],
        "pty_samples_received": full["n_received"],
        "pty_samples_lost": full["n_sent"] - full["n_received"],
        "cpu_process_transport_only_pct_of_one_core": round(baseline["cpu_pct_of_one_core"], 2),
        "cpu_process_with_timing_pct_of_one_core": round(full["cpu_pct_of_one_core"], 2),
        "cpu_full_vs_transport_ratio": round(full["cpu_pct_of_one_core"] / baseline["cpu_pct_of_one_core"], 2),
        # the goal's own parts: the reader thread (port reads, decoding, stamping) and the clock mapping + resampling
        "cpu_reader_thread_read_decode_stamp_pct_of_one_core": round(full["reader_thread_pct_of_one_core"], 2),
        "cpu_clock_mapping_resampling_pct_of_one_core": round(full["timing_pct_of_one_core"], 2),
        "cpu_read_decode_stamp_map_resample_pct_of_one_core": round(
            full["reader_thread_pct_of_one_core"] + full["timing_pct_of_one_core"], 2
        ),
        "grid_rows_emitted": full["grid_rows"],
    }
    clock = clock_accuracy(300.0)
    figures.update({f"clock_100ppm_5min_{k}": v for k, v in clock.items() if k.endswith(("batch_max_ms", "resets"))})
    with tempfile.TemporaryDirectory(prefix="stridetwin-bench-") as tmp:
        for minutes in (2.0, 5.0 if quick else 20.0):
            rss = peak_rss_of_recording(minutes, tmp)
            figures[f"recording_{minutes:g}min_peak_rss_mb"] = round(rss["peak_rss_mb"], 1)
    return figures
