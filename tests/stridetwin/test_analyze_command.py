"""``stridetwin analyze`` (text, JSON, angle CSV) and ``stridetwin export c3d`` end to end on a virtual walk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sensor_drivers.sim.clip_export import write_virtual_clip
from stridetwin.cli import main
from tests.capture_app.core.session.conftest import generate


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("analyze") / "walk.stclip"
    write_virtual_clip(generate("hemiparetic", side="left", speed="0.5", seed="31"), path)
    return path


def test_analyze_text_json_and_angles_csv(walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(walk)]) == 0
    text = capsys.readouterr().out
    assert "patient VIRTUAL-HEMIPARETIC-31" in text
    assert "affected side left" in text
    assert "strides (" in text
    assert "steady" in text
    assert "cadence_steps_min" in text
    assert "joint angles over the steady walk" in text
    assert "knee_flexion_l_deg" in text

    out = tmp_path / "angles.csv"
    assert main(["analyze", str(walk), "--json", "--angles-csv", str(out)]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout stays pure JSON; the CSV note goes to stderr
    assert f"wrote {out}" in captured.err
    assert doc["schema"] == "stridetwin.analyze/1"
    assert doc["strides"][0]["side"] in ("left", "right")
    assert isinstance(doc["strides"][0]["ic_s"], float)
    assert "gait_speed_m_s" in doc["metrics"] or "gait_speed_m_s" in doc["missing"]
    with out.open() as fh:
        header = next(csv.reader(fh))
    assert header[0] == "time_s"
    assert "knee_flexion_l_deg" in header
    assert "hip_flexion_r_deg" in header
    assert main(["analyze", str(walk), "--angles-csv", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_analyze_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "missing.stclip")]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.stclip"
    junk.write_bytes(b"hello")
    assert main(["analyze", str(junk)]) == 2
    assert "error" in capsys.readouterr().err


def test_export_c3d(walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ezc3d = pytest.importorskip("ezc3d")
    out = tmp_path / "walk.c3d"
    assert main(["export", "c3d", str(walk), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "analog channel(s) at 200 Hz" in printed
    c3d = ezc3d.c3d(str(out))
    labels = list(c3d["parameters"]["EVENT"]["LABELS"]["value"])
    assert {"Foot Strike", "Foot Off"} <= set(labels)
    assert main(["export", "c3d", str(walk), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_demo_summary_and_truth_check(walk: Path) -> None:
    from capture_app.core.session.analysis import WalkAnalysis
    from sensor_drivers.recording.clipfile import read_clip
    from stridetwin.commands.demo import _truth, format_summary, format_truth_check

    doc = WalkAnalysis().analyze(read_clip(walk)).to_json()
    summary = format_summary(doc)
    assert "overall:" in summary
    assert "gait_speed_m_s" in summary
    assert "knee_flexion_r_deg" in summary
    truth = _truth(walk)
    assert truth is not None
    from sensor_drivers.sim.clip_export import truth_to_clip_offset_s

    check = format_truth_check(doc, truth, truth_to_clip_offset_s(read_clip(walk).metadata))
    assert "check against the simulation's truth" in check
    contacts = next(line for line in check.splitlines() if "initial contacts" in line)
    assert int(contacts.split()[2]) >= len([s for s in truth.strides if s.steady])  # every steady contact matched
    assert float(contacts.split("mean |error|")[1].split()[0]) <= 20.0  # the event timing target, ms
    speed_line = next(line for line in check.splitlines() if "gait speed" in line)
    found, true, error = speed_line.split()[-4], speed_line.split()[-3], speed_line.split()[-2]
    assert float(true) == pytest.approx(truth.steady_speed_m_s, abs=1e-3)
    assert abs(float(error)) == pytest.approx(abs(100 * (float(found) / float(true) - 1)), abs=0.2)
    assert _truth(walk.with_name("nothing.stclip")) is None


@pytest.mark.slow
def test_demo_runs_a_live_session_end_to_end(walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo on a short, sped-up walk (pace 4 compresses the host clock, so the analysis itself is not judged
    here), with a clip a crash left in the output folder."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "20260101T000000Z-OLD.stclip").write_bytes(walk.read_bytes()[:3000])
    source = "sim:healthy?transport=serial&protocol=stridetwin&pace=4&walkway=4&still_start=3&still_end=2"
    assert main(["demo", "--out", str(out), "--source", source]) == 0
    text = capsys.readouterr().out
    assert "note: The recording of VIRTUAL-HEMIPARETIC-31" in text
    assert "was interrupted" in text
    for marker in ("[1/5]", "sensors connected → placement check", "walking → stopped", "stopped → review",
                   "[2/5]", "[3/5]", "overall:", "check against the simulation's truth", "[4/5]",
                   "upload confirmed", "[5/5]"):
        assert marker in text, marker
    (clip,) = [p for p in out.glob("*-P-*.stclip")]  # named after the patient's pseudonym from the patient list
    assert "Erika" not in clip.read_bytes().decode("latin-1")
    assert (out / (clip.stem + ".truth.npz")).exists()
