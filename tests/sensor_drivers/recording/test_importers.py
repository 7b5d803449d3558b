"""Importers: real Xsens / Movella exports, small files written here, wrong formats, the samples CSV round trip."""

from __future__ import annotations

import numpy as np
import pytest

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.quaternion import rotate
from sensor_drivers.recording.clipfile import ClipWriter, read_clip
from sensor_drivers.recording.csv_format import HEADER, export_csv
from sensor_drivers.recording.importers import import_files, parse_movella_dot, parse_xsens_mt
from sensor_drivers.recording.importers.common import unwrap_counter
from sensor_drivers.sample import DeviceStatus, ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import Site

OPENSENSE_SITES = ["00B42279=pelvis", "00B4227C=thigh_r", "00B4227D=shank_r", "00B421EE=thigh_l", "00B421ED=shank_l"]


def _gravity_in_world(stream, n: int = 50) -> np.ndarray:
    """Mean of R_world_sensor · acc over the first samples (standing still): should be (0, 0, +g)."""
    return rotate(stream.quat_wxyz[:n].astype(float), stream.acc_m_s2[:n].astype(float)).mean(axis=0)


# ------------------------------------------------------------------------------------------------ real exports
@pytest.mark.shared_data
def test_xsens_mt_opensense_export(shared_data_dir, tmp_path):
    folder = shared_data_dir / "imu" / "opensense_xsens" / "OpenSenseExampleIMUData"
    files = [p for p in sorted(folder.glob("*.txt")) if any(k.split("=")[0] in p.name for k in OPENSENSE_SITES)]
    out = tmp_path / "opensense.stclip"
    report = import_files("xsens", files, out, sites=OPENSENSE_SITES)
    assert {s.site for s in report.sensors} == set(Site)
    clip = read_clip(out)
    pelvis = clip.sensors["00B42279"]
    assert pelvis.site is Site.PELVIS
    assert pelvis.n_samples == 2493  # every data row of the file
    assert pelvis.nominal_rate_hz == 100.0
    assert pelvis.info["firmware"] == "4.0.2"
    np.testing.assert_array_equal(np.diff(pelvis.seq), 1)
    assert pelvis.seq[0] == 472
    assert np.isnan(pelvis.gyr_rad_s).all()  # this export has no gyroscope
    assert "gyr_rad_s" not in pelvis.fields_present
    # the orientation matrix became a quaternion that maps the measured specific force to +z (still, at the start)
    for stream in clip.sensors.values():
        np.testing.assert_allclose(_gravity_in_world(stream), [0, 0, 9.81], atol=0.1)
    # MTw sensors share the counter: all start at host time 0
    assert {float(s.host_time_s[0]) for s in clip.sensors.values()} == {0.0}


@pytest.mark.shared_data
def test_movella_dot_offline_export(shared_data_dir, tmp_path):
    folder = shared_data_dir / "imu" / "opensense_xsens" / "XsensDot_offline_original"
    files = sorted(folder.glob("*.csv"))
    sites = ["bei=pelvis", "yao=thigh_l", "ydb=thigh_r", "ydt=shank_l", "D4CA6EF17231=shank_r"]  # tag or MAC
    report = import_files("dot", files, tmp_path / "dot.stclip", sites=sites)
    assert any("not synchronised" in n for n in report.notes)
    clip = read_clip(tmp_path / "dot.stclip")
    bei = clip.sensors["D4:CA:6E:F1:78:60"]
    assert bei.nominal_rate_hz == 120.0
    assert bei.n_samples == 1953
    # row 2 of the file: Gyr_X,Y,Z = 0.02204104885459, 0.24006941914558, 0.04952512308955 deg/s
    np.testing.assert_allclose(bei.gyr_rad_s[1], np.deg2rad([0.02204104885459, 0.24006941914558, 0.04952512308955]))
    np.testing.assert_allclose(bei.device_time_s[1] - bei.device_time_s[0], 0.008333)
    # Euler angles became a quaternion consistent with the accelerometer (skip sample 0: all zeros in the file)
    for stream in clip.sensors.values():
        g = rotate(stream.quat_wxyz[1:60].astype(float), stream.acc_m_s2[1:60].astype(float)).mean(axis=0)
        np.testing.assert_allclose(g, [0, 0, 9.8], atol=0.25)
        assert stream.host_time_s[0] == 0.0


@pytest.mark.shared_data
def test_movella_dot_realtime_export_keeps_free_acceleration_apart(shared_data_dir, tmp_path):
    folder = shared_data_dir / "imu" / "opensense_xsens" / "XsensDot_realtime_original"
    sites = ["LFemur=thigh_l", "RFemur=thigh_r", "LTibia=shank_l", "RTibia=shank_r", "Pelvis=pelvis"]
    import_files("dot", sorted(folder.glob("*.csv")), tmp_path / "rt.stclip", sites=sites)
    clip = read_clip(tmp_path / "rt.stclip")
    for stream in clip.sensors.values():
        assert np.isnan(stream.acc_m_s2).all()  # free acceleration is not a specific force
        assert stream.free_acc_m_s2 is not None
        assert stream.quat_wxyz is not None
        assert stream.nominal_rate_hz == 60.0
    # synced sensors share one clock origin: their first samples lie within a few frames
    starts = [s.host_time_s[0] for s in clip.sensors.values()]
    assert max(starts) - min(starts) < 0.05
    thigh_l = next(s for s in clip.sensors.values() if s.site is Site.THIGH_L)
    assert thigh_l.seq[-1] - thigh_l.seq[0] + 1 - thigh_l.n_samples == 157  # counter jumps: BLE loss


# ------------------------------------------------------------------------------------------------ written here
def test_unwrap_counter_follows_the_protocol_rule():
    """Wraps are steps; a step of half the range or more is a restart (as sensor_drivers.protocols.counters)."""
    from sensor_drivers.protocols.counters import CounterUnwrapper

    raw = [65534, 65535, 1, 40000, 5, 6]
    streaming = CounterUnwrapper(16)
    np.testing.assert_array_equal(unwrap_counter(np.array(raw), 1 << 16), [streaming.unwrap(r) for r in raw])


def _xsens_text(rows: list[str], header: str) -> str:
    return (
        "// Start Time: Unknown\n// Update Rate: 100.0Hz\n// Firmware Version: 4.0.2\n"
        + header
        + "\n"
        + "\n".join(rows)
    )


def test_xsens_with_sample_time_fine_wrap_gyro_quaternion_and_mag(tmp_path):
    header = "\t".join(
        [
            *("PacketCounter", "SampleTimeFine", "Acc_X", "Acc_Y", "Acc_Z", "Gyr_X", "Gyr_Y", "Gyr_Z"),
            *("Mag_X", "Mag_Y", "Mag_Z", "Quat_q0", "Quat_q1", "Quat_q2", "Quat_q3"),
        ]
    )
    stf0 = 2**32 - 200  # wraps after two samples (100 ticks = 10 ms at 10 kHz)
    rows = []
    for k in range(5):
        counter = (65534 + k) % 65536
        stf = (stf0 + 100 * k) % 2**32
        rows.append(f"{counter}\t{stf}\t0.1\t0.2\t9.8\t0.01\t0.02\t0.03\t0.5\t0.1\t-0.8\t1\t0\t0\t0")
    rows.append("65535\t")  # the recording was cut while writing: a truncated last line
    path = tmp_path / "MT_0123_00B41111.txt"
    path.write_text(_xsens_text(rows, header))
    parsed = parse_xsens_mt(path)
    assert parsed.sensor_id == "00B41111"
    np.testing.assert_allclose(np.diff(parsed.columns["device_time_s"]), 0.01)
    np.testing.assert_array_equal(parsed.columns["seq"], [65534, 65535, 65536, 65537, 65538])
    assert "mag_ut" not in parsed.columns
    assert any("arbitrary units" in n for n in parsed.notes)
    assert any("truncated" in n and "last line" in n for n in parsed.notes)
    with_mag = parse_xsens_mt(path, mag_au_ut=48.0)
    np.testing.assert_allclose(with_mag.columns["mag_ut"][0], [24.0, 4.8, -38.4])
    np.testing.assert_array_equal(with_mag.columns["quat_wxyz"][0], [1, 0, 0, 0])


def test_xsens_rows_without_data_are_loss_not_samples(tmp_path):
    header = "PacketCounter\tAcc_X\tAcc_Y\tAcc_Z"
    rows = ["1\t0\t0\t9.8", "2\t\t\t", "3\t0\t0\t9.8"]
    path = tmp_path / "MT_x_00B42222.txt"
    path.write_text(_xsens_text(rows, header))
    parsed = parse_xsens_mt(path)
    np.testing.assert_array_equal(parsed.columns["seq"], [1, 3])
    assert any("counter but no data" in n for n in parsed.notes)


def test_dot_with_acc_gyr_and_quaternion(tmp_path):
    text = (
        "sep=,\nDeviceTag:,tag1\nFirmwareVersion:,2.0.0\nSyncStatus:,Synced\nOutputRate:,60Hz\n\n"
        "PacketCounter,SampleTimeFine,Quat_W,Quat_X,Quat_Y,Quat_Z,Acc_X,Acc_Y,Acc_Z,Gyr_X,Gyr_Y,Gyr_Z\n"
        "65535,4294967000,1,0,0,0,0,0,9.8,180,0,-90\n"
        "0,16371,1,0,0,0,0,0,9.8,180,0,-90\n"
        "2,49705,1,0,0,0,0,0,9.8,18"  # truncated, and one sample lost before it
    )
    path = tmp_path / "knee_D4CA6EF10000_20240101.csv"
    path.write_text(text)
    parsed = parse_movella_dot(path)
    assert parsed.sensor_id == "D4:CA:6E:F1:00:00"
    assert {"tag1", "knee", "D4CA6EF10000"} <= set(parsed.keys)
    assert parsed.clock_synced
    np.testing.assert_array_equal(parsed.columns["seq"], [65535, 65536])
    np.testing.assert_allclose(np.diff(parsed.columns["device_time_s"]), 16667e-6)
    np.testing.assert_allclose(parsed.columns["gyr_rad_s"][0], [np.pi, 0, -np.pi / 2])
    assert any("truncated" in n for n in parsed.notes)


def test_wrong_formats_give_clear_errors_naming_the_file(tmp_path):
    dot = tmp_path / "dot.csv"
    dot.write_text("sep=,\nDeviceTag:,a\nPacketCounter,SampleTimeFine,Acc_X,Acc_Y,Acc_Z\n1,2,0,0,9.8\n")
    xsens = tmp_path / "mt.txt"
    xsens.write_text(_xsens_text(["1\t0\t0\t9.8"], "PacketCounter\tAcc_X\tAcc_Y\tAcc_Z"))
    binary = tmp_path / "x.bin"
    binary.write_bytes(bytes(range(256)))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [
        ("xsens", dot, "not an Xsens MT Manager text export"),
        ("dot", xsens, "not a Movella DOT CSV export"),
        ("csv", dot, "not a StrideTwin samples CSV"),
        ("xsens", binary, "binary data"),
        ("dot", empty, "not a Movella DOT CSV export"),
        ("xsens", empty, "no header row"),
    ]
    for fmt_name, path, message in cases:
        with pytest.raises(RecordingFormatError, match=message) as info:
            import_files(fmt_name, [path], tmp_path / "out.stclip", sites=[f"{path.stem}=pelvis"])
        assert str(path) in str(info.value)
        assert not (tmp_path / "out.stclip").exists()
    header_only = tmp_path / "MT_h_00B43333.txt"
    header_only.write_text(_xsens_text([], "PacketCounter\tAcc_X\tAcc_Y\tAcc_Z"))
    with pytest.raises(RecordingFormatError, match="no valid data rows"):
        parse_xsens_mt(header_only)


def test_site_mapping_errors(tmp_path):
    path = tmp_path / "MT_x_00B44444.txt"
    path.write_text(_xsens_text(["1\t0\t0\t9.8"], "PacketCounter\tAcc_X\tAcc_Y\tAcc_Z"))
    other = tmp_path / "MT_x_00B45555.txt"
    other.write_text(_xsens_text(["1\t0\t0\t9.8"], "PacketCounter\tAcc_X\tAcc_Y\tAcc_Z"))
    with pytest.raises(ValueError, match=r"no site given for MT_x_00B45555\.txt .*--site 00B45555=pelvis"):
        import_files("xsens", [path, other], tmp_path / "o.stclip", sites=["00b44444=pelvis"])
    with pytest.raises(ValueError, match="unknown sensor site 'knee'; accepted: pelvis"):
        import_files("xsens", [path], tmp_path / "o.stclip", sites=["00B44444=knee"])
    with pytest.raises(ValueError, match="not KEY=SITE"):
        import_files("xsens", [path], tmp_path / "o.stclip", sites=["pelvis"])
    with pytest.raises(ValueError, match="given to both"):
        import_files("xsens", [path, other], tmp_path / "o.stclip", sites={"00B44444": "pelvis", "00B45555": "pelvis"})


# ------------------------------------------------------------------------------------------------ samples CSV
def _full_clip(path):
    with ClipWriter(path, metadata={"patient": {"pseudonym": "P-9", "height_m": 1.8}}) as w:
        w.add_sensor({"sensor_id": "WT-1", "site": "pelvis", "nominal_rate_hz": 100.0, "protocol": "witmotion"})
        for k in range(300):
            status = DeviceStatus(battery_pct=80.0, rssi_dbm=-61.0, acc_clip_count=k // 100) if k % 50 == 0 else None
            w.add(
                ImuSample(
                    "WT-1", Site.PELVIS, k * 0.01 + 1e-7, 5000.123456789 + k * 0.01, k, (0.1 * k, -0.2, 9.80665),
                    (1e-3, 2e-3, -3e-3), mag_ut=(20.1, 0.3, -44.4), quat_wxyz=(0.9, 0.1, 0.2, 0.3), status=status,
                )
            )  # fmt: skip
            w.add(ImuSample("WT-2", Site.SHANK_R, None, 5000.125 + k * 0.01, None, (0.0, 0.0, 9.8), (0.5, 0.0, 0.0)))
        w.add(LinkEvent("WT-2", Site.SHANK_R, LinkState.GAP, 5001.0, "sequence jump", 3))


def test_samples_csv_round_trip_is_bit_exact(tmp_path):
    _full_clip(tmp_path / "a.stclip")
    clip = read_clip(tmp_path / "a.stclip")
    n_rows = export_csv(clip, tmp_path / "a.csv")
    assert n_rows == 600
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "# stridetwin.samples-csv/1"
    assert ",".join(HEADER) in lines
    back = import_files("csv", [tmp_path / "a.csv"], tmp_path / "b.stclip")
    assert [s.site for s in back.sensors] == [Site.PELVIS, Site.SHANK_R]
    again = read_clip(tmp_path / "b.stclip")
    assert again.metadata["patient"] == clip.metadata["patient"]
    assert again.link_events == clip.link_events
    for sid, a in clip.sensors.items():
        b = again.sensors[sid]
        assert b.fields_present == a.fields_present
        assert {k: v for k, v in b.info.items() if k != "index"} == {k: v for k, v in a.info.items() if k != "index"}
        for name in a.fields_present | {"device_time_s", "seq", "acc_m_s2", "gyr_rad_s"}:
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y, err_msg=f"{sid}.{name}")


def test_hand_made_csv_with_few_columns_and_a_truncated_last_line(tmp_path):
    path = tmp_path / "hand.csv"
    path.write_text(
        "sensor_id,host_time_s,acc_x_m_s2,acc_y_m_s2,acc_z_m_s2,note\n"
        "L1,0.0,0,0,9.8,a\nL1,0.01,0,0,9.8,b\nL1,0.02,0,0,9."
    )
    report = import_files("csv", [path], tmp_path / "h.stclip", sites=["L1=shank_l"])
    assert report.sensors[0].n_samples == 2
    notes = " ".join(report.sensors[0].notes)
    assert "columns not used: note" in notes
    assert "dropped 1 malformed row(s) (lines 4)" in notes
    s = read_clip(tmp_path / "h.stclip").sensors["L1"]
    assert np.isnan(s.gyr_rad_s).all()
    assert s.site is Site.SHANK_L
    incomplete = tmp_path / "inc.csv"
    incomplete.write_text("sensor_id,host_time_s,acc_x_m_s2\nL1,0,1\n")
    with pytest.raises(RecordingFormatError, match="incomplete column group"):
        import_files("csv", [incomplete], tmp_path / "i.stclip", sites=["L1=pelvis"])
