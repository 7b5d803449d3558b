"""Videos: a tiny render through each OpenGL backend produces a decodable MP4 of the right size and length, with
pixels that are not blank; bad options are refused."""

from __future__ import annotations

import av
import numpy as np
import pytest

from cloud_trainer.pipeline.rollout import EvalSetting, run_rollouts
from cloud_trainer.pipeline.video import VideoJob, VideoOptions, render_videos
from tests.cloud_trainer.pipeline.conftest import hold_pose


@pytest.fixture(scope="module")
def walk(stand_reference):
    """Eight control steps of a model standing on the stairs course (poses and reference ghost)."""
    record = run_rollouts(hold_pose, EvalSetting("stairs", 5, (stand_reference,)), n_episodes=1, duration_s=0.25)
    return record.qpos[:, 0], record.ghost_qpos[:, 0]


@pytest.mark.parametrize("backend", ["egl", "osmesa"])
def test_tiny_render_is_a_decodable_mp4(walk, tmp_path, backend):
    qpos, ghost = walk
    job = VideoJob(tmp_path / "v.mp4", "stairs:5", qpos, ghost_qpos=ghost, title="Stairs 5", lines=("sway 3.0°",))
    seen = []
    (result,) = render_videos([job], VideoOptions(width=64, height=48, fps=30.0, backend=backend), seen.append)
    assert seen == [result]
    assert result.backend == backend
    assert result.path == job.path
    assert result.n_frames == len(qpos)
    assert result.width == 128
    assert result.height == 48
    assert result.duration_s == pytest.approx(len(qpos) / 30)
    with av.open(str(job.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(qpos)
    assert frames[0].shape == (48, 128, 3)
    assert frames[0].std() > 10.0  # sky, floor, body: not one colour
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_long_walks_keep_their_end(walk, tmp_path):
    qpos, _ = walk
    job = VideoJob(tmp_path / "v.mp4", "flat", np.repeat(qpos, 4, axis=0))  # 32 steps ≈ 1.07 s
    (result,) = render_videos([job], VideoOptions(width=32, height=24, fps=15.0, max_duration_s=0.4, ghost=False))
    assert result.n_frames == 6
    assert result.duration_s == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"width": 63}, "even"), ({"views": ("top",)}, "views"), ({"backend": "glx"}, "backend")],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VideoOptions(**kwargs)


def test_key_numbers_are_shared_between_two_views():
    from cloud_trainer.pipeline.video import _text_layout

    title, lines = "Stairs 2", ["reached 3/4", "trunk sway 18.1°", "push 120 N"]
    side, front, *names = _text_layout(title, lines, ("side", "front"))
    assert (side[0], side[2]) == (0, "Stairs 2\nreached 3/4")
    assert (front[0], front[2]) == (1, "trunk sway 18.1 deg\npush 120 N")  # overlay fonts are ASCII
    assert [(k, text) for k, _, text, _ in names] == [(0, "side view"), (1, "front view")]
    only, _ = _text_layout(title, lines, ("side",))
    assert only[2].splitlines() == ["Stairs 2", "reached 3/4", "trunk sway 18.1 deg", "push 120 N"]
