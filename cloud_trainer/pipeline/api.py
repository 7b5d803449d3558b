"""The seam between the patient pipeline and whoever runs it (the ``stridetwin train`` command, the trainer service's
job executor, a Ray worker): what goes in, what comes out, and the progress events in between.

The pipeline is a function ``run(request, on_progress, cancel) -> PipelineResult``. It writes everything into
``request.out_dir``, checkpoints as it goes and, started again on the same ``out_dir``, resumes from its last
checkpoint. Progress events are plain data (JSON-ready via :meth:`ProgressEvent.to_json`), so a service can forward
them over gRPC and a terminal can draw them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

#: Tasks a request may ask for.
TASKS: tuple[str, ...] = ("slope", "stairs")
#: Compute budgets: ``smoke`` proves the plumbing (results not meaningful), ``quick`` gives meaningful predictions in
#: under 30 minutes on 2 cores, ``full`` trains until convergence.
BUDGETS: tuple[str, ...] = ("smoke", "quick", "full")
#: Methods: the data-physics hybrid (atlas + adaptation + BC + GAIL + curriculum), or the physics-only baseline
#: (imitation from scratch, no atlas, no BC, no GAIL) for side-by-side comparison.
METHODS: tuple[str, ...] = ("hybrid", "physics-only")


class Stage(StrEnum):
    """Pipeline stages, in order."""

    REFERENCE = "reference"
    ADAPTATION = "adaptation"
    PREDICTION = "prediction"
    EXPORT = "export"
    DONE = "done"


@dataclass(frozen=True)
class PipelineRequest:
    """One patient job."""

    #: A clip (``.stclip``) or a motion file (BVH, OpenSim .mot, DeepMimic JSON).
    input_path: Path
    out_dir: Path
    tasks: tuple[str, ...] = TASKS
    budget: str = "quick"
    method: str = "hybrid"
    seed: int = 0
    #: Atlas weights the hybrid adapts (None: the shipped atlas). For research and for a trainer whose operator
    #: deploys an atlas trained elsewhere; the trainer service does not take it from a clinic's request.
    atlas_path: Path | None = None

    def validate(self) -> None:
        """Raise ValueError naming the bad field and the accepted values."""
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks {list(self.tasks)!r}: each must be one of {', '.join(TASKS)}")
        if self.budget not in BUDGETS:
            raise ValueError(f"budget {self.budget!r}: accepted {', '.join(BUDGETS)}")
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: accepted {', '.join(METHODS)}")
        if self.atlas_path is not None:
            if self.method != "hybrid":
                raise ValueError(f"atlas {self.atlas_path}: only the hybrid method starts from an atlas")
            if not Path(self.atlas_path).is_file():
                raise ValueError(f"atlas {self.atlas_path}: no such weights file")


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run is: stage, task and curriculum level, samples so far, and an ETA where one can be estimated."""

    stage: Stage
    message: str = ""
    task: str | None = None
    #: Curriculum level (1-5) within the task, where the stage has one.
    level: int | None = None
    samples: int = 0
    samples_total: int | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["stage"] = self.stage.value
        return out


@dataclass(frozen=True)
class Artifact:
    """One file the run produced, relative to ``out_dir``."""

    #: ``onnx``, ``manifest``, ``video``, ``angles_csv``, ``report_json``, ``report_html``, ``log``.
    kind: str
    path: Path
    task: str | None = None
    level: int | None = None
    sha256: str = ""
    size_bytes: int = 0


@dataclass
class PipelineResult:
    """What a finished run returns: its report document and the artifacts written."""

    out_dir: Path
    report: dict[str, Any]
    artifacts: list[Artifact] = field(default_factory=list)
    #: True when the run picked up from an earlier checkpoint.
    resumed: bool = False


ProgressCallback = Callable[[ProgressEvent], None]
#: The pipeline's entry point, as runners see it.
PipelineRunner = Callable[[PipelineRequest, ProgressCallback, threading.Event], PipelineResult]
