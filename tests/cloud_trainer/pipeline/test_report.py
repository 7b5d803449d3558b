"""The report: its documented keys, strict JSON, the decision-support statement and one row per level in the HTML,
and the highlight rules (each with a source)."""

from __future__ import annotations

import copy
import html
import json

import pytest

from cloud_trainer.pipeline.evaluate import EvalProtocol, evaluate_level
from cloud_trainer.pipeline.report import (
    DECISION_SUPPORT,
    REPORT_SCHEMA,
    THRESHOLDS,
    build_report,
    highlights,
    write_report_html,
    write_report_json,
)
from cloud_trainer.pipeline.rollout import EvalSetting
from tests.cloud_trainer.pipeline.conftest import hold_pose

REPORT_KEYS = {
    "schema", "created_utc", "decision_support", "patient", "level_ground", "tasks", "thresholds", "artifacts", "run",
    "notes",
}  # fmt: skip
LEVEL_KEYS = {
    "task", "level", "label", "terrain", "course", "goal", "episode_limit_s", "n_episodes", "reached", "falls",
    "speed_m_s", "distance_m_mean", "trunk_sway", "posture_similarity", "compensation", "activation",
    "push_robustness", "representative_episode", "eval_wall_s",
}  # fmt: skip
RULES = {t.key: t for t in THRESHOLDS}


@pytest.fixture(scope="module")
def documents(stand_reference):
    """Level documents of a model standing on flat ground and on two stairs levels (short, no push)."""
    protocol = EvalProtocol(n_episodes=2, duration_s=1.5, push=None)
    ground = evaluate_level(hold_pose, EvalSetting("walk", None, (stand_reference,), affected_side="left"), protocol)
    levels = [
        evaluate_level(hold_pose, EvalSetting("stairs", k, (stand_reference,), affected_side="left"), protocol)
        for k in (1, 2)
    ]
    return ground.document, [lv.document for lv in levels]


@pytest.fixture(scope="module")
def report(documents):
    ground, levels = documents
    return build_report(
        patient={"pseudonym": "P-<0042>", "height_m": 1.75, "mass_kg": 70.0, "sex": "male", "affected_side": "left",
                 "speed_m_s": 0.7, "stride_length_m": 0.8},
        level_ground=ground, tasks={"stairs": levels}, run={"budget": "smoke"},
    )  # fmt: skip


def test_report_has_the_documented_keys_and_is_strict_json(report, tmp_path):
    assert set(report) == REPORT_KEYS
    assert report["schema"] == REPORT_SCHEMA == "stridetwin.report/1"
    assert report["decision_support"] == DECISION_SUPPORT
    assert set(report["tasks"]["stairs"]) == {"levels", "summary", "onnx", "training"}
    for level in report["tasks"]["stairs"]["levels"]:
        assert set(level) >= LEVEL_KEYS | {"highlights"}
    assert set(report["level_ground"]) >= LEVEL_KEYS
    assert all(t["source"] for t in report["thresholds"])
    path = tmp_path / "report.json"
    write_report_json(report, path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))


def test_html_states_decision_support_and_has_a_row_per_level(report, tmp_path):
    path = tmp_path / "report.html"
    write_report_html(report, path)
    page = path.read_text()
    assert page.count(html.escape(DECISION_SUPPORT)) == 2  # top and bottom
    assert "not a prescription" in page
    assert "P-&lt;0042&gt;" in page
    assert "P-<0042>" not in page
    assert "Level 1: flat" in page
    assert "Level 2: 10 steps of 3.75 cm" in page
    assert "Level ground (patient" in page
    assert "<svg" in page
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    for threshold in THRESHOLDS:
        assert html.escape(threshold.source) in page


def test_highlights_follow_their_thresholds(documents):
    ground, (level, _) = documents
    # standing still, the model never reaches the top: the only highlight of an unchanged level
    assert [h["key"] for h in highlights(level, ground, RULES)] == ["not_reached"]
    changed = copy.deepcopy(level)
    changed["trunk_sway"]["peak_to_peak_deg"] = ground["trunk_sway"]["peak_to_peak_deg"] + 6.0
    changed["compensation"]["swing_time_ratio"] = 1.07
    changed["falls"].update(n=1, summary="1 over step 3")
    keys = [h["key"] for h in highlights(changed, ground, RULES)]
    assert keys == ["falls", "not_reached", "asymmetry", "trunk_sway"]
    changed["trunk_sway"]["peak_to_peak_deg"] = ground["trunk_sway"]["peak_to_peak_deg"] + 4.0
    assert "trunk_sway" not in [h["key"] for h in highlights(changed, ground, RULES)]


def test_compensation_highlights_compare_the_paretic_side_with_level_ground(documents):
    ground, (level, _) = documents
    ground, changed = copy.deepcopy(ground), copy.deepcopy(level)  # standing: no swings, so set walking values
    before = ground["compensation"]["sides"]["left"]
    before.update(knee_flexion_range_deg=60.0, swing_hip_abduction_deg=4.0, pelvic_hike_deg=3.0)
    after = changed["compensation"]["sides"]["left"]
    after.update(knee_flexion_range_deg=54.5, swing_hip_abduction_deg=11.0, pelvic_hike_deg=5.0)
    changed["compensation"]["sides"]["right"]["knee_flexion_range_deg"] = 0.0  # the non-paretic side is not judged
    found = [h for h in highlights(changed, ground, RULES) if h["key"] != "not_reached"]
    assert [h["key"] for h in found] == ["knee_range", "circumduction"]
    assert found[0]["text"].startswith("paretic knee flexion range")


def _stairs_page(documents, training: dict, tmp_path) -> str:
    """The HTML page of a report with five stairs levels (copies of one level's document) and ``training``."""
    ground, levels = documents
    doc = build_report(
        patient={"pseudonym": "P-1", "height_m": 1.75, "mass_kg": 70.0, "sex": "male", "affected_side": "left",
                 "speed_m_s": 0.7, "stride_length_m": 0.8},
        level_ground=ground, tasks={"stairs": [dict(levels[0], level=k) for k in range(1, 6)]},
        training={"stairs": training},
    )  # fmt: skip
    path = tmp_path / "report.html"
    write_report_html(doc, path)
    return html.unescape(path.read_text())


@pytest.mark.parametrize(("mastered", "text"), [
    (0, "The model mastered no level in training."), (1, "The model mastered level 1 in training."),
    (3, "The model mastered levels 1 to 3 in training."), (5, "The model mastered all 5 levels in training."),
])  # fmt: skip
def test_html_says_which_levels_the_model_learned_and_how_to_read_the_others(documents, mastered, text, tmp_path):
    page = _stairs_page(documents, {"levels_mastered": mastered}, tmp_path)
    assert text in page
    assert ("not as proof that the patient cannot walk that level" in page) == (mastered < 5)
    assert "this computer trained fewer samples" not in page


def test_html_says_when_training_stopped_at_the_time_limit(documents, tmp_path) -> None:
    page = _stairs_page(documents, {"levels_mastered": 2, "stopped": "time limit reached"}, tmp_path)
    assert "within this run's time limit (this computer trained fewer samples" in page


def test_html_states_the_training_figures_in_words(documents, tmp_path) -> None:
    training = {"levels_mastered": 3, "complete": False, "samples": 3039232, "wall_s": 959.88,
                "stopped": "sample budget spent", "curriculum": {"level": 4}}  # fmt: skip
    page = _stairs_page(documents, training, tmp_path)
    expected = "Training: 3 of 5 levels mastered; 3,039,232 simulated control steps in 16 min 00 s; stopped: sample"
    assert f"{expected} budget spent." in page
    assert "959.88" not in page
    assert "complete: False" not in page
