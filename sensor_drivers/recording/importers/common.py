"""What every importer shares: the parsed sensor, the site mapping, clock alignment and writing the clip."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.quaternion import wxyz_from_rotation
from sensor_drivers.recording.clipfile import ClipWriter, deep_merge
from sensor_drivers.sample import LinkEvent, LinkState
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]


@dataclass
class ParsedSensor:
    """One sensor's data as parsed from an export, before it is given a site."""

    sensor_id: str
    source_file: Path
    #: Names a ``--site KEY=SITE`` mapping may use for this sensor (file stem, device id, tag …), any case.
    keys: list[str]
    #: Sensor record fields: protocol, device_model, firmware, nominal_rate_hz, extra.
    info: dict[str, Any]
    #: Sample columns (sample field names); ``device_time_s`` is the device clock, unwrapped.
    columns: dict[str, NDArray]
    #: Whether the device clock shares its time base with the other sensors of the same export (synchronised).
    clock_synced: bool
    #: What was dropped or not imported, and why (shown to the user).
    notes: list[str] = field(default_factory=list)
    #: A site named in the file itself (the samples CSV), used when the mapping does not name this sensor.
    site_hint: str | None = None
    #: The device clock's tick and wrap (in ticks), to align synchronised sensors across a wrap.
    clock_tick_s: float = 1e-6
    clock_modulus_ticks: int = 1 << 32

    @property
    def n_samples(self) -> int:
        return len(self.columns["device_time_s"])


@dataclass
class ImportedSensor:
    sensor_id: str
    site: Site
    source_file: Path
    n_samples: int
    notes: list[str]


@dataclass
class ImportReport:
    """What an import wrote."""

    out_path: Path
    format: str
    sensors: list[ImportedSensor]
    #: Notes about the whole import (clock alignment).
    notes: list[str]


def parse_site_mapping(items: Iterable[str]) -> dict[str, Site]:
    """``["00B42279=pelvis", …]`` → ``{"00b42279": Site.PELVIS}`` (keys lower-cased); a clear error otherwise."""
    mapping: dict[str, Site] = {}
    for item in items:
        key, sep, site = item.partition("=")
        if not sep or not key.strip() or not site.strip():
            raise ValueError(f"site mapping {item!r} is not KEY=SITE (e.g. 00B42279=pelvis)")
        mapping[key.strip().lower()] = Site.parse(site)
    return mapping


def resolve_sites(sensors: Sequence[ParsedSensor], mapping: Mapping[str, Site]) -> list[Site]:
    """The site of each parsed sensor from the mapping; one error naming every sensor left without one."""
    sites: list[Site] = []
    missing: list[ParsedSensor] = []
    for s in sensors:
        hit = next((mapping[k.lower()] for k in s.keys if k.lower() in mapping), None)
        if hit is None and s.site_hint:
            hit = Site.parse(s.site_hint)
        if hit is None:
            missing.append(s)
        else:
            sites.append(hit)
    if missing:
        listed = "; ".join(f"{s.source_file.name} (keys: {', '.join(s.keys)})" for s in missing)
        raise ValueError(
            f"no site given for {listed}. Map each sensor with --site KEY=SITE, "
            f"e.g. --site {missing[0].keys[-1]}=pelvis; sites: {', '.join(x.value for x in Site)}"
        )
    used: dict[Site, str] = {}
    for s, site in zip(sensors, sites, strict=True):
        if site in used:
            raise ValueError(f"site {site.value} given to both {used[site]} and {s.source_file.name}")
        used[site] = s.source_file.name
    return sites


def unwrap_counter(raw: NDArray, modulus: int) -> NDArray[np.int64]:
    """An unsigned counter (packet counter, tick clock) made monotonic across wraps at ``modulus``.

    The rule of :mod:`sensor_drivers.protocols.counters`, vectorised for a file's rows: a forward step of less than
    half the range (modulo the range) is a step, wraps included; a larger one can only be a device restart, and the
    count continues one tick after the previous value plus the new raw value.
    """
    raw = np.asarray(raw, dtype=np.int64)
    if len(raw) == 0:
        return raw
    steps = np.mod(np.diff(raw), modulus)
    restart = steps >= modulus // 2
    steps[restart] = 1 + raw[1:][restart]
    return np.concatenate([[raw[0]], raw[0] + np.cumsum(steps)])


def wrapped_delta(a: int, b: int, modulus: int) -> int:
    """``b − a`` on a counter that wraps at ``modulus``, in ``[−modulus/2, modulus/2)``."""
    return (b - a + modulus // 2) % modulus - modulus // 2


def align_host_times(sensors: Sequence[ParsedSensor]) -> list[str]:
    """Give each sensor a ``host_time_s`` column, since exports carry no host receive clock.

    Synchronised sensors share one origin (the earliest first sample, wrap-aware), so their samples line up;
    unsynchronised ones each start at 0 s. ``host_time_s`` is then the device clock, which the sensor record says
    (``extra.host_time_source``) so that inspection does not read a drift into it.
    """
    notes: list[str] = []
    synced = [s for s in sensors if s.clock_synced]
    if synced:
        tick_s, modulus = synced[0].clock_tick_s, synced[0].clock_modulus_ticks
        ref_ticks = round(synced[0].columns["device_time_s"][0] / tick_s)
        starts = {
            id(s): wrapped_delta(ref_ticks, round(s.columns["device_time_s"][0] / tick_s), modulus) * tick_s
            for s in synced
        }
        origin = min(starts.values())
        for s in synced:
            dev = s.columns["device_time_s"]
            s.columns["host_time_s"] = (dev - dev[0]) + (starts[id(s)] - origin)
    unsynced = [s for s in sensors if not s.clock_synced]
    for s in unsynced:
        dev = s.columns["device_time_s"]
        s.columns["host_time_s"] = dev - dev[0]
    if unsynced and len(sensors) > 1:
        notes.append(
            "clocks not synchronised ("
            + ", ".join(s.source_file.name for s in unsynced)
            + "): each of these sensors starts at 0 s; align them before using them together"
        )
    for s in sensors:
        s.info.setdefault("extra", {})["host_time_source"] = "device_time_s"
    return notes


def quat_from_matrix_columns(mat: FloatArray) -> FloatArray:
    """W-first quaternions from rotation matrices (n, 3, 3); NaN rows stay NaN."""
    out = np.full((len(mat), 4), np.nan)
    ok = np.all(np.isfinite(mat.reshape(len(mat), 9)), axis=1)
    if np.any(ok):
        out[ok] = wxyz_from_rotation(Rotation.from_matrix(mat[ok]))
    return out


def quat_from_euler_zyx_deg(roll_pitch_yaw_deg: FloatArray) -> FloatArray:
    """W-first quaternions from Xsens Euler angles (roll x, pitch y, yaw z, degrees; R = Rz(yaw)·Ry(pitch)·Rx(roll),
    the aerospace Z-Y-X sequence of the Xsens/Movella manuals)."""
    out = np.full((len(roll_pitch_yaw_deg), 4), np.nan)
    ok = np.all(np.isfinite(roll_pitch_yaw_deg), axis=1)
    if np.any(ok):
        out[ok] = wxyz_from_rotation(Rotation.from_euler("ZYX", roll_pitch_yaw_deg[ok][:, ::-1], degrees=True))
    return out


def rates_from_increments(
    dq_wxyz: FloatArray | None, dv_m_s: FloatArray | None, rate_hz: float
) -> tuple[FloatArray | None, FloatArray | None]:
    """Mean angular velocity and specific force over each sample interval from strapdown increments
    (orientation increment quaternion, velocity increment): ω = axis·angle·rate, f = Δv·rate."""
    gyr = acc = None
    if dq_wxyz is not None:
        w = np.clip(dq_wxyz[:, 0], -1.0, 1.0)
        v = dq_wxyz[:, 1:]
        norm = np.linalg.norm(v, axis=1)
        angle = 2.0 * np.arctan2(norm, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            axis = np.where(norm[:, None] > 0, v / norm[:, None], 0.0)
        gyr = axis * (angle * rate_hz)[:, None]
    if dv_m_s is not None:
        acc = dv_m_s * rate_hz
    return gyr, acc


@dataclass
class TextTable:
    """Rows of numbers parsed from a delimited text export."""

    header: list[str]
    #: (n_rows, n_columns) floats; empty cells are NaN.
    values: FloatArray
    #: Line numbers (1-based) of the rows kept.
    line_numbers: list[int]
    notes: list[str]


def parse_numeric_rows(
    lines: Sequence[str], first_line_number: int, header: list[str], delimiter: str, path: Path
) -> TextTable:
    """Parse data rows; rows with a wrong field count or a non-number are dropped and reported.

    A row cut short (a truncated last line) is detected by its field count; a cut inside the last number of the
    file cannot be told from a shorter number and is kept.
    """
    n_cols = len(header)
    rows: list[list[float]] = []
    kept: list[int] = []
    bad: list[int] = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split(delimiter)
        if len(cells) == n_cols + 1 and not cells[-1].strip():
            cells.pop()  # a trailing delimiter
        if len(cells) != n_cols:
            bad.append(first_line_number + k)
            continue
        try:
            rows.append([float(c) if c.strip() else math.nan for c in cells])
        except ValueError:
            bad.append(first_line_number + k)
            continue
        kept.append(first_line_number + k)
    notes = []
    if bad:
        last = first_line_number + len(lines) - 1
        while last > first_line_number and not lines[last - first_line_number].strip():
            last -= 1
        where = "the last line (truncated)" if bad == [last] else f"{len(bad)} malformed row(s) (lines {_ranges(bad)})"
        notes.append(f"{path.name}: dropped {where}: expected {n_cols} {_delim_name(delimiter)}-separated numbers")
    values = np.array(rows, dtype=float) if rows else np.empty((0, n_cols))
    return TextTable(header, values, kept, notes)


def drop_empty_columns(table: TextTable) -> TextTable:
    """Without the columns that hold no value at all (MT Manager writes empty UTC and SampleTimeFine columns when those
    outputs were off), so that such a column counts as absent."""
    if len(table.values) == 0:
        return table
    keep = np.any(np.isfinite(table.values), axis=0)
    if np.all(keep):
        return table
    header = [h for h, k in zip(table.header, keep, strict=True) if k]
    return TextTable(header, table.values[:, keep], table.line_numbers, table.notes)


def keep_valid_counters(table: TextTable, names: Sequence[str], path: Path) -> TextTable:
    """Drop the rows whose counter/clock columns (those of ``names`` present) are not whole numbers ≥ 0, with a note;
    a row without its timestamp cannot be placed in time."""
    idx = [table.header.index(n) for n in names if n in table.header]
    if not idx:
        return table
    values = table.values[:, idx]
    ok = np.all(np.isfinite(values) & (values >= 0) & (values < 2.0**53) & (np.floor(values) == values), axis=1)
    if np.all(ok):
        return table
    bad = [table.line_numbers[i] for i in np.flatnonzero(~ok)]
    wanted = "/".join(table.header[i] for i in idx)
    note = f"{path.name}: dropped {len(bad)} row(s) without a valid {wanted} (lines {_ranges(bad)})"
    return TextTable(table.header, table.values[ok], [n for n, k in zip(table.line_numbers, ok, strict=True) if k],
                     [*table.notes, note])  # fmt: skip


def _delim_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon"}.get(delimiter, repr(delimiter))


def _ranges(numbers: Sequence[int], limit: int = 6) -> str:
    text = ", ".join(str(n) for n in numbers[:limit])
    return text + (f", … ({len(numbers)} in all)" if len(numbers) > limit else "")


def read_text(path: Path, what: str) -> list[str]:
    """The lines of a text export; a clear error for a binary or unreadable file."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise RecordingFormatError(f"{path}: is a directory, expected {what}") from None
    if b"\x00" in raw[:4096]:
        raise RecordingFormatError(f"{path}: binary data, expected {what} (a text file)")
    return raw.decode("utf-8-sig", errors="replace").splitlines()


def columns_3(table: TextTable, names: Sequence[str]) -> FloatArray | None:
    """The (n, k) block of the named columns, or ``None`` if any is missing."""
    idx = [table.header.index(n) for n in names if n in table.header]
    if len(idx) != len(names):
        return None
    return table.values[:, idx]


def write_clip(
    sensors: Sequence[ParsedSensor],
    sites: Sequence[Site],
    out_path: str | os.PathLike[str],
    *,
    source_format: str,
    notes: list[str],
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    link_events: Sequence[Mapping[str, Any]] = (),
) -> ImportReport:
    """Write the parsed sensors (and link events as dicts, from a samples CSV) as one clip."""
    meta = {
        "import": {
            "format": source_format,
            "files": list(dict.fromkeys(s.source_file.name for s in sensors)),
            "notes": [*notes, *(n for s in sensors for n in s.notes)],
        }
    }
    if metadata:
        meta = deep_merge(dict(metadata), meta)
    out_path = Path(out_path)
    report = ImportReport(out_path, source_format, [], notes)
    with ClipWriter(out_path, metadata=meta, overwrite=overwrite) as writer:
        for sensor, site in zip(sensors, sites, strict=True):
            writer.add_sensor({"sensor_id": sensor.sensor_id, "site": site, **sensor.info})
            writer.write_arrays(sensor.sensor_id, sensor.columns)
            report.sensors.append(
                ImportedSensor(sensor.sensor_id, site, sensor.source_file, sensor.n_samples, sensor.notes)
            )
        site_of = {s.sensor_id: site for s, site in zip(sensors, sites, strict=True)}
        for ev in link_events:
            sid = str(ev.get("sensor_id", ""))
            try:
                state = LinkState(ev.get("state"))
            except ValueError:
                notes.append(f"link event with unknown state {ev.get('state')!r} left out")
                continue
            if sid not in site_of:
                notes.append(f"link event for sensor {sid!r}, which has no samples, left out")
                continue
            writer.add_link_event(
                LinkEvent(
                    sid, site_of[sid], state, float(ev["host_time_s"]), str(ev.get("reason", "")), ev.get("n_missing")
                )
            )
    return report
