"""MP4 videos of predicted walks: MuJoCo's offscreen renderer, side and front view side by side, numbers burnt in.

```python
jobs = [VideoJob(path=out / "video_stairs_3.mp4", terrain="stairs:3", qpos=qpos, ghost_qpos=ghost,
                 anthropometry=patient, title="Stairs 3: 10 steps of 7.5 cm", lines=("reached 4/4", "sway 8.1°"))]
results = render_videos(jobs, VideoOptions(width=320, height=240, fps=30))
```

Rendering runs in a child process (``python -m cloud_trainer.pipeline.video SPEC``): MuJoCo picks its OpenGL
backend from ``MUJOCO_GL`` once, when ``mujoco`` is first imported, and the pipeline imports it long before it renders;
a child also keeps a crash in a GL driver away from the run. The backend is ``options.backend``, else ``MUJOCO_GL``
of the environment, else EGL (Mesa's llvmpipe where there is no GPU) and, if the child fails or renders blank
frames, OSMesa. ``PYOPENGL_PLATFORM`` is set to the same backend (MuJoCo's OSMesa context rendered black frames
without it on the development machine).

Each frame: the walker's recorded pose (``qpos`` at the control rate, 30 Hz) and, optionally, the patient's
reference pose at the same instant drawn as a translucent "ghost" over it; two cameras following the pelvis
(smoothed over 1 s): the side view from the paretic side (else the right) and the front view from ahead of the
walker, the terrain in both; the title, the key numbers and the time drawn with MuJoCo's own overlay fonts.
Encoded with PyAV (libx264, yuv420p, CRF 23; MPEG-4 part 2 where the FFmpeg build lacks libx264).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud_trainer.errors import TrainerError
from cloud_trainer.twin.anthropometry import Anthropometry

BACKENDS = ("egl", "osmesa")
GHOST_RGBA = (0.25, 0.55, 1.0, 0.35)


class VideoError(TrainerError):
    """Videos could not be rendered or encoded with any OpenGL backend (the message says what each one reported)."""


@dataclass(frozen=True)
class VideoJob:
    """One video: a recorded walk on a course."""

    path: Path
    terrain: str
    #: Poses (T, 22) every ``dt_s``.
    qpos: np.ndarray
    anthropometry: Anthropometry | None = None
    #: The reference pose at the same instants (T, 22), drawn translucent over the walker; None: no ghost.
    ghost_qpos: np.ndarray | None = None
    title: str = ""
    #: Key numbers, one short line each (burnt in bottom left).
    lines: tuple[str, ...] = ()
    #: Side the side view looks from: "left" or "right".
    side_view_from: str = "right"
    dt_s: float = 1.0 / 30.0


@dataclass(frozen=True)
class VideoOptions:
    """Size, rate and look of the videos; the defaults keep rendering cheap."""

    #: Size of one view, pixels (the video is two views wide); even numbers (yuv420p).
    width: int = 320
    height: int = 240
    fps: float = 30.0
    views: tuple[str, ...] = ("side", "front")
    ghost: bool = True
    #: Longer walks keep only their last ``max_duration_s`` (the ramp or stairs, and how the walk ended); None: whole.
    max_duration_s: float | None = None
    #: OpenGL backend (``egl`` or ``osmesa``); None: ``MUJOCO_GL`` or EGL then OSMesa.
    backend: str | None = None
    crf: int = 23
    #: Seconds the child process may take per second of video (plus 30 s to start).
    timeout_s_per_video_s: float = 20.0

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16:
            raise ValueError(f"video size must be even and ≥ 16 px, got {self.width}×{self.height}")
        unknown = [v for v in self.views if v not in ("side", "front")]
        if unknown or not self.views:
            raise ValueError(f"views {list(self.views)}: each must be 'side' or 'front'")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r}: accepted {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class VideoResult:
    """A written video and what it cost."""

    path: Path
    n_frames: int
    width: int
    height: int
    fps: float
    duration_s: float
    render_s: float
    encode_s: float
    backend: str
    codec: str
    size_bytes: int

    @property
    def render_s_per_video_s(self) -> float:
        return (self.render_s + self.encode_s) / max(self.duration_s, 1e-9)


def render_videos(
    jobs: Sequence[VideoJob],
    options: VideoOptions | None = None,
    on_video: Callable[[VideoResult], None] | None = None,
) -> list[VideoResult]:
    """Render and encode every job in one child process (see the module docstring); ``on_video`` hears of each video
    as it is written.

    Raises:
        VideoError: every backend failed; the message holds each one's last error line.
    """
    options = options or VideoOptions()
    if not jobs:
        return []
    if options.backend:
        backends = [options.backend]
    elif os.environ.get("MUJOCO_GL", "").lower() in BACKENDS:
        backends = [os.environ["MUJOCO_GL"].lower()]
    else:
        backends = list(BACKENDS)
    video_s = sum(len(j.qpos) * j.dt_s for j in jobs)
    if options.max_duration_s is not None:
        video_s = sum(min(len(j.qpos) * j.dt_s, options.max_duration_s) for j in jobs)
    timeout_s = 30.0 + options.timeout_s_per_video_s * video_s
    errors = []
    with tempfile.TemporaryDirectory(prefix="stridetwin-video-") as tmp:
        spec_path = _write_spec(Path(tmp), jobs, options)
        for backend in backends:
            results, error = _run_child(spec_path, backend, timeout_s, Path(tmp) / f"stderr-{backend}.txt", on_video)
            if error is None:
                return results
            errors.append(f"{backend}: {error}")
    raise VideoError("could not render videos: " + "; ".join(errors))


def _run_child(
    spec_path: Path, backend: str, timeout_s: float, stderr_path: Path, on_video: Callable[[VideoResult], None] | None
) -> tuple[list[VideoResult], str | None]:
    """Run the rendering child with one backend; its results, or the reason it failed."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    deadline = time.monotonic() + timeout_s
    results: list[VideoResult] = []
    with open(stderr_path, "w+", encoding="utf-8") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "cloud_trainer.pipeline.video", str(spec_path)],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        timer = threading.Timer(timeout_s, child.kill)  # a hung GL driver must not hang the pipeline
        timer.start()
        try:
            for line in child.stdout:
                message = json.loads(line)
                result = VideoResult(
                    **(message["video"] | {"path": Path(message["video"]["path"]), "backend": backend})
                )
                results.append(result)
                if on_video is not None:
                    on_video(result)
            returncode = child.wait()
        except BaseException:  # a cancellation raised by on_video: stop our child, then pass it on
            child.kill()
            child.wait()
            raise
        finally:
            timer.cancel()
            child.stdout.close()
        if returncode == 0:
            return results, None
        if time.monotonic() >= deadline:
            return [], f"timed out after {timeout_s:.0f} s"
        stderr.seek(0)
        last = (stderr.read().strip().splitlines() or [f"exit status {returncode}"])[-1]
        return [], last


def _write_spec(folder: Path, jobs: Sequence[VideoJob], options: VideoOptions) -> Path:
    arrays = {}
    spec_jobs = []
    for k, job in enumerate(jobs):
        arrays[f"qpos_{k}"] = np.asarray(job.qpos, dtype=float)
        if job.ghost_qpos is not None and options.ghost:
            arrays[f"ghost_{k}"] = np.asarray(job.ghost_qpos, dtype=float)
        spec_jobs.append({
            "path": str(Path(job.path).resolve()), "terrain": job.terrain,
            "anthropometry": None if job.anthropometry is None else dataclasses.asdict(job.anthropometry),
            "title": job.title, "lines": list(job.lines), "side_view_from": job.side_view_from, "dt_s": job.dt_s,
            "ghost": f"ghost_{k}" in arrays,
        })  # fmt: skip
    np.savez(folder / "arrays.npz", **arrays)
    spec = {"options": dataclasses.asdict(options), "jobs": spec_jobs, "arrays": str(folder / "arrays.npz")}
    path = folder / "spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------- child process


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0, edges held."""
    if window <= 1 or len(values) < 2:
        return values
    pad = window // 2
    padded = np.concatenate([np.repeat(values[:1], pad, axis=0), values, np.repeat(values[-1:], pad, axis=0)])
    kernel = np.ones(window) / window
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid")[: len(values)] for k in range(values.shape[1])], 1)


class _Renderer:
    """A MuJoCo scene for one model in an offscreen GL context (made current by the caller, shared by all videos:
    creating one costs more than rendering a short video); renders the views of one frame side by side."""

    def __init__(self, model, width: int, height: int, n_views: int) -> None:
        import mujoco

        self.mujoco = mujoco
        self.model = model
        self.width, self.height, self.n_views = width, height, n_views
        total_w = width * n_views
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, total_w)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        model.vis.quality.shadowsize = 1024
        self.con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.con)
        self.scene = mujoco.MjvScene(model, maxgeom=1000)
        self.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self.option = mujoco.MjvOption()
        self.perturb = mujoco.MjvPerturb()
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.data = mujoco.MjData(model)
        self.ghost = mujoco.MjData(model)
        self.rgb = np.empty((height, total_w, 3), np.uint8)

    def frame(self, qpos, ghost_qpos, views: list[dict], texts: list[tuple[int, int, str, str]]) -> np.ndarray:
        """Pixels (height, width · n_views, 3) of one frame; ``texts``: (view index, grid position, left, right)."""
        mj = self.mujoco
        self.data.qpos[:] = qpos
        mj.mj_forward(self.model, self.data)
        if ghost_qpos is not None:
            self.ghost.qpos[:] = ghost_qpos
            mj.mj_kinematics(self.model, self.ghost)
        for k, view in enumerate(views):
            cam = self.camera
            cam.lookat[:] = view["lookat"]
            cam.distance, cam.azimuth, cam.elevation = view["distance"], view["azimuth"], view["elevation"]
            mj.mjv_updateScene(
                self.model, self.data, self.option, self.perturb, cam, mj.mjtCatBit.mjCAT_ALL, self.scene
            )
            if ghost_qpos is not None:
                first = self.scene.ngeom
                mj.mjv_addGeoms(
                    self.model, self.ghost, self.option, self.perturb, mj.mjtCatBit.mjCAT_DYNAMIC, self.scene
                )
                for g in range(first, self.scene.ngeom):
                    self.scene.geoms[g].rgba[:] = GHOST_RGBA
            viewport = mj.MjrRect(k * self.width, 0, self.width, self.height)
            mj.mjr_render(viewport, self.scene, self.con)
        for k, grid, left, right in texts:
            viewport = mj.MjrRect(k * self.width, 0, self.width, self.height)
            mj.mjr_overlay(mj.mjtFont.mjFONT_NORMAL, grid, viewport, left, right, self.con)
        mj.mjr_readPixels(self.rgb, None, mj.MjrRect(0, 0, self.width * self.n_views, self.height), self.con)
        return np.flipud(self.rgb)

    def close(self) -> None:
        self.con.free()


def _render_model(anthropometry: Anthropometry | None, terrain: str):
    """The twin on its course, dressed for the camera: a gradient sky, a checkered floor (so that a camera following
    the walker still shows it moving), a brighter headlight; and cheap to draw in software (Mesa's llvmpipe): no
    multisampling (it doubled the frame time), a coarse floor grid, coarser capsules."""
    import mujoco

    from cloud_trainer.twin.model import build_spec

    spec = build_spec(anthropometry, terrain)
    spec.add_texture(
        name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.75, 0.85, 0.95], rgb2=[0.95, 0.95, 0.97], width=64, height=64,
    )  # fmt: skip
    spec.add_texture(
        name="checker", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.62, 0.66, 0.66], rgb2=[0.52, 0.56, 0.57], width=64, height=64,
    )  # fmt: skip
    # texuniform: one checker period per metre (squares of 0.5 m)
    material = spec.add_material(name="floor_checker", texrepeat=[1.0, 1.0], texuniform=True, reflectance=0.0)
    material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "checker"
    floor = spec.geom("floor")
    floor.material = "floor_checker"
    floor.rgba = [1.0, 1.0, 1.0, 1.0]
    # a plane's third size is only its rendering grid: 0.1 m over the 120 m floor was a third of the frame time
    floor.size = [floor.size[0], floor.size[1], 2.0]
    model = spec.compile()
    model.vis.headlight.ambient[:] = 0.35
    model.vis.headlight.diffuse[:] = 0.55
    model.vis.quality.offsamples = 0
    # coarser capsules: vertex work dominates llvmpipe's time (28×16 → 16×8 facets: 2× faster, alike at 320×240)
    model.vis.quality.numslices, model.vis.quality.numstacks = 16, 8
    return model


def _open_encoder(path: Path, width: int, height: int, fps: float, crf: int):
    import fractions

    import av

    container = av.open(str(path), mode="w", format="mp4")
    rate = fractions.Fraction(fps).limit_denominator(1000)
    try:
        stream = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "veryfast"})
        codec = "libx264"
    except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
        stream = container.add_stream("mpeg4", rate=rate)
        codec = "mpeg4"
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.thread_count = 1
    return container, stream, codec


def _render_job(job: dict, qpos: np.ndarray, ghost: np.ndarray | None, options: dict) -> dict:
    import av
    import mujoco

    from cloud_trainer.twin.anthropometry import Anthropometry

    anthropometry = Anthropometry(**job["anthropometry"]) if job["anthropometry"] else None
    model = _render_model(anthropometry, job["terrain"])
    height_m = (anthropometry or Anthropometry()).height_m
    views = list(options["views"])
    width, height, fps = options["width"], options["height"], float(options["fps"])
    dt = float(job["dt_s"])
    duration = len(qpos) * dt
    first_s = 0.0
    if options["max_duration_s"] is not None and duration > options["max_duration_s"]:
        first_s = duration - float(options["max_duration_s"])  # keep the end: the course's feature and the outcome
        duration = float(options["max_duration_s"])
    n_frames = max(1, int(np.floor(duration * fps + 1e-9)))
    rows = np.minimum(np.round((first_s + np.arange(n_frames) / fps) / dt).astype(int), len(qpos) - 1)
    lookat = _smooth(qpos[:, :3], max(1, round(1.0 / dt)))
    lookat[:, 2] = lookat[:, 2] + 0.05 * height_m
    side_azimuth = 90.0 if job["side_view_from"] == "right" else -90.0
    renderer = _Renderer(model, width, height, len(views))
    path = Path(job["path"])
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    container, stream, codec = _open_encoder(tmp, width * len(views), height, fps, options["crf"])
    render_s = encode_s = 0.0
    texts = _text_layout(job["title"], list(job["lines"]), views)
    try:
        for f, row in enumerate(rows):
            started = time.perf_counter()
            view_specs = []
            for view in views:
                if view == "side":
                    view_specs.append(
                        {"lookat": lookat[row], "distance": 1.9 * height_m, "azimuth": side_azimuth, "elevation": -8.0}
                    )
                else:
                    view_specs.append(
                        {"lookat": lookat[row], "distance": 2.2 * height_m, "azimuth": 180.0, "elevation": -12.0}
                    )
            clock = (len(views) - 1, mujoco.mjtGridPos.mjGRID_BOTTOMRIGHT, f"t = {row * dt:4.1f} s", "")
            pixels = renderer.frame(qpos[row], None if ghost is None else ghost[row], view_specs, [*texts, clock])
            if f == 0 and int(pixels.max()) == int(pixels.min()):
                raise RuntimeError("the OpenGL backend rendered a blank frame")
            middle = time.perf_counter()
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")):
                container.mux(packet)
            render_s += middle - started
            encode_s += time.perf_counter() - middle
        started = time.perf_counter()
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        encode_s += time.perf_counter() - started
    except BaseException:
        container.close()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        renderer.close()
    os.replace(tmp, path)
    return {
        "path": str(path), "n_frames": n_frames, "width": width * len(views), "height": height, "fps": fps,
        "duration_s": round(n_frames / fps, 3), "render_s": round(render_s, 3), "encode_s": round(encode_s, 3),
        "codec": codec, "size_bytes": path.stat().st_size,
    }  # fmt: skip


def _text_layout(title: str, lines: list[str], views: Sequence[str]) -> list[tuple[int, Any, str, str]]:
    """The text every frame carries (the time is added per frame): each view's name at its bottom left; with two
    views the title and the first line on the first view, the other lines on the last (one block of four lines
    covered 40 % of a 240-pixel side view), else all on the one view."""
    import mujoco

    grid = mujoco.mjtGridPos
    first = [title, *lines]
    rest: list[str] = []
    if len(views) > 1 and len(lines) > 1:
        first, rest = [title, lines[0]], lines[1:]
    texts = [(0, grid.mjGRID_TOPLEFT, _ascii("\n".join(first)), "")]
    if rest:
        texts.append((len(views) - 1, grid.mjGRID_TOPLEFT, _ascii("\n".join(rest)), ""))
    return texts + [(k, grid.mjGRID_BOTTOMLEFT, f"{view} view", "") for k, view in enumerate(views)]


#: MuJoCo's overlay fonts cover printable ASCII only.
_ASCII = {"°": " deg", "·": "-", "–": "-", "—": "-", "×": "x", "≥": ">=", "≤": "<=", "±": "+/-", "→": "->"}


def _ascii(text: str) -> str:
    for char, replacement in _ASCII.items():
        text = text.replace(char, replacement)
    return text.encode("ascii", "replace").decode("ascii")


def _child_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    arrays = np.load(spec["arrays"])
    options = spec["options"]
    import mujoco

    context = mujoco.GLContext(options["width"] * len(options["views"]), options["height"])
    context.make_current()
    try:
        for k, job in enumerate(spec["jobs"]):
            ghost = arrays[f"ghost_{k}"] if job["ghost"] else None
            print(json.dumps({"video": _render_job(job, arrays[f"qpos_{k}"], ghost, options)}), flush=True)
    finally:
        context.free()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
