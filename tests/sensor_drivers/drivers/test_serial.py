"""SerialDriver over real pseudo-terminals served by PtyServer."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from sensor_drivers.drivers.pty_server import PtyServer
from sensor_drivers.drivers.serial import SerialDriver, SerialOptions
from sensor_drivers.errors import DeviceUnavailableError
from sensor_drivers.sample import ImuSample, LinkState
from sensor_drivers.sites import Site
from tests.sensor_drivers.drivers import toy_protocol as toy
from tests.sensor_drivers.drivers.streams import collect, drain, events, has_event, n_samples, samples, summary

FAST = SerialOptions(poll_interval_s=0.005, reopen_initial_s=0.01, reopen_max_s=0.05)


def make_driver(server: PtyServer, **kwargs: object) -> SerialDriver:
    kwargs.setdefault("options", FAST)
    return SerialDriver(
        str(server.link_path),
        toy.ToyDecoder,
        site=Site.SHANK_L,
        sensor_id="shank-l",
        protocol="toy",
        seq_modulus=toy.SEQ_MODULUS,
        **kwargs,  # type: ignore[arg-type]
    )


def assert_same(sample: ImuSample, time_s: float, seq: int) -> None:
    expected = toy.make_reading(seq, time_s)
    assert sample.seq == expected.seq
    assert sample.acc_m_s2 == expected.acc_m_s2
    assert sample.gyr_rad_s == expected.gyr_rad_s
    assert sample.device_time_s == expected.device_time_s
    assert sample.sensor_id == "shank-l"
    assert sample.site is Site.SHANK_L


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_readings_in_samples_out_identical() -> None:
    n = 400
    source = list(toy.readings(n, rate_hz=200.0))
    with PtyServer(source, toy.ToyEncoder(), speed=4.0) as server:
        async with make_driver(server, start_writes=toy.start_bytes(200)) as driver:
            stream = driver.stream()
            first = await collect(stream, lambda out: len(out) >= 1)
            assert first[0].state is LinkState.CONNECTED
            t_start = time.monotonic()
            server.start()
            items = await collect(stream, n_samples(n), timeout_s=10)
            t_end = time.monotonic()
    got = samples(items)
    assert len(got) == n, summary(items)
    for (time_s, reading), sample in zip(source, got, strict=True):
        assert_same(sample, time_s, reading.seq)
    host_times = [s.host_time_s for s in got]
    assert host_times == sorted(host_times)
    assert t_start <= host_times[0]
    assert host_times[-1] <= t_end
    # Paced: 400 readings at 200 Hz, 4x faster, take about 0.5 s, so the samples arrive over time, not in one burst.
    assert host_times[-1] - host_times[0] > 0.3
    assert events(items, LinkState.GAP) == []
    assert bytes(server.received) == b"RATE 200\n"
    assert driver.decoder_stats.checksum_errors == 0


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_garbage_is_skipped_and_stream_resynchronises() -> None:
    n = 300
    garbage = [
        b"\x00\xff\x13\x37",
        b"\xa5\x5a" + bytes(range(20)),  # a sync word and a truncated frame
        b"\xa5",  # a lone first sync byte right before a real frame
        b"\xa5\x5a" + b"\x01" * 31 + b"\x00",  # a full-length frame with a wrong checksum
    ]

    def source_with_garbage(server_ref: list[PtyServer]):  # the readings source runs in the server thread
        for time_s, reading in toy.readings(n, rate_hz=200.0):
            if reading.seq is not None and reading.seq % 60 == 30:
                server_ref[0].inject(garbage[(reading.seq // 60) % len(garbage)])
            yield time_s, reading

    ref: list[PtyServer] = []
    with PtyServer(source_with_garbage(ref), toy.ToyEncoder(), speed=5.0) as server:
        ref.append(server)
        async with make_driver(server) as driver:
            server.start()
            items = await collect(driver.stream(), n_samples(n), timeout_s=10)
            stats = driver.decoder_stats
    got = samples(items)
    assert [s.seq for s in got] == list(range(n)), summary(items)
    assert events(items, LinkState.GAP) == []
    assert stats.bytes_discarded > 0
    assert stats.checksum_errors >= 1
    assert stats.frames_ok == n


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_sequence_jump_is_marked_as_gap() -> None:
    source = list(toy.readings(200, skip=frozenset(range(50, 57))))
    with PtyServer(source, toy.ToyEncoder(), speed=math.inf) as server:
        async with make_driver(server) as driver:
            server.start()
            items = await collect(driver.stream(), n_samples(193))
    gaps = events(items, LinkState.GAP)
    assert len(gaps) == 1
    assert gaps[0].n_missing == 7
    index = items.index(gaps[0])
    assert isinstance(items[index - 1], ImuSample)
    assert items[index - 1].seq == 49
    assert isinstance(items[index + 1], ImuSample)
    assert items[index + 1].seq == 57


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_unplug_replug_reopens_and_keeps_everything_received() -> None:
    rate_hz, speed = 200.0, 2.0
    n = 600  # 3 s of readings, 1.5 s of wall time
    n_before_unplug = 200
    ref: list[PtyServer] = []
    readers: list[SerialDriver] = []

    def source():  # runs in the server thread: pulls the cable once the driver has stamped every reading sent so far
        for time_s, reading in toy.readings(n, rate_hz=rate_hz):
            if reading.seq == n_before_unplug:
                server = ref[0]
                deadline = time.monotonic() + 5
                # Not n_bytes_unread() alone: bytes the server wrote can sit in the pty's flip buffer, uncounted by
                # FIONREAD, until a kernel worker moves them on (late under load: the last reading was then lost).
                while readers[0].stamper.n_samples < n_before_unplug and time.monotonic() < deadline:
                    time.sleep(0.001)
                server.unplug()
                time.sleep(0.2)
                server.replug()
            yield time_s, reading

    with PtyServer(source(), toy.ToyEncoder(), speed=speed) as server:
        ref.append(server)
        first_target = server.slave_path
        async with make_driver(server, start_writes=toy.start_bytes(100)) as driver:
            readers.append(driver)
            stream = driver.stream()
            server.start()
            items = await collect(stream, has_event(LinkState.CONNECTED, 2), timeout_s=10)
            # The replugged device is found through the re-pointed symlink, and configured again.
            assert server.slave_path is not None
            assert server.link_path.resolve() == Path(server.slave_path)
            await asyncio.to_thread(server.wait_finished, 10)
            await asyncio.sleep(0.1)
        items += await drain(stream)
    states = [e.state for e in events(items)]
    assert states == [LinkState.CONNECTED, LinkState.DISCONNECTED, LinkState.CONNECTED], summary(items)
    disconnected = events(items, LinkState.DISCONNECTED)[0]
    assert "port vanished" in disconnected.reason
    cut = items.index(disconnected)
    before, after = samples(items[:cut]), samples(items[cut:])
    # Everything sent and read before the unplug is in the stream, in order.
    assert [s.seq for s in before] == list(range(n_before_unplug))
    # After the replug the samples continue, contiguous to the end, with no GAP double-marking the hole (the bytes
    # sent before the driver reopened the new port are lost, as on a real replug).
    seqs_after = [s.seq for s in after]
    assert seqs_after == list(range(seqs_after[0], n))
    assert events(items, LinkState.GAP) == []
    assert driver.n_reopens == 1
    assert driver.n_disconnects == 1
    assert driver.stamper.n_samples == len(samples(items))
    assert bytes(server.received) == b"RATE 100\n" * 2
    assert first_target is not None


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_scheduled_unplug_mid_stream() -> None:
    """A device pulled while streaming: bytes in flight are lost, everything read before is kept."""
    rate_hz = 200.0
    with PtyServer(toy.readings(500, rate_hz=rate_hz), toy.ToyEncoder(), speed=2.5, unplugs=[(1.0, 0.5)]) as server:
        async with make_driver(server) as driver:
            stream = driver.stream()
            server.start()
            items = await collect(stream, has_event(LinkState.CONNECTED, 2), timeout_s=10)
            await asyncio.to_thread(server.wait_finished, 10)
            await asyncio.sleep(0.1)
        items += await drain(stream)
    assert [e.state for e in events(items)] == [LinkState.CONNECTED, LinkState.DISCONNECTED, LinkState.CONNECTED]
    cut = items.index(events(items, LinkState.DISCONNECTED)[0])
    before, after = [s.seq for s in samples(items[:cut])], [s.seq for s in samples(items[cut:])]
    assert before == list(range(len(before)))
    assert len(before) >= 100  # at least half the 200 readings sent before the unplug, even on a loaded machine
    assert after == list(range(after[0], 500))
    assert after[0] >= 1.5 * rate_hz
    assert server.n_unplugs == 1


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_manual_unplug_while_idle_then_close_during_reopen_backoff() -> None:
    with PtyServer(toy.readings(10), toy.ToyEncoder()) as server:
        driver = make_driver(server)
        await driver.connect()
        stream = driver.stream()
        await asyncio.to_thread(server.unplug)
        assert not server.link_path.exists()
        items = await collect(stream, has_event(LinkState.DISCONNECTED))
        await asyncio.sleep(0.1)  # the driver keeps retrying; nothing crashes
        t0 = time.monotonic()
        await driver.close()
        assert time.monotonic() - t0 < 1.0
        items += await drain(stream)
    assert [e.state for e in events(items)] == [LinkState.CONNECTED, LinkState.DISCONNECTED]


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_close_decodes_what_was_already_received() -> None:
    n = 3000
    with PtyServer(toy.readings(n), toy.ToyEncoder(), speed=math.inf) as server:
        # A slow poll: most of the data still sits in the OS buffer when the server finishes.
        driver = make_driver(server, options=SerialOptions(poll_interval_s=0.05))
        await driver.connect()
        server.start()
        assert await asyncio.to_thread(server.wait_finished, 10)
        await driver.close()
        items = await drain(driver.stream())
    assert [s.seq for s in samples(items)] == list(range(n))
    assert server.n_bytes_overflowed == 0


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_missing_port_raises_device_unavailable_naming_it(tmp_path) -> None:
    path = tmp_path / "no-such-tty"
    driver = SerialDriver(
        str(path), toy.ToyDecoder, site=Site.PELVIS, options=SerialOptions(n_open_attempts=2, reopen_initial_s=0.01)
    )
    with pytest.raises(DeviceUnavailableError, match=r"no-such-tty.*2 attempt"):
        await driver.connect()
    await driver.close()  # safe after a failed connect, and twice
    await driver.close()


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_port_held_by_another_driver_is_refused() -> None:
    with PtyServer(toy.readings(10), toy.ToyEncoder()) as server:
        async with make_driver(server):
            other = make_driver(server, options=SerialOptions(n_open_attempts=1))
            with pytest.raises(DeviceUnavailableError, match="could not be opened"):
                await other.connect()


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="baud_rate"):
        SerialOptions(baud_rate=0)
    with pytest.raises(ValueError, match="poll_interval_s"):
        SerialOptions(poll_interval_s=-1)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_start_writes_are_sent_in_order_with_a_gap() -> None:
    arrivals: list[tuple[float, bytes]] = []
    with PtyServer(toy.readings(1), toy.ToyEncoder(), on_receive=lambda b: arrivals.append((time.monotonic(), b))) as s:
        writes = [b"UNLOCK\n", b"RATE 200\n", b"SAVE\n"]
        s.start()  # serving (reading what the driver writes) before the driver opens the port
        async with make_driver(s, start_writes=writes, options=SerialOptions(start_write_gap_s=0.05)):
            await asyncio.sleep(0.1)
    assert b"".join(b for _, b in arrivals) == b"".join(writes)
    assert arrivals[-1][0] - arrivals[0][0] >= 0.08  # two gaps of 50 ms (less the reader's timing slack)
