"""The project's samples CSV (``stridetwin.samples-csv/1``, see :mod:`sensor_drivers.recording.csv_format`) → parsed
sensors. Also accepts a hand-made CSV with the same column names, as long as it has ``sensor_id`` and
``host_time_s``; missing columns are absent fields."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording import format as fmt
from sensor_drivers.recording.csv_format import CSV_COLUMNS, CSV_MAJOR, CSV_SCHEMA, parse_comment
from sensor_drivers.recording.importers.common import ParsedSensor, read_text

FORMAT_NAME = "stridetwin-csv"
EXPECTED = f"a StrideTwin samples CSV ({CSV_SCHEMA}: '#' lines, then a header with sensor_id, host_time_s, ...)"
_INT_FIELDS = {"seq", "acc_clip_count", "gyr_clip_count"}


def parse_stridetwin_csv(path: str | Path) -> tuple[list[ParsedSensor], dict[str, Any], list[dict[str, Any]]]:
    """``(sensors, metadata, link_events)`` from one samples CSV; RecordingFormatError naming the file otherwise."""
    path = Path(path)
    lines = read_text(path, EXPECTED)
    metadata: dict[str, Any] = {}
    sensor_records: dict[str, dict[str, Any]] = {}
    link_events: list[dict[str, Any]] = []
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or not lines[i].strip()):
        parsed = parse_comment(lines[i]) if lines[i].startswith("#") else None
        if parsed is not None:
            key, value = parsed
            if key == "schema":
                major = str(value).rsplit("/", 1)[-1]
                if major != str(CSV_MAJOR):
                    raise RecordingFormatError(
                        f"{path}: {value} is not a samples-CSV version this StrideTwin reads ({CSV_SCHEMA})"
                    )
            elif key == "metadata" and isinstance(value, dict):
                metadata = value
            elif key == "sensor" and isinstance(value, dict) and "sensor_id" in value:
                sensor_records[str(value["sensor_id"])] = value
            elif key == "link_event" and isinstance(value, dict):
                link_events.append(value)
        i += 1
    if i >= len(lines):
        raise RecordingFormatError(f"{path}: no header row; expected {EXPECTED}")
    header = [h.strip() for h in lines[i].split(",")]
    if "sensor_id" not in header or "host_time_s" not in header:
        raise RecordingFormatError(f"{path}: not {EXPECTED}; found header {lines[i][:120]!r}")
    known = {c for cols in CSV_COLUMNS.values() for c in cols} | {"sensor_id", "site"}
    unknown = [h for h in header if h not in known]
    col_of = {name: header.index(name) for name in header}
    fields = {f: cols for f, cols in CSV_COLUMNS.items() if all(c in col_of for c in cols)}
    partial = [f for f, cols in CSV_COLUMNS.items() if f not in fields and any(c in col_of for c in cols)]
    if partial:
        raise RecordingFormatError(
            f"{path}: incomplete column group(s) for {partial}; each needs all of "
            + "; ".join(",".join(CSV_COLUMNS[f]) for f in partial)
        )
    n_cols = len(header)
    rows: dict[str, list[tuple[int, list[str]]]] = {}
    sites: dict[str, str] = {}
    bad: list[int] = []
    for k, line in enumerate(lines[i + 1 :]):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != n_cols:
            bad.append(i + 2 + k)
            continue
        sid = cells[col_of["sensor_id"]].strip()
        rows.setdefault(sid, []).append((i + 2 + k, cells))
        if "site" in col_of and sid not in sites:
            sites[sid] = cells[col_of["site"]].strip()
    notes = [f"{path.name}: columns not used: {', '.join(unknown)}"] if unknown else []
    sensors = []
    # The order of the "# sensor:" lines (the clip's declaration order), then any others by first appearance.
    ordered = [sid for sid in sensor_records if sid in rows] + [sid for sid in rows if sid not in sensor_records]
    for sid in ordered:
        sensor_rows = rows[sid]
        columns, dropped = _columns(sensor_rows, fields, col_of)
        bad.extend(dropped)
        if len(columns["host_time_s"]) == 0:
            continue
        record = dict(sensor_records.get(sid, {}))
        site = str(record.pop("site", "") or sites.get(sid, ""))
        record.pop("sensor_id", None)
        record.pop("index", None)
        keys = [sid, *([site] if site else [])]
        sensors.append(ParsedSensor(sid, path, keys, record, columns, clock_synced=True, site_hint=site or None))
    if bad:
        notes.append(f"{path.name}: dropped {len(bad)} malformed row(s) (lines {', '.join(map(str, sorted(bad)[:6]))})")
    if not sensors:
        raise RecordingFormatError(f"{path}: no valid data rows after the header; expected {EXPECTED}")
    sensors[0].notes.extend(notes)
    return sensors, metadata, link_events


def _columns(
    rows: list[tuple[int, list[str]]], fields: dict[str, tuple[str, ...]], col_of: dict[str, int]
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Column arrays of one sensor; rows with a non-number are dropped (their line numbers returned)."""
    idx = [col_of[c] for f in fields for c in fields[f]]
    values = []
    dropped = []
    for line_number, cells in rows:
        try:
            values.append([float(cells[j]) if cells[j].strip() else math.nan for j in idx])
        except ValueError:
            dropped.append(line_number)
    table = np.array(values, dtype=float).reshape(len(values), len(idx))
    # A row needs a finite host time; counters must be whole numbers ≥ 0 where given (empty = absent).
    ok = np.ones(len(table), bool)
    pos = 0
    for f, cols in fields.items():
        block = table[:, pos : pos + len(cols)]
        pos += len(cols)
        if f == "host_time_s":
            ok &= np.isfinite(block[:, 0])
        elif f in _INT_FIELDS:
            limit = 2.0**53 if f == "seq" else 2.0**31
            given = np.isfinite(block[:, 0])
            ok &= ~given | ((block[:, 0] >= 0) & (block[:, 0] < limit) & (np.floor(block[:, 0]) == block[:, 0]))
    unparsed = set(dropped)
    lines = [line_number for line_number, _ in rows if line_number not in unparsed]
    dropped += [n for n, k in zip(lines, ok, strict=True) if not k]
    table = table[ok]
    out: dict[str, np.ndarray] = {}
    pos = 0
    for f, cols in fields.items():
        block = table[:, pos : pos + len(cols)]
        pos += len(cols)
        block = block[:, 0] if len(cols) == 1 else block
        if f in _INT_FIELDS:
            block = np.where(np.isfinite(block), block, -1).astype(fmt.FIELDS_BY_NAME[f].dtype)
        out[f] = block
    n = len(table)
    out.setdefault("device_time_s", np.full(n, np.nan))
    out.setdefault("acc_m_s2", np.full((n, 3), np.nan))
    out.setdefault("gyr_rad_s", np.full((n, 3), np.nan))
    return out, dropped
