"""The project's own samples CSV (``stridetwin.samples-csv/1``): the export format of a clip, and an import format.

One row per sample, all sensors in one file, ordered by host time::

    # stridetwin.samples-csv/1
    # metadata: {"schema_version": "1.0", "patient": {"pseudonym": "P-0042", ...}, ...}
    # sensor: {"sensor_id": "WT-1", "site": "pelvis", "nominal_rate_hz": 200.0, ...}
    # link_event: {"sensor_id": "WT-1", "state": "gap", "host_time_s": 12.5, ...}
    sensor_id,site,device_time_s,host_time_s,seq,acc_x_m_s2,...

Lines starting with ``#`` carry the format version and, as JSON, the clip's metadata, sensor records and link events
(``pandas.read_csv(path, comment="#")`` skips them). An empty cell means "absent". Floats are written exactly:
times with 17 significant digits, float32 measurements with 9 (the clip stores them as float32), so a clip exported
and imported again has bit-identical arrays. Sections (calibration, events, metrics) are not part of the samples CSV.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from sensor_drivers.recording import format as fmt
from sensor_drivers.recording.clipfile import Clip

CSV_SCHEMA = "stridetwin.samples-csv/1"
CSV_MAJOR = 1

#: Sample field → its CSV columns (units in the names, per docs/conventions.md).
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "device_time_s": ("device_time_s",),
    "host_time_s": ("host_time_s",),
    "seq": ("seq",),
    "acc_m_s2": ("acc_x_m_s2", "acc_y_m_s2", "acc_z_m_s2"),
    "gyr_rad_s": ("gyr_x_rad_s", "gyr_y_rad_s", "gyr_z_rad_s"),
    "mag_ut": ("mag_x_ut", "mag_y_ut", "mag_z_ut"),
    "quat_wxyz": ("quat_w", "quat_x", "quat_y", "quat_z"),
    "free_acc_m_s2": ("free_acc_x_m_s2", "free_acc_y_m_s2", "free_acc_z_m_s2"),
    "battery_pct": ("battery_pct",),
    "rssi_dbm": ("rssi_dbm",),
    "acc_clip_count": ("acc_clip_count",),
    "gyr_clip_count": ("gyr_clip_count",),
}
ID_COLUMNS = ("sensor_id", "site")
HEADER: tuple[str, ...] = ID_COLUMNS + tuple(c for f in fmt.SAMPLE_FIELDS for c in CSV_COLUMNS[f.name])
_INT_FIELDS = {"seq", "acc_clip_count", "gyr_clip_count"}
_ROWS_PER_CHUNK = 20_000
_NAN_CELL = re.compile(r",nan(?=,|$)", re.MULTILINE)


def _cell_format(field_name: str) -> str:
    if field_name in _INT_FIELDS:
        return "%.0f"  # exact below 2**53, and NaN (absent) formats as "nan" like the floats
    return "%.17g" if fmt.FIELDS_BY_NAME[field_name].dtype == "<f8" else "%.9g"


def export_csv(clip: Clip, out_path: str | os.PathLike[str], *, overwrite: bool = False) -> int:
    """Write every sample of ``clip`` as ``stridetwin.samples-csv/1``; returns the number of rows."""
    out_path = Path(out_path)
    cell_formats = ",".join(_cell_format(f.name) for f in fmt.SAMPLE_FIELDS for _ in CSV_COLUMNS[f.name])
    row_format = "%s," + cell_formats
    streams = list(clip.sensors.values())
    n_total = sum(s.n_samples for s in streams)
    host = np.concatenate([s.host_time_s for s in streams]) if streams else np.empty(0)
    owner = np.concatenate([np.full(s.n_samples, i) for i, s in enumerate(streams)]) if streams else np.empty(0, int)
    order = np.argsort(host, kind="stable")
    # One float64 matrix of every sample's cells (ints are exact in float64 below 2**53).
    cells = np.empty((n_total, len(HEADER) - len(ID_COLUMNS)))
    pos = 0
    for s in streams:
        col = 0
        for f in fmt.SAMPLE_FIELDS:
            width = len(CSV_COLUMNS[f.name])
            arr = getattr(s, f.name)
            block = cells[pos : pos + s.n_samples, col : col + width]
            block[:] = np.nan if arr is None else np.asarray(arr, float).reshape(s.n_samples, width)
            if f.name in _INT_FIELDS and arr is not None:
                block[np.asarray(arr).reshape(s.n_samples, width) < 0] = np.nan
            col += width
        pos += s.n_samples
    for s in streams:
        if any(ch in s.sensor_id for ch in ',"\r\n'):
            raise ValueError(f"sensor id {s.sensor_id!r} contains a comma, quote or line break; cannot write it as CSV")
    prefixes = [f"{s.sensor_id},{s.site}" for s in streams]
    mode = "w" if overwrite else "x"
    with out_path.open(mode, encoding="utf-8", newline="\n") as out:
        out.write(f"# {CSV_SCHEMA}\n")
        out.write("# metadata: " + fmt.encode_json(clip.metadata).decode() + "\n")
        for s in streams:
            out.write("# sensor: " + fmt.encode_json({k: v for k, v in s.info.items() if k != "index"}).decode() + "\n")
        for ev in clip.link_events:
            record = {
                "sensor_id": ev.sensor_id,
                "site": str(ev.site),
                "state": str(ev.state),
                "host_time_s": ev.host_time_s,
                "reason": ev.reason,
                "n_missing": ev.n_missing,
            }
            out.write("# link_event: " + fmt.encode_json(record).decode() + "\n")
        out.write(",".join(HEADER) + "\n")
        for start in range(0, n_total, _ROWS_PER_CHUNK):
            idx = order[start : start + _ROWS_PER_CHUNK]
            lines = [row_format % (prefixes[o], *row) for o, row in zip(owner[idx], cells[idx].tolist(), strict=True)]
            text = _NAN_CELL.sub(",", "\n".join(lines))  # absent values are empty cells
            out.write(text + "\n")
    return n_total


def parse_comment(line: str) -> tuple[str, object] | None:
    """``# key: {json}`` → ``(key, value)``; ``# stridetwin.samples-csv/N`` → ``("schema", "…/N")``."""
    body = line[1:].strip()
    if body.startswith("stridetwin.samples-csv/"):
        return "schema", body
    key, sep, value = body.partition(":")
    if not sep:
        return None
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return None
