"""A virtual-patient recording written straight to a clip, as if received over a real link, with its truth beside it.

No transport runs: host receive times come from the latency models of :mod:`sensor_drivers.timing.transport_sim`
(USB-serial or BLE), so clock mapping and resampling meet realistic timing. The clip's clock origin is 0, so clip-clock
times equal the simulation's true times (plus the transport's latency floor, which no receiver can tell from a clock
offset). This is how accuracy tests and benchmarks score the capture core against the ground truth.

The truth is written beside the clip: ``walk.stclip`` → ``walk.truth.npz`` + ``walk.truth.json``
(:func:`truth_path_for`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensor_drivers.drivers.base import SensorInfo
from sensor_drivers.recording.clipfile import ClipWriter
from sensor_drivers.sample import LinkEvent, LinkState
from sensor_drivers.sim.config import VirtualPatientConfig
from sensor_drivers.sim.patient import VirtualRecording
from sensor_drivers.timing.transport_sim import BleLatency, SerialLatency

TRANSPORTS = ("serial", "ble")


def truth_path_for(clip_path: str | Path) -> Path:
    """Where the ground truth of a simulated clip lives: ``<stem>.truth.npz`` (and ``.json``) beside it."""
    clip_path = Path(clip_path)
    return clip_path.with_name(f"{clip_path.stem}.truth.npz")


def truth_to_clip_offset_s(metadata: dict[str, Any]) -> float:
    """Add this to a truth time to get the clip-clock time of the same instant.

    Truth time ``t`` is host time ``simulation.truth_origin_host_s + t``; clip time is host time minus
    ``clock_origin_host_s`` (docs/clip-format.md). Offline clips have both origins at 0; a recording through the
    ``sim:`` transports starts its devices a moment after the recording began.
    """
    simulation = metadata.get("simulation") or {}
    truth_origin_s = simulation.get("truth_origin_host_s")
    if truth_origin_s is None:
        raise ValueError("the clip's metadata has no simulation.truth_origin_host_s: it is not a simulated recording")
    return float(truth_origin_s) - float(metadata.get("clock_origin_host_s", 0.0))


def patient_metadata(config: VirtualPatientConfig) -> dict[str, Any]:
    """The patient and test-protocol metadata of a virtual patient (a pseudonym, never a name)."""
    affected = config.paretic_side if config.profile == "hemiparetic" else None
    return {
        "patient": {
            "pseudonym": f"VIRTUAL-{config.profile.upper()}-{config.seed}",
            "height_m": config.height_m,
            "mass_kg": config.mass_kg,
            "affected_side": affected,
        },
        "protocol": {"test": "walkway", "walkway_length_m": config.walkway_length_m},
    }


def clip_metadata(recording: VirtualRecording) -> dict[str, Any]:
    """Metadata of a clip written offline: clip clock = simulation time, patient, protocol, simulation."""
    config = recording.config
    return {
        "clock_origin_host_s": 0.0,
        **patient_metadata(config),
        "simulation": {"profile": config.profile, "seed": config.seed, "truth_origin_host_s": 0.0},
    }


def write_virtual_clip(
    recording: VirtualRecording, path: str | Path, *, transport: str = "serial", seed: int = 0, overwrite: bool = False
) -> Path:
    """Write ``recording`` as a finished clip at ``path`` and its truth beside it; returns the truth's path."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r} is not simulated; accepted: {', '.join(TRANSPORTS)}")
    latency = SerialLatency() if transport == "serial" else BleLatency()
    rng = np.random.default_rng(seed)
    rate_hz = recording.config.sampling_rate_hz
    path = Path(path)
    with ClipWriter(path, metadata=clip_metadata(recording), overwrite=overwrite) as writer:
        for site, track in recording.tracks.items():
            writer.add_sensor(
                SensorInfo(track.sensor_id, site, transport, "virtual", nominal_rate_hz=rate_hz, device_model="virtual")
            )
            ok = track.delivered
            columns = {
                "host_time_s": latency.arrivals(track.true_time_s[ok], rng),
                "device_time_s": track.device_time_s[ok],
                "seq": track.seq[ok],
                "acc_m_s2": track.acc_m_s2[ok],
                "gyr_rad_s": track.gyr_rad_s[ok],
                "mag_ut": track.mag_ut[ok],
                "battery_pct": track.battery_pct[ok],
                "acc_clip_count": track.acc_clip_count[ok].astype(np.int32),
                "gyr_clip_count": track.gyr_clip_count[ok].astype(np.int32),
            }
            if track.quat_wxyz is not None:
                columns["quat_wxyz"] = track.quat_wxyz[ok]
            writer.write_arrays(track.sensor_id, columns)
        for outage in recording.config.disconnects:
            track = recording.tracks[outage.site]
            for state, time_s in (
                (LinkState.DISCONNECTED, outage.start_s),
                (LinkState.CONNECTED, outage.start_s + outage.duration_s),
            ):
                writer.add(LinkEvent(track.sensor_id, outage.site, state, time_s, reason="simulated link outage"))
    truth_path = truth_path_for(path)
    recording.truth.save(truth_path)
    return truth_path
