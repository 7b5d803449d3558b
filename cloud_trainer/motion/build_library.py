"""Build the shipped healthy motion library from the MIT-licensed motions in ``../shared/data/motions``.

    python -m cloud_trainer.motion.build_library [--shared ../shared/data] [--out PATH] [-v]

Sources (licenses in ``cloud_trainer/motion/data/ATTRIBUTION.md``): DeepMimic ``humanoid3d_walk`` (one looped cycle)
and ``humanoid3d_long_walk1-3`` (free walking with turns; only straight, consistent strides are kept), the
LocoMuJoCo ``02-constspeed_full_humanoid`` sample (1 s, less than one stride: one step is completed by its mirror
image), and the stylised DeepMimic ``stealthy_walk`` and ``zombie_walk``, kept but flagged ``atypical`` (queries skip
them unless asked). The OpenSim example data carries no license and is not used.

Each stride is closed into a loop, resampled to 129 frames, cleaned on the library body (the twin's default patient,
:func:`~cloud_trainer.motion.library.library_kinematics`), dropped if a stance foot still slides more than 1 cm,
and stored with its left-right mirror image (restarted at its own right heel strike). Takes about a minute on one core.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from cloud_trainer.motion.cleanup import FootContactCleaner
from cloud_trainer.motion.cycles import extract_cycle, make_cyclic, roll_cycle, symmetric_cycle_from_step, tile_cycle
from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.kinematics import LightKinematics
from cloud_trainer.motion.library import (
    LIBRARY_BODY_HEIGHT_M,
    LIBRARY_PATH,
    N_CYCLE_FRAMES,
    HealthyMotionLibrary,
    LibraryClip,
    library_kinematics,
)
from cloud_trainer.motion.pipeline import ReferenceCycleBuilder
from cloud_trainer.motion.readers import read_deepmimic, read_locomujoco
from cloud_trainer.motion.segmentation import GaitCycleSegmenter, heel_forward_distance
from cloud_trainer.motion.trajectory import JointTrajectory

log = logging.getLogger(__name__)

#: Rate strides are cleaned at (clean-up cost grows with it; 120 Hz keeps every source's detail).
CLEAN_RATE_HZ = 120.0
#: Largest stance-foot slide a library stride may keep after clean-up, m.
MAX_SLIDE_M = 0.01

DEEPMIMIC_LICENSE = "MIT (c) 2018 Xue Bin Peng, xbpeng/DeepMimic"
LOCOMUJOCO_LICENSE = "MIT (c) 2024 Al-Hafez, robfiras/loco-mujoco"

#: (file under motions/, looped single cycle?, atypical?)
DEEPMIMIC_SOURCES: tuple[tuple[str, bool, bool], ...] = (
    ("deepmimic/humanoid3d_walk.txt", True, False),
    ("deepmimic/humanoid3d_long_walk1.txt", False, False),
    ("deepmimic/humanoid3d_long_walk2.txt", False, False),
    ("deepmimic/humanoid3d_long_walk3.txt", False, False),
    ("deepmimic/humanoid3d_stealthy_walk.txt", True, True),
    ("deepmimic/humanoid3d_zombie_walk.txt", True, True),
)
LOCOMUJOCO_SOURCE = "locomujoco/02-constspeed_full_humanoid.npz"


def _on_phase_grid(cycle: JointTrajectory) -> JointTrajectory:
    """A cycle resampled to the library's frames, before clean-up: what is cleaned is exactly what is stored."""
    return cycle.resample(np.linspace(0.0, cycle.duration_s, N_CYCLE_FRAMES + 1))


def _at_clean_rate(trajectory: JointTrajectory) -> JointTrajectory:
    return (
        trajectory.resample_uniform(CLEAN_RATE_HZ) if trajectory.sampling_rate_hz > CLEAN_RATE_HZ * 1.01 else trajectory
    )


def _looped_cycle(trajectory: JointTrajectory, kinematics: LightKinematics) -> JointTrajectory:
    """One cycle starting at a right heel strike from a clip that holds one looped cycle (DeepMimic 'wrap')."""
    loop = tile_cycle(make_cyclic(trajectory), 3)
    segmenter = GaitCycleSegmenter(kinematics=kinematics, min_cycles=1, max_heading_change_deg=20.0).segment(loop)
    n = trajectory.n_frames - 1
    cycle = next((c for c in segmenter.accepted_cycles_ if c.start >= n // 2), segmenter.accepted_cycles_[0])
    return _on_phase_grid(make_cyclic(extract_cycle(loop, cycle)))


def _strides(
    relative: str, shared: Path, kinematics: LightKinematics, looped: bool
) -> list[tuple[JointTrajectory, str]]:
    """Cleaned strides of one DeepMimic source, each with a note of where it starts."""
    trajectory = _at_clean_rate(read_deepmimic(shared / "motions" / relative))
    cleaner = FootContactCleaner(kinematics)
    if looped:
        cleaner.clean(_looped_cycle(trajectory, kinematics))
        if cleaner.max_slide_m_ > MAX_SLIDE_M:
            log.warning("%s: stance foot slides %.1f cm after clean-up; dropped", relative, 100 * cleaner.max_slide_m_)
            return []
        return [(cleaner.trajectory_, "loop")]
    builder = ReferenceCycleBuilder(
        segmenter=GaitCycleSegmenter(kinematics=kinematics),
        cleaner=cleaner,
        min_strides=0,
        max_slide_m=MAX_SLIDE_M,
        n_cycle_frames=N_CYCLE_FRAMES,
    )
    builder.build(trajectory)
    for reason in builder.dropped_:
        log.info("%s: %s", relative, reason)
    return [(c, f"{c.meta['cycle_start_s']:.2f}s") for c in builder.cycles_]


def _locomujoco_stride(shared: Path, kinematics: LightKinematics) -> JointTrajectory | None:
    """The LocoMuJoCo sample's right-heel-strike-to-left-heel-strike step, completed by its mirror image."""
    trajectory = _at_clean_rate(read_locomujoco(shared / "motions" / LOCOMUJOCO_SOURCE))
    right = heel_forward_distance(trajectory, kinematics, "r")
    left = heel_forward_distance(trajectory, kinematics, "l")
    r = int(np.argmax(right[: trajectory.n_frames // 2]))
    l_hs = r + int(np.argmax(left[r:]))
    if l_hs - r < 0.3 * trajectory.sampling_rate_hz:
        log.warning("%s: no right-then-left heel strike found; skipped", LOCOMUJOCO_SOURCE)
        return None
    cleaner = FootContactCleaner(kinematics).clean(_on_phase_grid(symmetric_cycle_from_step(trajectory, r, l_hs)))
    if cleaner.max_slide_m_ > MAX_SLIDE_M:
        log.warning(
            "%s: stance foot slides %.1f cm after clean-up; dropped", LOCOMUJOCO_SOURCE, 100 * cleaner.max_slide_m_
        )
        return None
    return cleaner.trajectory_


def _clip(cycle: JointTrajectory, clip_id: str, source: str, license: str, flags: dict) -> LibraryClip:
    period = cycle.duration_s
    resampled = cycle if cycle.n_frames == N_CYCLE_FRAMES + 1 else _on_phase_grid(cycle)
    cleanup = cycle.meta.get("cleanup", {})
    return LibraryClip(
        clip_id=clip_id,
        source=source,
        license=license,
        speed_m_s=float(cycle.meta["speed_m_s"]),
        stride_length_m=float(cycle.meta["stride_length_m"]),
        period_s=period,
        trajectory=resampled,
        flags={
            **flags,
            "cleanup_max_slide_m": float(cleanup.get("max_slide_m", np.nan)),
            "cleanup_min_height_m": float(cleanup.get("min_height_m", np.nan)),
            "cleanup_max_correction_rad": float(cleanup.get("max_correction_rad", np.nan)),
        },
    )


def _mirror(clip: LibraryClip, kinematics: LightKinematics) -> LibraryClip:
    """The clip's mirror image, restarted at its own right heel strike (the original's left one)."""
    cycle = clip.trajectory
    left_strike = int(np.argmax(heel_forward_distance(cycle, kinematics, "l")[:-1]))
    mirrored = roll_cycle(cycle.mirrored(), left_strike)
    return LibraryClip(
        clip_id=f"{clip.clip_id}-mirror",
        source=clip.source,
        license=clip.license,
        speed_m_s=clip.speed_m_s,
        stride_length_m=clip.stride_length_m,
        period_s=clip.period_s,
        trajectory=mirrored.with_values(time_s=np.linspace(0.0, clip.period_s, mirrored.n_frames)),
        flags={**clip.flags, "mirrored": True},
    )


def build_library(shared: Path) -> HealthyMotionLibrary:
    """Every source → cleaned, phase-aligned strides (and their mirror images) on the library body."""
    kinematics = library_kinematics()
    clips: list[LibraryClip] = []
    for relative, looped, atypical in DEEPMIMIC_SOURCES:
        path = shared / "motions" / relative
        if not path.is_file():
            log.warning("%s not found; skipped", path)
            continue
        try:
            strides = _strides(relative, shared, kinematics, looped)
        except MotionQualityError as exc:
            log.warning("%s: %s", relative, exc)
            continue
        for cycle, where in strides:
            flags = {"mirrored": False, "symmetrised": False, "atypical": atypical}
            clips.append(_clip(cycle, f"{Path(relative).stem}@{where}", relative, DEEPMIMIC_LICENSE, flags))
    if (shared / "motions" / LOCOMUJOCO_SOURCE).is_file():
        cycle = _locomujoco_stride(shared, kinematics)
        if cycle is not None:
            flags = {"mirrored": False, "symmetrised": True, "atypical": False}
            clips.append(
                _clip(cycle, f"{Path(LOCOMUJOCO_SOURCE).stem}@step", LOCOMUJOCO_SOURCE, LOCOMUJOCO_LICENSE, flags)
            )
    clips += [_mirror(c, kinematics) for c in list(clips) if not c.flags["symmetrised"]]
    return HealthyMotionLibrary(clips, LIBRARY_BODY_HEIGHT_M)


def _default_shared() -> Path:
    """The nearest ``shared/data`` beside the repository or above it (git worktrees sit one level deeper)."""
    repo = Path(__file__).resolve().parents[2]
    for parent in repo.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return repo.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: build, save, print the clip table and coverage as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m cloud_trainer.motion.build_library", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--shared", type=Path, default=_default_shared(), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=LIBRARY_PATH, help="where to write the npz")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not (args.shared / "motions").is_dir():
        parser.error(f"{args.shared}/motions not found; pass --shared")
    library = build_library(args.shared)
    library.save(args.out)
    print(json.dumps({"clips": library.table(), "coverage": library.coverage()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
