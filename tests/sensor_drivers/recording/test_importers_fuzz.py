"""Fuzzed exports: whatever the bytes, an importer returns parsed data or raises RecordingFormatError."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording.importers import parse_movella_dot, parse_stridetwin_csv, parse_xsens_mt

_XSENS_HEAD = "// Update Rate: 100.0Hz\nPacketCounter\tSampleTimeFine\tAcc_X\tAcc_Y\tAcc_Z\tMat[1][1]\n"
_XSENS_HEAD_ORIENTATION_ONLY = "// Update Rate: 60Hz\nPacketCounter\tMat[1][1]\tMat[2][1]\n"
_DOT_HEAD = "sep=,\nDeviceTag:,t\nPacketCounter,SampleTimeFine,Acc_X,Acc_Y,Acc_Z,Gyr_X,Gyr_Y,Gyr_Z\n"
_CSV_HEAD = "# stridetwin.samples-csv/1\nsensor_id,site,host_time_s,seq,acc_x_m_s2,acc_y_m_s2,acc_z_m_s2\n"
_cells = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-", "1e400", "pelvis", "x", "0x1F", "  3 "]),
)


def _rows(sep: str, n_cols: int):
    row = st.lists(_cells, min_size=max(n_cols - 2, 0), max_size=n_cols + 1).map(sep.join)
    return st.lists(row, max_size=30).map("\n".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["xsens", "xsens-partial", "dot", "csv"]), body=st.data(), noise=st.binary(max_size=40))
def test_importers_never_crash(tmp_path, kind, body, noise):
    head, sep, n_cols, parse = {
        "xsens": (_XSENS_HEAD, "\t", 6, parse_xsens_mt),
        "xsens-partial": (_XSENS_HEAD_ORIENTATION_ONLY, "\t", 3, parse_xsens_mt),
        "dot": (_DOT_HEAD, ",", 8, parse_movella_dot),
        "csv": (_CSV_HEAD, ",", 7, parse_stridetwin_csv),
    }[kind]
    text = head + body.draw(_rows(sep, n_cols))
    path = tmp_path / f"fuzz-{kind}.txt"
    path.write_bytes(text.encode() + (noise if body.draw(st.booleans()) else b""))
    try:
        parsed = parse(path)
    except RecordingFormatError:
        return
    sensors = parsed[0] if kind == "csv" else [parsed]
    for sensor in sensors:
        host_or_device = sensor.columns.get("device_time_s")
        if kind != "csv":  # device clocks are unwrapped counters: finite and increasing
            assert np.all(np.isfinite(host_or_device))
            assert np.all(np.diff(host_or_device) >= 0)
        else:
            assert np.all(np.isfinite(sensor.columns["host_time_s"]))
