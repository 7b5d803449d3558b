"""Movella (Xsens) DOT CSV export → parsed sensors.

The export starts with ``sep=,`` and ``Key:,value`` lines (``DeviceTag``, ``FirmwareVersion``, ``SyncStatus``,
``OutputRate``, ``Measurement Mode``, ``StartTime``), a copyright line, then a header row starting with
``PacketCounter``. Columns used, where present:

- ``PacketCounter`` (16-bit, wraps) → ``seq``; ``SampleTimeFine`` (µs, 32-bit, wraps every 71.6 min) →
  ``device_time_s``.
- ``Acc_X/Y/Z`` (m/s², specific force, sensor frame) → ``acc_m_s2``; ``Gyr_X/Y/Z`` (deg/s) → ``gyr_rad_s``;
  ``dq_W..dq_Z`` / ``dv_X..dv_Z`` (delta-quantity modes) → mean rates where ``Acc``/``Gyr`` are absent.
- ``Quat_W/X/Y/Z`` → ``quat_wxyz``; else ``Euler_X/Y/Z`` (roll, pitch, yaw in degrees, Z-Y-X) → ``quat_wxyz``.
- ``FreeAcc_X/Y/Z``: acceleration in the DOT's global frame with gravity removed. It is *not* a specific force in the
  sensor frame, so it goes to ``free_acc_m_s2`` and ``acc_m_s2`` stays absent (NaN) when the file has no ``Acc``;
  turning it back into a specific force would need the device's orientation estimate and its gravity constant,
  which a consumer can do explicitly.
- ``Mag_X/Y/Z``: the file does not state the unit (arbitrary units normalised to the local field in Movella's
  exports): imported only with ``mag_au_ut``.

Sensors whose header says ``SyncStatus: Synced`` share one clock; others each start at 0 s.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording.importers.common import (
    ParsedSensor,
    columns_3,
    drop_empty_columns,
    keep_valid_counters,
    parse_numeric_rows,
    quat_from_euler_zyx_deg,
    rates_from_increments,
    read_text,
    unwrap_counter,
)

FORMAT_NAME = "movella-dot-csv"
EXPECTED = "a Movella DOT CSV export (optional 'sep=,' and 'Key:,value' lines, then a header row starting with "
EXPECTED += "PacketCounter,SampleTimeFine)"
SAMPLE_TIME_FINE_TICK_S = 1e-6
SAMPLE_TIME_FINE_MODULUS = 1 << 32
PACKET_COUNTER_MODULUS = 1 << 16
#: Output rates a DOT can be set to (Movella DOT user manual); a measured rate within 2 % snaps to one of them.
DOT_OUTPUT_RATES_HZ = (1, 4, 10, 12, 15, 20, 30, 60, 120)
#: Lines searched for the header row.
MAX_PREAMBLE_LINES = 40
_MAC = re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{12})(?![0-9A-Fa-f])")


def parse_movella_dot(path: str | Path, *, mag_au_ut: float | None = None) -> ParsedSensor:
    """Parse one DOT export; raises RecordingFormatError naming the file when it is not one."""
    path = Path(path)
    lines = read_text(path, EXPECTED)
    meta: dict[str, str] = {}
    header_at = None
    for i, line in enumerate(lines[:MAX_PREAMBLE_LINES]):
        cells = [c.strip() for c in line.split(",")]
        if cells and cells[0] == "PacketCounter":
            header_at = i
            break
        if len(cells) >= 2 and cells[0].endswith(":"):
            meta[cells[0].rstrip(":").strip()] = cells[1]
    if header_at is None or "SampleTimeFine" not in lines[header_at]:
        raise RecordingFormatError(f"{path}: not {EXPECTED}; no such header row in its first lines")
    header = [c.strip() for c in lines[header_at].split(",")]
    table = parse_numeric_rows(lines[header_at + 1 :], header_at + 2, header, ",", path)
    table = keep_valid_counters(drop_empty_columns(table), ["PacketCounter", "SampleTimeFine"], path)
    notes = list(table.notes)
    if len(table.values) == 0:
        raise RecordingFormatError(f"{path}: no valid data rows after the header; expected {EXPECTED}")
    h, v = table.header, table.values
    if "SampleTimeFine" not in h:
        raise RecordingFormatError(f"{path}: the SampleTimeFine column holds no values; cannot time the samples")

    ticks = unwrap_counter(v[:, h.index("SampleTimeFine")].astype(np.int64), SAMPLE_TIME_FINE_MODULUS)
    device_time_s = ticks * SAMPLE_TIME_FINE_TICK_S
    rate_hz = _rate_hz(meta, device_time_s)
    n = len(v)
    cols: dict[str, np.ndarray] = {"device_time_s": device_time_s}
    if "PacketCounter" in h:
        cols["seq"] = unwrap_counter(v[:, h.index("PacketCounter")].astype(np.int64), PACKET_COUNTER_MODULUS)

    acc = columns_3(table, ["Acc_X", "Acc_Y", "Acc_Z"])
    gyr_deg = columns_3(table, ["Gyr_X", "Gyr_Y", "Gyr_Z"])
    gyr = np.deg2rad(gyr_deg) if gyr_deg is not None else None
    if (acc is None or gyr is None) and rate_hz is not None:
        inc_gyr, inc_acc = rates_from_increments(
            columns_3(table, ["dq_W", "dq_X", "dq_Y", "dq_Z"]), columns_3(table, ["dv_X", "dv_Y", "dv_Z"]), rate_hz
        )
        if acc is None and inc_acc is not None:
            acc = inc_acc
            notes.append(f"{path.name}: acc_m_s2 from dv (Δv × {rate_hz:g} Hz)")
        if gyr is None and inc_gyr is not None:
            gyr = inc_gyr
            notes.append(f"{path.name}: gyr_rad_s from dq (Δq angle × {rate_hz:g} Hz)")
    nan3 = np.full((n, 3), np.nan)
    cols["acc_m_s2"] = acc if acc is not None else nan3
    cols["gyr_rad_s"] = gyr if gyr is not None else nan3
    free = columns_3(table, ["FreeAcc_X", "FreeAcc_Y", "FreeAcc_Z"])
    if free is not None:
        cols["free_acc_m_s2"] = free
    if acc is None:
        why = " (FreeAcc, gravity removed in the global frame, kept as free_acc_m_s2)" if free is not None else ""
        notes.append(f"{path.name}: no specific force (Acc_X/Y/Z or dv){why}; acc_m_s2 is absent (NaN)")
    if gyr is None:
        notes.append(f"{path.name}: no angular rate (Gyr_X/Y/Z or dq); gyr_rad_s is absent (NaN)")
    quat = columns_3(table, ["Quat_W", "Quat_X", "Quat_Y", "Quat_Z"])
    if quat is None:
        euler = columns_3(table, ["Euler_X", "Euler_Y", "Euler_Z"])
        if euler is not None:
            quat = quat_from_euler_zyx_deg(euler)
    if quat is not None:
        cols["quat_wxyz"] = quat
    mag = columns_3(table, ["Mag_X", "Mag_Y", "Mag_Z"])
    if mag is not None:
        if mag_au_ut is None:
            notes.append(
                f"{path.name}: Mag_X/Y/Z left out: the export does not state their unit (arbitrary units, "
                "normalised); give the local field strength in µT (--mag-au-ut) to import them"
            )
        else:
            cols["mag_ut"] = mag * mag_au_ut

    tag = meta.get("DeviceTag", "")
    mac_match = _MAC.search(path.stem)
    mac = ":".join(re.findall("..", mac_match.group(1).upper())) if mac_match else ""
    sensor_id = mac or tag or path.stem
    candidates = [path.name, path.stem, path.stem.split("_")[0], tag, mac, mac.replace(":", "")]
    keys = [k for k in dict.fromkeys(candidates) if k]
    info = {
        "transport": "file",
        "protocol": FORMAT_NAME,
        "address": mac,
        "nominal_rate_hz": rate_hz,
        "device_model": "Movella DOT",
        "firmware": meta.get("FirmwareVersion", ""),
        "extra": {k: val for k, val in meta.items() if k != "FirmwareVersion"},
    }
    synced = meta.get("SyncStatus", "").strip().lower() == "synced"
    return ParsedSensor(
        sensor_id,
        path,
        keys,
        info,
        cols,
        clock_synced=synced,
        notes=notes,
        clock_tick_s=SAMPLE_TIME_FINE_TICK_S,
        clock_modulus_ticks=SAMPLE_TIME_FINE_MODULUS,
    )


def _rate_hz(meta: dict[str, str], device_time_s: np.ndarray) -> float | None:
    """The output rate from the header (``OutputRate:,60Hz``), else from the median SampleTimeFine step, else None."""
    match = re.search(r"([0-9.]+)\s*Hz", meta.get("OutputRate", ""))
    if match and float(match.group(1)) > 0:
        return float(match.group(1))
    steps = np.diff(device_time_s)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return None
    measured = 1.0 / float(np.median(steps))
    nearest = min(DOT_OUTPUT_RATES_HZ, key=lambda r: abs(r - measured))
    return float(nearest) if abs(nearest - measured) <= 0.02 * nearest else round(measured, 3)
