"""The shared conformance test every algorithm class of the motion package runs (STYLE.md, 'Tests').

Parameters pass through ``__init__`` unchanged and all have defaults; the one action verb returns ``self``; every
result attribute ends in ``_`` and is named in the class docstring.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cloud_trainer.motion.cleanup import FootContactCleaner
from cloud_trainer.motion.filling import PhaseLockedFiller
from cloud_trainer.motion.pipeline import ReferenceCycleBuilder
from cloud_trainer.motion.segmentation import GaitCycleSegmenter

from .gait_fixtures import synthetic_gait

GAIT = synthetic_gait(n_cycles=4.2, phase_offset=0.5)

#: (class, verb, arguments of the verb)
ALGORITHMS: list[tuple[type, str, Callable[[], tuple[Any, ...]]]] = [
    (GaitCycleSegmenter, "segment", lambda: (GAIT,)),
    (FootContactCleaner, "clean", lambda: (GAIT,)),
    (PhaseLockedFiller, "fill", lambda: (GAIT, [0.55, 1.65, 2.75, 3.85])),
    (ReferenceCycleBuilder, "build", lambda: (GAIT,)),
]


@pytest.mark.parametrize(("cls", "verb", "args"), ALGORITHMS, ids=lambda x: getattr(x, "__name__", ""))
def test_algorithm_conformance(cls: type, verb: str, args: Callable[[], tuple[Any, ...]]) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert all(p.default is not inspect.Parameter.empty for p in parameters), "every parameter needs a default"
    instance = cls()
    before = dict(vars(instance))
    assert set(before) == {p.name for p in parameters}, "__init__ stores exactly its parameters"
    for p in parameters:
        if p.default is not None:
            assert before[p.name] is p.default or np.array_equal(before[p.name], p.default)
    assert getattr(instance, verb)(*args()) is instance
    results = [name for name in vars(instance) if name not in before]
    assert results, "the verb must leave results"
    doc = inspect.getdoc(cls) or ""
    for name in results:
        assert name.endswith("_"), f"result {name} must end in '_'"
        assert f"{name}" in doc, f"result {name} is not documented in {cls.__name__}'s docstring"
    for p in parameters:  # parameters are not changed by the action
        if p.default is not None and not isinstance(before[p.name], int):
            assert vars(instance)[p.name] is before[p.name]
