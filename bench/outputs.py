"""What the patient outputs cost, and the atlas on flat ground as a reference point (issue 5, "What comes back").

- **ONNX**: export of the shipped atlas policy (3×256) with its parity check (512 random + real observations),
  seconds, the largest |ONNX Runtime − PyTorch|, and one ``OnnxPolicy.act`` on a single observation, µs.
- **Video**: 10 s of the atlas walking up the level-3 ramp, rendered side and front at 320×240 per view, 30 fps, with
  the reference ghost, through each OpenGL backend; seconds of rendering and encoding per second of video, and the
  child process's whole wall time per second of video (start, model build and GL context included).
- **Report**: ``build_report`` + ``report.json`` + ``report.html`` for a run of 11 level documents, seconds.
- **Atlas on flat ground**: 4 deterministic episodes of 10 s at 1.0 m/s and 1.28 m strides (its first library
  reference): trunk sway, posture similarity to the reference, speed; and push robustness with the default
  protocol (0.2 s pushes on the pelvis at mid right single support, 4.35 m along the course, 3 rounds × 7).

``quick``: 2 s of video at 160×120, the EGL backend only, 2 episodes of 4 s, a 1-round push test.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.memory import peak_rss_mb
from cloud_trainer.atlas.references import atlas_references
from cloud_trainer.atlas.weights import load_atlas
from cloud_trainer.pipeline.evaluate import EvalProtocol, evaluate_level
from cloud_trainer.pipeline.onnx_export import export_onnx
from cloud_trainer.pipeline.onnx_policy import OnnxPolicy
from cloud_trainer.pipeline.push import PushProtocol
from cloud_trainer.pipeline.report import build_report, write_report_html, write_report_json
from cloud_trainer.pipeline.rollout import EvalSetting, run_rollouts
from cloud_trainer.pipeline.video import VideoError, VideoJob, VideoOptions, render_videos
from cloud_trainer.twin.model import build_twin

GOAL = (1.0, 1.28)


def run(quick: bool = False) -> dict:
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(threads_before)


def _run(quick: bool) -> dict:
    atlas = load_atlas()
    reference = atlas_references(build_twin().model)[0]
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="stridetwin-bench-outputs-") as tmp:
        folder = Path(tmp)
        # --- ONNX
        stairs = EvalSetting("stairs", 3, (reference,), goal=(0.8, 0.6))
        started = time.perf_counter()
        export = export_onnx(atlas, folder / "policy_stairs.onnx", stairs)
        results["onnx_export_and_parity_s"] = round(time.perf_counter() - started, 3)
        results["onnx_export_s"] = export.manifest["timing_s"]["export"]
        results["onnx_parity_s"] = export.manifest["timing_s"]["verify"]
        verification = export.manifest["verification"]
        results["onnx_max_abs_diff"] = max(verification["max_abs_diff_random"], verification["max_abs_diff_real"])
        policy = OnnxPolicy(export.onnx_path)
        obs = np.zeros(export.manifest["observation"]["width"], np.float32)
        n = 200 if quick else 2000
        started = time.perf_counter()
        for _ in range(n):
            policy.act(obs)
        results["onnx_act_us"] = round(1e6 * (time.perf_counter() - started) / n, 1)

        # --- video
        ramp = EvalSetting("slope", 3, (reference,), goal=GOAL)  # a ramp the atlas walks up without falling
        walk = run_rollouts(atlas, ramp, n_episodes=1, duration_s=2.0 if quick else 10.0)
        rows = walk.episode(0)
        job = VideoJob(
            folder / "video.mp4", ramp.terrain, walk.qpos[rows, 0], ghost_qpos=walk.ghost_qpos[rows, 0],
            title="Slope 3: 9 m ramp rising 0.38 m (1:24)", lines=("reached 1/1", "trunk sway 8.0 deg"),
        )  # fmt: skip
        size = {"width": 160, "height": 120} if quick else {"width": 320, "height": 240}
        for backend in ("egl",) if quick else ("egl", "osmesa"):
            started = time.perf_counter()
            try:
                (video,) = render_videos([job], VideoOptions(**size, fps=30.0, backend=backend))
            except VideoError as exc:
                results[f"video_{backend}"] = f"failed: {exc}"
                continue
            wall = time.perf_counter() - started
            results[f"video_{backend}"] = {
                "size": f"{video.width}x{video.height}", "fps": video.fps, "video_s": video.duration_s,
                "render_s_per_video_s": round(video.render_s / video.duration_s, 3),
                "encode_s_per_video_s": round(video.encode_s / video.duration_s, 3),
                "child_wall_s_per_video_s": round(wall / video.duration_s, 3), "bytes_per_video_s":
                round(video.size_bytes / video.duration_s),
            }  # fmt: skip

        # --- atlas on flat ground, and the report built from 11 copies of its level document
        protocol = EvalProtocol(
            n_episodes=2 if quick else 4, duration_s=4.0 if quick else 10.0,
            push=PushProtocol(n_per_round=3, n_rounds=1) if quick else PushProtocol(),
        )  # fmt: skip
        flat = evaluate_level(atlas, EvalSetting("walk", None, (reference,), goal=GOAL), protocol)
        doc = flat.document
        push = doc["push_robustness"]
        results["atlas_flat"] = {
            "goal_speed_m_s": GOAL[0], "goal_stride_length_m": GOAL[1], "episodes": doc["n_episodes"],
            "falls": doc["falls"]["n"], "speed_m_s": doc["speed_m_s"],
            "trunk_sway_peak_to_peak_deg": doc["trunk_sway"]["peak_to_peak_deg"],
            "trunk_sway_rms_deg": doc["trunk_sway"]["rms_deg"],
            "posture_similarity_pct": (doc["posture_similarity"] or {}).get("similarity_pct"),
            "push_forward_n": push["forward_n"],
            "push_left_n": push["directions"]["left"]["largest_survived_n"],
            "push_right_n": push["directions"]["right"]["largest_survived_n"],
            "push_resolution_n": _resolution(push), "push_s": push["wall_s"],
        }  # fmt: skip
        levels = [doc | {"level": k, "task": "slope"} for k in range(1, 6)]
        started = time.perf_counter()
        report = build_report(
            patient={"pseudonym": "BENCH", "height_m": 1.75, "mass_kg": 70.0, "sex": "male", "affected_side": None,
                     "speed_m_s": GOAL[0], "stride_length_m": GOAL[1]},
            level_ground=doc, tasks={"slope": levels, "stairs": [lv | {"task": "stairs"} for lv in levels]},
        )  # fmt: skip
        write_report_json(report, folder / "report.json")
        write_report_html(report, folder / "report.html")
        results["report_build_s"] = round(time.perf_counter() - started, 4)
        results["report_html_bytes"] = (folder / "report.html").stat().st_size
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return results


def _resolution(push: dict) -> float | None:
    widths = [
        d["smallest_failed_n"] - d["largest_survived_n"]
        for d in push["directions"].values()
        if d["smallest_failed_n"] is not None and d["largest_survived_n"] is not None
    ]
    return round(max(widths), 1) if widths else None
