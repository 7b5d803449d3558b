"""Coverage-guided fuzzing of every protocol decoder with atheris (not part of the test suite).

Run (atheris is not a project dependency: install it in a scratch environment)::

    python -m venv --system-site-packages /tmp/fuzz && /tmp/fuzz/bin/pip install atheris
    /tmp/fuzz/bin/python tests/fuzz/fuzz_decoders.py -atheris_runs=200000 -max_len=2048

The first input byte picks the decoder and the chunk size; the rest is fed to it. Stream decoders must never raise;
BLE profiles may raise only ProtocolError. Every byte a stream decoder takes must be accounted for in its stats.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from sensor_drivers.errors import ProtocolError
    from sensor_drivers.protocols import movella_dot, stridetwin_frame, witmotion_ble, witmotion_serial
    from sensor_drivers.protocols.base import BleNotification

_DOT_UUIDS = (movella_dot.MEDIUM_PAYLOAD_UUID, movella_dot.LONG_PAYLOAD_UUID, movella_dot.BATTERY_UUID)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    selector, chunk = data[0], 1 + data[1] % 64
    body = data[2:]
    kind = selector % 4
    if kind == 0:
        decoder = witmotion_serial.WitmotionSerialDecoder()
    elif kind == 1:
        decoder = stridetwin_frame.StrideTwinDecoder()
    if kind in (0, 1):
        for k in range(0, len(body), chunk):
            decoder.feed(body[k : k + chunk])
        stats = decoder.stats
        assert stats.bytes_in == len(body)
        assert stats.bytes_discarded <= stats.bytes_in
        return
    if kind == 2:
        profile = witmotion_ble.WitmotionBleProfile()
        uuid = witmotion_ble.NOTIFY_UUID
    else:
        modes = sorted(movella_dot.MODE_NAMES)
        profile = movella_dot.DotProfile(payload_mode=modes[(selector >> 2) % len(modes)])
        uuid = _DOT_UUIDS[(selector >> 5) % len(_DOT_UUIDS)]
    for k in range(0, len(body), chunk):
        with contextlib.suppress(ProtocolError):
            profile.decode(BleNotification(uuid, body[k : k + chunk]))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
