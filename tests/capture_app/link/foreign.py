"""Clips from a writer that does not check for identifying data (an older app, another tool, a file edited by hand),
built record by record from docs/clip-format.md with the format's byte-level functions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from sensor_drivers.recording import format as fmt
from sensor_drivers.sites import KIT_SITES


def write_foreign_clip(path: Path, metadata: dict[str, Any], n_samples: int = 200,
                       sections: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """A finished 5-sensor clip whose metadata (and JSON sections) are written exactly as given."""
    meta = {"schema_version": "1.0", **metadata}
    records = [fmt.encode_record(fmt.RecordType.METADATA, fmt.encode_json(meta))]
    rng = np.random.default_rng(1)
    for i, site in enumerate(KIT_SITES):
        records.append(fmt.encode_record(fmt.RecordType.SENSOR, fmt.encode_json(
            {"index": i, "sensor_id": f"S{i}", "site": site.value, "nominal_rate_hz": 200.0})))  # fmt: skip
        columns = {
            "host_time_s": 100.0 + np.arange(n_samples) / 200.0,
            "acc_m_s2": (rng.normal(0, 1, (n_samples, 3)) + np.array([0, 0, 9.81])).astype(np.float32),
            "gyr_rad_s": rng.normal(0, 0.1, (n_samples, 3)).astype(np.float32),
        }
        records.append(fmt.encode_record(fmt.RecordType.SAMPLES, fmt.encode_block(i, columns)))
    for name, value in (sections or {}).items():
        records.append(fmt.encode_record(fmt.RecordType.SECTION, fmt.encode_section(name, value)))
    body = fmt.encode_header() + b"".join(records)
    footer = fmt.encode_record(fmt.RecordType.FOOTER, hashlib.sha256(body).digest() + fmt.encode_json({}))
    Path(path).write_bytes(body + footer + fmt.TRAILER.pack(len(body), fmt.END_MAGIC))
    return Path(path)
