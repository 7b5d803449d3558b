"""The recording commands end to end: import, inspect (text and JSON), export, recover, record's errors."""

from __future__ import annotations

import json

import pytest

from sensor_drivers.recording.clipfile import ClipWriter, read_clip
from sensor_drivers.sample import ImuSample
from sensor_drivers.sites import KIT_SITES
from stridetwin.cli import main

XSENS_HEADER = "PacketCounter\tSampleTimeFine\tAcc_X\tAcc_Y\tAcc_Z\tGyr_X\tGyr_Y\tGyr_Z"


def _xsens_files(tmp_path, n_rows: int = 300, lose=()):
    files = []
    for i, site in enumerate(KIT_SITES):
        rows = [
            f"{k}\t{1000 + 100 * k}\t0.1\t0.2\t9.8\t0.01\t0.02\t0.03"
            for k in range(n_rows)
            if not (i == 2 and k in lose)
        ]
        path = tmp_path / f"MT_0001_00B4000{i}.txt"
        path.write_text("// Update Rate: 100.0Hz\n" + XSENS_HEADER + "\n" + "\n".join(rows) + "\n")
        files.append((path, site))
    return files


def _import(tmp_path, capsys, **kwargs):
    files = _xsens_files(tmp_path, **kwargs)
    out = tmp_path / "walk.stclip"
    argv = ["import", "xsens", *(str(p) for p, _ in files), "--out", str(out), "--pseudonym", "P-0042"]
    for p, site in files:
        argv += ["--site", f"{p.stem.split('_')[-1]}={site.value}"]
    assert main(argv) == 0
    return out, capsys.readouterr().out


def test_import_then_inspect_text_and_json(tmp_path, capsys):
    out, printed = _import(tmp_path, capsys, lose=range(100, 130))
    assert "wrote" in printed
    assert "00B40000 → pelvis: 300 samples" in printed

    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "schema 1.0, finished" in text
    assert "patient P-0042" in text
    header = next(line for line in text.splitlines() if line.startswith("sensor"))
    assert header.split() == ["sensor", "site", "samples", "rate", "Hz", "nominal", "loss", "%", "gaps", "jitter",
                              "ms", "p99", "ms", "drift", "ppm"]  # fmt: skip
    row = next(line for line in text.splitlines() if line.startswith("00B40002"))
    assert row.split()[:3] == ["00B40002", "thigh_r", "270"]
    assert row.split()[5] == "10.00"  # 30 of 300 lost
    assert "gap 00B40002 (thigh_r): 0.990-1.300 s, 310 ms, ~30 sample(s)" in text

    assert main(["inspect", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "stridetwin.inspect/1"
    assert doc["finished"] is True
    sensors = {s["sensor_id"]: s for s in doc["sensors"]}
    assert sensors["00B40002"]["n_lost"] == 30
    assert sensors["00B40002"]["gaps"] == [
        {"start_s": pytest.approx(0.99), "end_s": pytest.approx(1.3), "duration_s": pytest.approx(0.31),
         "n_missing": 30, "edge": ""}
    ]  # fmt: skip
    assert sensors["00B40000"]["drift_ppm"] is None
    assert doc["metadata"]["import"]["format"] == "xsens"


def test_export_csv_and_import_it_back(tmp_path, capsys):
    out, _ = _import(tmp_path, capsys)
    csv = tmp_path / "walk.csv"
    assert main(["export", "csv", str(out), "--out", str(csv)]) == 0
    assert "1500 samples of 5 sensor(s)" in capsys.readouterr().out
    assert main(["export", "csv", str(out), "--out", str(csv)]) == 2
    assert "already exists" in capsys.readouterr().err
    back = tmp_path / "back.stclip"
    assert main(["import", "csv", str(csv), "--out", str(back)]) == 0
    assert read_clip(back).metadata["patient"]["pseudonym"] == "P-0042"


def test_recover_and_inspect_an_unfinished_clip(tmp_path, capsys):
    path = tmp_path / "crashed.stclip"
    writer = ClipWriter(path)
    for k in range(500):
        writer.add(ImuSample("S", KIT_SITES[0], k / 200, k / 200, k, (0.0, 0.0, 9.8), (0.0, 0.0, 0.0)))
    writer.flush()  # the process "dies" here: no footer
    assert main(["inspect", str(path)]) == 0
    assert "UNFINISHED" in capsys.readouterr().out
    assert main(["recover", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "crashed.recovered.stclip" in printed
    assert "S: 500 samples" in printed
    assert main(["inspect", str(tmp_path / "crashed.recovered.stclip")]) == 0
    assert "recovered after a crash" in capsys.readouterr().out
    writer.close()
    assert main(["recover", str(path)]) == 0
    assert "nothing to recover" in capsys.readouterr().out


def test_user_errors_are_one_line_with_status_2(tmp_path, capsys):
    text_file = tmp_path / "notes.csv"
    text_file.write_text("sep=,\nPacketCounter,SampleTimeFine\n")
    cases = [
        (["inspect", str(tmp_path / "missing.stclip")], "no such file"),
        (["inspect", str(text_file)], "not a StrideTwin clip"),
        (["import", "xsens", str(text_file), "--site", "notes=pelvis", "--out", str(tmp_path / "o.stclip")],
         "not an Xsens MT Manager text export"),
        (["import", "dot", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.stclip")], "no such file"),
        (["record", "--source", "bogus:thing", "--duration", "1", "--out", str(tmp_path / "r.stclip")], ""),
        (["record", "--source", "sim:x", "--duration", "-1", "--out", str(tmp_path / "r.stclip")], "positive"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"stridetwin {argv[0]}: error:")
        assert message in err
        assert "Traceback" not in err
    assert not (tmp_path / "o.stclip").exists()
    assert not (tmp_path / "r.stclip").exists()


@pytest.mark.shared_data
def test_import_and_inspect_the_opensense_export(shared_data_dir, tmp_path, capsys):
    folder = shared_data_dir / "imu" / "opensense_xsens" / "OpenSenseExampleIMUData"
    sites = {"00B42279": "pelvis", "00B4227C": "thigh_r", "00B4227D": "shank_r", "00B421EE": "thigh_l",
             "00B421ED": "shank_l"}  # fmt: skip
    files = [str(p) for p in sorted(folder.glob("*.txt")) if p.stem.split("_")[-1] in sites]
    out = tmp_path / "opensense.stclip"
    argv = ["import", "xsens", *files, "--out", str(out)] + [f"--site={k}={v}" for k, v in sites.items()]
    assert main(argv) == 0
    assert "no gyroscope columns" in capsys.readouterr().out
    assert main(["inspect", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["n_samples"] for s in doc["sensors"]] == [2481, 2452, 2493, 2474, 2505]
    assert all(s["loss_pct"] == 0.0 for s in doc["sensors"])
    assert all(s["effective_rate_hz"] == pytest.approx(100.0) for s in doc["sensors"])
