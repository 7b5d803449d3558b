"""Finding the pipeline a job runs: an import path to a :data:`~cloud_trainer.pipeline.api.PipelineRunner`.

The default is the patient pipeline, ``cloud_trainer.pipeline.run``. A runner is named by an import path (rather
than passed as an object) so that a Ray worker on another machine can import it too.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from cloud_trainer.pipeline.api import PipelineRunner

#: The patient pipeline (issue 5): ``run(request, on_progress, cancel) -> PipelineResult``.
DEFAULT_RUNNER = "cloud_trainer.pipeline.run"


class RunnerNotFoundError(ImportError):
    """The runner's module or function cannot be imported."""


def load_runner(spec: str = DEFAULT_RUNNER) -> PipelineRunner:
    """The runner named by ``spec``: ``package.module:function``, ``package.module.function``, or a module that
    defines ``run`` (``cloud_trainer.pipeline.run``)."""
    module_name, _, attr = spec.partition(":")
    try:
        if attr:
            target: object = getattr(importlib.import_module(module_name), attr)
        else:
            try:
                target = importlib.import_module(spec)
            except ModuleNotFoundError as exc:
                if exc.name != spec or "." not in spec:
                    raise
                parent, _, attr = spec.rpartition(".")
                target = getattr(importlib.import_module(parent), attr)
        if isinstance(target, ModuleType):
            target = target.run
    except (ImportError, AttributeError) as exc:
        raise RunnerNotFoundError(f"pipeline runner {spec!r} cannot be imported ({exc})") from None
    if not callable(target):
        raise RunnerNotFoundError(f"pipeline runner {spec!r} is not callable")
    return target  # type: ignore[return-value]


#: What the patient pipeline imports from the ``trainer`` extra (located, not imported, by
#: :func:`missing_pipeline_dependencies`).
PIPELINE_DEPENDENCIES: tuple[str, ...] = ("torch", "mujoco", "gymnasium", "onnx", "onnxruntime", "av")


def missing_pipeline_dependencies() -> list[str]:
    """The libraries of :data:`PIPELINE_DEPENDENCIES` that are not installed (a trainer without the ``trainer``
    extra would accept clips and fail every job)."""
    return [name for name in PIPELINE_DEPENDENCIES if importlib.util.find_spec(name) is None]


def check_runner(spec: str = DEFAULT_RUNNER) -> None:
    """Raise :class:`RunnerNotFoundError` when the runner cannot be found, importing as little as possible: a module
    is only located (the pipeline imports torch and MuJoCo; an idle trainer should not carry them); a function in a
    package's ``__init__`` needs that package imported."""
    module_name, _, attr = spec.partition(":")
    try:
        if not attr and importlib.util.find_spec(spec) is not None:
            return
        if attr and importlib.util.find_spec(module_name) is not None:
            return
    except (ImportError, ValueError):
        pass
    if not attr and "." in spec:
        load_runner(spec)  # raises RunnerNotFoundError naming what is missing
        return
    raise RunnerNotFoundError(f"pipeline runner {spec!r} cannot be imported (no module {module_name!r})")
