"""PtyServer: a real pseudo-terminal, read here with plain pyserial."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import serial

from sensor_drivers.drivers.pty_server import PtyServer
from tests.sensor_drivers.drivers import toy_protocol as toy


def read_for(port: serial.Serial, duration_s: float) -> bytes:
    out = bytearray()
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        out += port.read(max(port.in_waiting, 1))
    return bytes(out)


@pytest.mark.timeout(10)
def test_serves_paced_frames_and_collects_what_the_reader_writes() -> None:
    with PtyServer(toy.readings(100, rate_hz=100.0), toy.ToyEncoder(), speed=2.0) as server:
        assert server.link_path.is_symlink()
        assert os.readlink(server.link_path) == server.slave_path
        port = serial.Serial(str(server.link_path), timeout=0.05)
        port.write(b"RATE 100\n")
        t0 = time.monotonic()
        server.start()
        data = read_for(port, 0.3)
        assert server.wait_finished(5)
        data += read_for(port, 0.1)
        elapsed_s = time.monotonic() - t0
        port.close()
        assert bytes(server.received) == b"RATE 100\n"
    decoded = toy.ToyDecoder().feed(data)
    assert [r.seq for r in decoded] == list(range(100))
    assert elapsed_s >= 0.45  # 1 s of readings at speed 2 is paced, not dumped


@pytest.mark.timeout(10)
def test_unplug_removes_node_and_link_replug_repoints_link() -> None:
    with PtyServer(toy.readings(10), toy.ToyEncoder()) as server:
        old_target = server.slave_path
        assert old_target is not None
        port = serial.Serial(str(server.link_path), timeout=0.05)
        server.unplug()
        assert not server.plugged
        assert not os.path.lexists(server.link_path)
        assert not os.path.exists(old_target)
        with pytest.raises(serial.SerialException):
            port.read(1)
        port.close()
        server.replug()
        assert server.plugged
        assert os.readlink(server.link_path) == server.slave_path
        port = serial.Serial(str(server.link_path), timeout=0.05)
        server.inject(b"hello")
        assert read_for(port, 0.1) == b"hello"
        port.close()
    # close() removes the temp dir it made
    assert not server.link_path.parent.exists()


@pytest.mark.timeout(10)
def test_scheduled_unplug_loses_the_readings_due_meanwhile(tmp_path: Path) -> None:
    link = tmp_path / "imu-pelvis"
    with PtyServer(
        toy.readings(100, rate_hz=100.0), toy.ToyEncoder(), speed=20.0, link_path=link, unplugs=[(0.3, 0.2)]
    ) as server:
        server.start()
        assert server.wait_finished(5)
        assert server.n_unplugs == 1
        assert server.n_readings_unplugged == 20
        assert server.n_readings_sent == 80
        assert link.is_symlink()  # replugged by itself
    assert not os.path.lexists(link)
    assert tmp_path.exists()  # a caller's directory is left alone


def test_rejects_bad_speed_and_unplug() -> None:
    with pytest.raises(ValueError, match="speed"):
        PtyServer([], toy.ToyEncoder(), speed=0)
    with pytest.raises(ValueError, match="negative duration"):
        PtyServer([], toy.ToyEncoder(), unplugs=[(1.0, -1.0)])
