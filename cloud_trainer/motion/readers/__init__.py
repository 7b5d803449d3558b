"""Motion-file readers. :func:`read_motion` picks one by the file's suffix:

``.mot``/``.sto`` OpenSim, ``.bvh`` Biovision, ``.npz`` LocoMuJoCo, ``.txt``/``.json`` DeepMimic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud_trainer.motion.errors import MotionFileError
from cloud_trainer.motion.readers.bvh import read_bvh, write_bvh
from cloud_trainer.motion.readers.deepmimic import read_deepmimic
from cloud_trainer.motion.readers.locomujoco import read_locomujoco
from cloud_trainer.motion.readers.mot import read_mot
from cloud_trainer.motion.trajectory import JointTrajectory

__all__ = ["READERS", "read_bvh", "read_deepmimic", "read_locomujoco", "read_mot", "read_motion", "write_bvh"]

#: File suffix → reader.
READERS = {
    ".mot": read_mot,
    ".sto": read_mot,
    ".bvh": read_bvh,
    ".npz": read_locomujoco,
    ".txt": read_deepmimic,
    ".json": read_deepmimic,
}


def read_motion(path: str | Path, **options: Any) -> JointTrajectory:
    """Read any supported motion file; ``options`` go to the format's reader."""
    path = Path(path)
    if not path.is_file():
        raise MotionFileError(f"{path}: no such file")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise MotionFileError(f"{path}: unknown motion file type {path.suffix!r}; accepted: {', '.join(READERS)}")
    return reader(path, **options)
