"""Small clips for the service tests, written with the real clip writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensor_drivers.recording.clipfile import ClipWriter
from sensor_drivers.sites import KIT_SITES


def write_clip(
    path: Path, n_samples: int = 400, *, n_sensors: int = 5, metadata: dict[str, Any] | None = None,
    acc_nan_fraction: float = 0.0, seed: int = 0,
) -> Path:  # fmt: skip
    """A finished 200 Hz clip of ``n_samples`` per sensor with random (but finite) acc and gyr."""
    rng = np.random.default_rng(seed)
    meta = {"patient": {"pseudonym": "P-0042", "height_m": 1.72, "mass_kg": 70.0, "affected_side": "left"}}
    meta.update(metadata or {})
    with ClipWriter(path, metadata=meta) as writer:
        for i, site in enumerate(KIT_SITES[:n_sensors]):
            sid = f"S{i}"
            writer.add_sensor({"sensor_id": sid, "site": site.value, "nominal_rate_hz": 200.0})
            acc = rng.normal(0, 1, (n_samples, 3)).astype(np.float32) + np.float32([0, 0, 9.81])
            acc[: int(acc_nan_fraction * n_samples)] = np.nan
            writer.write_arrays(sid, {
                "host_time_s": 100.0 + np.arange(n_samples) / 200.0,
                "seq": np.arange(n_samples, dtype=np.int64),
                "acc_m_s2": acc,
                "gyr_rad_s": rng.normal(0, 0.1, (n_samples, 3)).astype(np.float32),
            })  # fmt: skip
    return Path(path)
