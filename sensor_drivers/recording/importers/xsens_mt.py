"""Xsens MT Manager text export (``.txt``, one file per sensor) → parsed sensors.

The export starts with ``// Key: value`` lines (``Update Rate: 100.0Hz``, ``Firmware Version``), then one header row
and tab-separated rows (``;`` or ``,`` are accepted too). Columns used, where present:

- ``PacketCounter`` (16-bit, wraps) → ``seq``; ``SampleTimeFine`` (10 kHz ticks, 32-bit) → ``device_time_s``; without
  it, the device time is ``PacketCounter / update rate`` (MTw sensors in one Awinda network share the counter).
- ``Acc_X/Y/Z`` (m/s², specific force) → ``acc_m_s2``; ``Gyr_X/Y/Z`` (rad/s) → ``gyr_rad_s``; ``VelInc_*`` and
  ``OriInc_q0..q3`` (strapdown increments) are turned into mean rates where ``Acc``/``Gyr`` are absent.
- orientation: ``Quat_q0..q3``, else ``Mat[i][j]`` (row i, column j of R_GS, which rotates sensor-frame vectors into
  the Xsens global frame), else ``Roll/Pitch/Yaw`` (degrees, Z-Y-X) → ``quat_wxyz``.
- ``FreeAcc_X/Y/Z`` or ``FreeAcc_E/N/U`` (global frame, gravity removed) → ``free_acc_m_s2``.
- ``Mag_X/Y/Z`` is in arbitrary units normalised to the local field: imported only with ``mag_au_ut`` (the local
  field strength in µT that one unit stands for), otherwise left out with a note.

Rows that carry a counter but no measurement (a sample the station did not receive) are not samples: they are
left out, and the counter jump shows the loss.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording.importers.common import (
    ParsedSensor,
    TextTable,
    columns_3,
    drop_empty_columns,
    keep_valid_counters,
    parse_numeric_rows,
    quat_from_euler_zyx_deg,
    quat_from_matrix_columns,
    rates_from_increments,
    read_text,
    unwrap_counter,
)

FORMAT_NAME = "xsens-mt-text"
EXPECTED = "an Xsens MT Manager text export ('//' header lines, then a tab-separated header row with "
EXPECTED += "PacketCounter and Acc_X, Acc_Y, Acc_Z or an orientation)"
SAMPLE_TIME_FINE_TICK_S = 1e-4
SAMPLE_TIME_FINE_MODULUS = 1 << 32
PACKET_COUNTER_MODULUS = 1 << 16
#: The first column of each measurement group; a file without any of them is not an IMU export.
_MEASUREMENT_COLUMNS = {"Acc_X", "Gyr_X", "Quat_q0", "Mat[1][1]", "Roll", "Euler_X", "FreeAcc_X", "FreeAcc_E"}
_MEASUREMENT_COLUMNS |= {"VelInc_X", "OriInc_q0"}
_DEVICE_ID = re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{8})$")


def parse_xsens_mt(path: str | Path, *, mag_au_ut: float | None = None) -> ParsedSensor:
    """Parse one MT Manager export; raises RecordingFormatError naming the file when it is not one."""
    path = Path(path)
    lines = read_text(path, EXPECTED)
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and (lines[i].startswith("//") or not lines[i].strip()):
        key, _, value = lines[i][2:].partition(":")
        if value:
            meta[key.strip()] = value.strip()
        i += 1
    if i >= len(lines):
        raise RecordingFormatError(f"{path}: no header row found; expected {EXPECTED}")
    header_line = lines[i].rstrip("\r\n")
    delimiter = max(("\t", ";", ","), key=header_line.count)
    header = [h.strip() for h in header_line.split(delimiter)]
    if header and not header[-1]:
        header.pop()
    has_motion = bool(set(header) & _MEASUREMENT_COLUMNS)
    if ("PacketCounter" not in header and "SampleTimeFine" not in header) or not has_motion:
        raise RecordingFormatError(f"{path}: not {EXPECTED}; found header {header_line[:120]!r}")
    table = parse_numeric_rows(lines[i + 1 :], i + 2, header, delimiter, path)
    table = keep_valid_counters(drop_empty_columns(table), ["PacketCounter", "SampleTimeFine"], path)
    notes = list(table.notes)
    if len(table.values) == 0:
        raise RecordingFormatError(f"{path}: no valid data rows after the header; expected {EXPECTED}")

    rate_hz = _update_rate_hz(meta, table, path)
    cols, more_notes = _columns(table, rate_hz, mag_au_ut, path)
    notes.extend(more_notes)

    sensor_id = _device_id(path, meta)
    stem_tokens = path.stem.split("_")
    keys = list(dict.fromkeys([path.name, path.stem, stem_tokens[-1], sensor_id]))
    info = {
        "transport": "file",
        "protocol": FORMAT_NAME,
        "address": "",
        "nominal_rate_hz": rate_hz,
        "device_model": "Xsens MT",
        "firmware": meta.get("Firmware Version", ""),
        "extra": {k: v for k, v in meta.items() if k not in ("Firmware Version",)},
    }
    if "SampleTimeFine" in table.header:
        tick_s, modulus = SAMPLE_TIME_FINE_TICK_S, SAMPLE_TIME_FINE_MODULUS
    else:
        tick_s, modulus = 1.0 / rate_hz, PACKET_COUNTER_MODULUS
    return ParsedSensor(
        sensor_id,
        path,
        keys,
        info,
        cols,
        clock_synced=True,
        notes=notes,
        clock_tick_s=tick_s,
        clock_modulus_ticks=modulus,
    )


def _update_rate_hz(meta: dict[str, str], table: TextTable, path: Path) -> float:
    """From ``// Update Rate: 100.0Hz``, else from the median SampleTimeFine step."""
    match = re.search(r"([0-9.]+)\s*Hz", meta.get("Update Rate", ""))
    if match and float(match.group(1)) > 0:
        return float(match.group(1))
    if "SampleTimeFine" in table.header and len(table.values) > 1:
        steps = np.diff(table.values[:, table.header.index("SampleTimeFine")])
        steps = steps[steps > 0]
        if len(steps):
            return round(1.0 / (float(np.median(steps)) * SAMPLE_TIME_FINE_TICK_S), 3)
    raise RecordingFormatError(
        f"{path}: no '// Update Rate: <n>Hz' header line and no SampleTimeFine to time the samples; expected {EXPECTED}"
    )


def _device_id(path: Path, meta: dict[str, str]) -> str:
    match = _DEVICE_ID.search(path.stem)
    return match.group(1).upper() if match else meta.get("Device ID", path.stem)


def _columns(
    table: TextTable, rate_hz: float, mag_au_ut: float | None, path: Path
) -> tuple[dict[str, np.ndarray], list[str]]:
    notes: list[str] = []
    h = table.header
    v = table.values
    acc = columns_3(table, ["Acc_X", "Acc_Y", "Acc_Z"])
    gyr = columns_3(table, ["Gyr_X", "Gyr_Y", "Gyr_Z"])
    if acc is None or gyr is None:
        inc_gyr, inc_acc = rates_from_increments(
            columns_3(table, ["OriInc_q0", "OriInc_q1", "OriInc_q2", "OriInc_q3"]),
            columns_3(table, ["VelInc_X", "VelInc_Y", "VelInc_Z"]),
            rate_hz,
        )
        if acc is None and inc_acc is not None:
            acc = inc_acc
            notes.append(f"{path.name}: acc_m_s2 from VelInc (Δv × {rate_hz:g} Hz)")
        if gyr is None and inc_gyr is not None:
            gyr = inc_gyr
            notes.append(f"{path.name}: gyr_rad_s from OriInc (Δq angle × {rate_hz:g} Hz)")
    quat = columns_3(table, ["Quat_q0", "Quat_q1", "Quat_q2", "Quat_q3"])
    if quat is None:
        mat_names = [f"Mat[{r}][{c}]" for r in (1, 2, 3) for c in (1, 2, 3)]
        mat = columns_3(table, mat_names)
        if mat is not None:
            quat = quat_from_matrix_columns(mat.reshape(-1, 3, 3))
        else:
            euler = columns_3(table, ["Roll", "Pitch", "Yaw"])
            if euler is None:
                euler = columns_3(table, ["Euler_X", "Euler_Y", "Euler_Z"])
            if euler is not None:
                quat = quat_from_euler_zyx_deg(euler)
    free = columns_3(table, ["FreeAcc_X", "FreeAcc_Y", "FreeAcc_Z"])
    if free is None:
        free = columns_3(table, ["FreeAcc_E", "FreeAcc_N", "FreeAcc_U"])
    mag = columns_3(table, ["Mag_X", "Mag_Y", "Mag_Z"])
    if mag is not None:
        if mag_au_ut is None:
            notes.append(
                f"{path.name}: Mag_X/Y/Z left out: MT Manager exports them in arbitrary units (normalised to the "
                "local field); give the local field strength in µT (--mag-au-ut) to import them"
            )
            mag = None
        else:
            mag = mag * mag_au_ut

    # A row with a counter but no measurement is a sample the station did not receive, not a sample.
    measured = [m for m in (acc, gyr, quat, free) if m is not None]
    if not measured:
        raise RecordingFormatError(
            f"{path}: no complete measurement columns (Acc_X/Y/Z, Gyr_X/Y/Z, Quat_q0..q3, Mat[1][1]..Mat[3][3], "
            f"Roll/Pitch/Yaw, FreeAcc_*); expected {EXPECTED}"
        )
    has_data = np.any(np.stack([np.any(np.isfinite(m), axis=1) for m in measured]), axis=0)
    if not np.all(has_data):
        notes.append(f"{path.name}: {int(np.sum(~has_data))} row(s) with a counter but no data left out (loss)")

    n = len(v)
    counter = v[:, h.index("PacketCounter")] if "PacketCounter" in h else None
    stf = v[:, h.index("SampleTimeFine")] if "SampleTimeFine" in h else None
    cols: dict[str, np.ndarray] = {}
    if counter is not None:
        cols["seq"] = unwrap_counter(counter.astype(np.int64), PACKET_COUNTER_MODULUS)
    if stf is not None:
        ticks = unwrap_counter(stf.astype(np.int64), SAMPLE_TIME_FINE_MODULUS)
        cols["device_time_s"] = ticks * SAMPLE_TIME_FINE_TICK_S
    elif "seq" in cols:
        cols["device_time_s"] = cols["seq"] / rate_hz
        notes.append(f"{path.name}: no SampleTimeFine; device time = PacketCounter / {rate_hz:g} Hz")
    else:
        raise RecordingFormatError(
            f"{path}: neither SampleTimeFine nor PacketCounter holds values; cannot time samples"
        )
    nan3 = np.full((n, 3), np.nan)
    cols["acc_m_s2"] = acc if acc is not None else nan3
    cols["gyr_rad_s"] = gyr if gyr is not None else nan3
    if gyr is None:
        notes.append(f"{path.name}: no gyroscope columns (Gyr_X/Y/Z or OriInc); gyr_rad_s is absent (NaN)")
    if acc is None:
        notes.append(f"{path.name}: no accelerometer columns (Acc_X/Y/Z or VelInc); acc_m_s2 is absent (NaN)")
    if quat is not None:
        cols["quat_wxyz"] = quat
    if free is not None:
        cols["free_acc_m_s2"] = free
    if mag is not None:
        cols["mag_ut"] = mag
    return {k: c[has_data] for k, c in cols.items()}, notes
