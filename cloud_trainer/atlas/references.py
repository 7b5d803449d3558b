"""The atlas's reference motions: the healthy motion library's typical walking cycles, as the twin's references.

Each library clip is one gait cycle on the library body (1.75 m, the twin's default patient) stored with a closing
frame; :func:`cloud_trainer.motion.twin_adapter.to_reference_motion` makes it a cyclic
:class:`~cloud_trainer.motion.reference.ReferenceMotion` on the given twin model. Clips flagged ``atypical``
(stylised walks: stealthy, zombie) are left out, as the library's own queries leave them out.

The root height is then re-grounded on the twin's own feet: over the cycle, the lowest point of the sole capsules
touches z = 0. The library cleans contacts on its light kinematic chain, whose contact points lie on the capsules'
axes; the capsules' end spheres reach lower when the foot inverts or everts, so on the twin the shipped clips sink
up to 2 cm into the floor in part of the cycle (and never float). Raised by that much, they float by up to 2 cm
elsewhere instead: a drop of a few milliseconds at reference-state initialisation rather than a start inside the
floor.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mujoco

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.kinematics import lowest_sole_m


def library_path() -> Path:
    """The shipped healthy motion library file."""
    from cloud_trainer.motion import library

    return Path(library.LIBRARY_PATH)


def atlas_references(model: mujoco.MjModel, path: Path | None = None) -> list[ReferenceMotion]:
    """The typical clips of the healthy motion library at ``path`` (default: the shipped one) as cyclic
    references on ``model``, re-grounded on its soles.

    Raises:
        ReferenceMotionError: the library holds no typical clip, or a clip cannot be made a reference.
    """
    from cloud_trainer.motion.errors import LibraryError
    from cloud_trainer.motion.library import HealthyMotionLibrary
    from cloud_trainer.motion.twin_adapter import to_reference_motion

    try:
        library = HealthyMotionLibrary.load(path or library_path())
    except LibraryError as exc:
        raise ReferenceMotionError(str(exc)) from None
    references = []
    for clip in library.clips:
        if clip.flags.get("atypical", False):
            continue
        motion = to_reference_motion(clip.trajectory, model, name=clip.clip_id)
        qpos = motion.qpos.copy()
        qpos[:, 2] -= lowest_sole_m(model, qpos).min()
        references.append(
            dataclasses.replace(motion, qpos=qpos, source=f"healthy motion library: {clip.source} ({clip.license})")
        )
    if not references:
        raise ReferenceMotionError("the healthy motion library holds no typical walking clip")
    return references
