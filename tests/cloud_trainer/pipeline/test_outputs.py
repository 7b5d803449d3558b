"""The EXPORT stage end to end at the smoke budget: every artifact is written, listed with its checksum, linked from
the report, and progress is reported; a cancellation stops it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading

import pytest
import torch

from cloud_trainer.envs.constants import OBSERVATION_WIDTH
from cloud_trainer.learn.ppo import GaussianPolicy, PPOArgs
from cloud_trainer.pipeline.angles import ANGLE_COLUMNS
from cloud_trainer.pipeline.api import Stage
from cloud_trainer.pipeline.outputs import ExportCancelled, ExportOptions, PatientInfo, TaskOutput, export_outputs
from cloud_trainer.twin.anthropometry import Anthropometry

PATIENT = PatientInfo("P-0042", Anthropometry(1.68, 64.0, "female"), "left", speed_m_s=0.7, stride_length_m=0.9)


@pytest.fixture(scope="module")
def untrained():
    torch.manual_seed(0)
    return GaussianPolicy(OBSERVATION_WIDTH, 22, PPOArgs(policy_hidden=(32, 32))).eval()


@pytest.fixture(scope="module")
def smoke_options():
    options = ExportOptions.for_budget("smoke")
    return dataclasses.replace(options, duration_s=1.0, videos=dataclasses.replace(options.videos, max_duration_s=0.5))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, untrained, walk_reference, smoke_options):
    out = tmp_path_factory.mktemp("run")
    events = []
    result = export_outputs(
        out, patient=PATIENT, references=[walk_reference], level_ground_policy=untrained,
        tasks=[TaskOutput("slope", untrained, levels=(1, 5), training={"levels_mastered": 0}),
               TaskOutput("stairs", untrained, levels=(3,))],
        options=smoke_options, run={"budget": "smoke", "method": "hybrid"}, on_progress=events.append,
    )  # fmt: skip
    return out, result, events


def test_every_artifact_is_written_and_listed(exported):
    out, result, _ = exported

    def key(k):
        return k[0], k[1] or "", k[2] or 0

    kinds = sorted(((a.kind, a.task, a.level) for a in result.artifacts), key=key)
    expected = [("angles_csv", None, None), ("angles_csv", "slope", 1), ("angles_csv", "slope", 5),
                ("angles_csv", "stairs", 3), ("manifest", "slope", 5), ("manifest", "stairs", 3),
                ("onnx", "slope", 5), ("onnx", "stairs", 3), ("report_html", None, None),
                ("report_json", None, None), ("video", None, None), ("video", "slope", 1), ("video", "slope", 5),
                ("video", "stairs", 3)]  # fmt: skip
    assert kinds == sorted(expected, key=key)
    for artifact in result.artifacts:
        data = (out / artifact.path).read_bytes()
        assert artifact.sha256 == hashlib.sha256(data).hexdigest()
        assert artifact.size_bytes == len(data)
    header = (out / "angles" / "angles_stairs_3.csv").read_text().splitlines()[0]
    assert header == ",".join(["time_s", *ANGLE_COLUMNS])


def test_report_links_every_file_and_names_the_parts(exported):
    out, result, _ = exported
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    assert [lv["level"] for lv in report["tasks"]["slope"]["levels"]] == [1, 5]
    assert report["tasks"]["stairs"]["onnx"]["verified"] is True
    assert report["tasks"]["slope"]["training"] == {"levels_mastered": 0}
    assert report["patient"]["pseudonym"] == "P-0042"
    assert report["patient"]["affected_side"] == "left"
    assert report["notes"] == []
    page = (out / "report.html").read_text()
    for link in set(re.findall(r'href="([^"]+)"', page)):
        assert (out / link).is_file(), link
    assert {a["path"] for a in report["artifacts"]} >= {"videos/video_slope_5.mp4", "policies/policy_slope.onnx"}
    assert set(report["run"]["export"]["timing_s"]) == {"evaluation", "onnx", "videos", "report"}


def test_progress_events_count_up_to_the_end(exported):
    _, _, events = exported
    assert all(e.stage is Stage.EXPORT for e in events)
    assert [e.samples for e in events] == sorted(e.samples for e in events)
    assert events[-1].samples == events[-1].samples_total - 1  # the report, the last item, is being written
    assert any("rendered video_stairs_3.mp4" in e.message for e in events)


def test_a_cancelled_export_stops(untrained, walk_reference, smoke_options, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ExportCancelled):
        export_outputs(tmp_path, patient=PATIENT, references=[walk_reference], level_ground_policy=untrained,
                       tasks=[TaskOutput("slope", untrained)], options=smoke_options, cancel=cancel)  # fmt: skip
    assert not (tmp_path / "report.json").exists()


def test_budget_presets():
    assert ExportOptions.for_budget("smoke").push is None
    assert ExportOptions.for_budget("quick").push.n_rounds == 2
    with pytest.raises(ValueError, match="accepted smoke, quick, full"):
        ExportOptions.for_budget("huge")
