"""Serial transport overhead and loss: N pseudo-terminals × R Hz through SerialDriver + KitDriver.

The devices (one :class:`PtyServer` each) run in a child process, so the figure is what the receiving side costs:
reader threads, decoding, stamping, the event loop and a consumer that counts samples. CPU is
``time.process_time()`` of this process over the wall time of the measurement, as a percentage of one core.

``run(quick)`` uses the ``stridetwin`` serial protocol from the driver registry (wired by the protocols package);
:func:`measure` takes any :class:`~sensor_drivers.drivers.registry.SerialProtocolSpec`. From a source checkout::

    python -m bench.serial_transport --duration 60                  # the 'stridetwin' protocol, once registered
    python -m bench.serial_transport --duration 60 --test-protocol  # the driver tests' framed protocol
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sensor_drivers.drivers.kit import KitDriver
from sensor_drivers.drivers.pty_server import PtyServer
from sensor_drivers.drivers.registry import SerialProtocolSpec, default_registry
from sensor_drivers.drivers.serial import SerialDriver, SerialOptions
from sensor_drivers.sample import DeviceReading, ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import KIT_SITES


def _readings(n: int, rate_hz: float) -> Iterator[tuple[float, DeviceReading]]:
    for i in range(n):
        t = i / rate_hz
        yield t, DeviceReading(acc_m_s2=(0.1, -0.2, 9.81), gyr_rad_s=(0.01, 0.02, -0.03), device_time_s=t, seq=i)


def _serve(spec: SerialProtocolSpec, links: list[str], n: int, rate_hz: float, conn: Any) -> None:
    """Child process: one pty server per link; waits for 'go', streams, reports counters."""
    assert spec.make_encoder is not None
    servers = [PtyServer(_readings(n, rate_hz), spec.make_encoder(), link_path=link).open() for link in links]
    conn.send("ready")
    conn.recv()
    for server in servers:
        server.start()
    for server in servers:
        server.wait_finished()
    conn.send([(s.n_readings_sent, s.n_bytes_overflowed) for s in servers])
    conn.recv()
    for server in servers:
        server.close()


async def _consume(
    spec: SerialProtocolSpec, links: list[str], n: int, rate_hz: float, conn: Any, poll_interval_s: float
) -> dict[str, Any]:
    drivers = [
        SerialDriver(
            link,
            spec.make_decoder,
            site=site,
            sensor_id=site.value,
            protocol=spec.name,
            seq_modulus=spec.seq_modulus,
            options=SerialOptions(poll_interval_s=poll_interval_s),
        )
        for link, site in zip(links, KIT_SITES, strict=False)
    ]
    kit = KitDriver(drivers)
    n_samples = 0
    bad_events: list[LinkEvent] = []

    async def consume() -> None:
        # As little as a consumer can do (count), so that the figure is the driver side's; order and gaps are
        # checked from the drivers' own counters below.
        nonlocal n_samples
        async for item in kit.stream():
            if type(item) is ImuSample:
                n_samples += 1
            elif item.state is not LinkState.CONNECTED:
                bad_events.append(item)

    await kit.connect()
    consumer = asyncio.create_task(consume())
    await asyncio.to_thread(conn.send, "go")
    wall0, cpu0 = time.monotonic(), time.process_time()
    sent = await asyncio.to_thread(conn.recv)
    wall1, cpu1 = time.monotonic(), time.process_time()
    await asyncio.sleep(0.2)  # the last poll interval's bytes
    await kit.close()
    await consumer
    conn.send("stop")
    n_expected = n * len(links)
    return {
        "n_ports": len(links),
        "rate_hz": rate_hz,
        "duration_s": round(wall1 - wall0, 2),
        "poll_interval_s": poll_interval_s,
        "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "n_samples_expected": n_expected,
        "n_samples_received": n_samples,
        "loss_pct": round(100 * (n_expected - n_samples) / n_expected, 4),
        "n_sequence_gaps": sum(d.stamper.n_gaps for d in drivers),
        "n_gap_or_disconnect_events": len(bad_events),
        "decoder_bytes_discarded": sum(d.decoder_stats.bytes_discarded for d in drivers),
        "server_bytes_overflowed": sum(o for _, o in sent),
    }


def measure(
    spec: SerialProtocolSpec,
    *,
    n_ports: int = 5,
    rate_hz: float = 200.0,
    duration_s: float = 60.0,
    poll_interval_s: float = SerialOptions.poll_interval_s,
) -> dict[str, Any]:
    """Stream ``duration_s`` of readings over ``n_ports`` ptys and report CPU and loss."""
    n = round(duration_s * rate_hz)
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="stridetwin-bench-") as tmp:
        links = [str(Path(tmp) / f"imu{i}") for i in range(n_ports)]
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(spec, links, n, rate_hz, child), daemon=True)
        proc.start()
        try:
            if not parent.poll(10) or parent.recv() != "ready":
                raise RuntimeError("pty servers did not start")
            return asyncio.run(_consume(spec, links, n, rate_hz, parent, poll_interval_s))
        finally:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()


def _test_protocol_spec() -> SerialProtocolSpec:
    from tests.sensor_drivers.drivers import toy_protocol as toy  # a source checkout only

    return SerialProtocolSpec(
        name="toy",
        description="the driver tests' framed protocol",
        make_decoder=toy.ToyDecoder,
        make_encoder=toy.ToyEncoder,
        seq_modulus=toy.SEQ_MODULUS,
    )


def run(quick: bool = False) -> dict[str, Any]:
    """The benchmark suite entry point (``stridetwin bench``)."""
    spec = default_registry.serial_protocols.get("stridetwin")
    if spec is None:
        raise RuntimeError("the 'stridetwin' serial protocol is not registered with the driver registry")
    return measure(spec, duration_s=5.0 if quick else 60.0)


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of readings (default 60)")
    parser.add_argument("--poll", type=float, default=SerialOptions.poll_interval_s, help="poll interval, s")
    parser.add_argument("--ports", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0, help="Hz per port")
    parser.add_argument("--test-protocol", action="store_true", help="use the driver tests' framed protocol")
    args = parser.parse_args()
    if args.test_protocol:
        spec = _test_protocol_spec()
    else:
        spec = default_registry.serial_protocols.get("stridetwin")
        if spec is None:
            parser.error("the 'stridetwin' serial protocol is not registered; try --test-protocol")
    result = measure(spec, n_ports=args.ports, rate_hz=args.rate, duration_s=args.duration, poll_interval_s=args.poll)
    print(json.dumps(result, indent=2))
