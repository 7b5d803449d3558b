"""The algorithm conventions every package's conformance test checks (docs/conventions.md): every ``__init__``
parameter has a default and is stored under its own name, the verb returns the instance, and results (names ending
in ``_``) are documented in the class's or the verb's docstring."""

from __future__ import annotations

import inspect
from typing import Any


def constructed_and_run(cls: type, params: dict, verb: str, args: tuple = (), kwargs: dict | None = None) -> Any:
    """``cls(**params)`` after checking that every parameter has a default, with each parameter stored as given (or
    its default), and ``verb`` run on it (it must return the instance); returns the instance."""
    signature = inspect.signature(cls.__init__)
    defaults = {k: p.default for k, p in signature.parameters.items() if k != "self"}
    assert all(d is not inspect.Parameter.empty for d in defaults.values())  # every parameter has a default
    algo = cls(**params)
    for name in defaults:
        expected = params.get(name, defaults[name])
        assert getattr(algo, name) is expected or getattr(algo, name) == expected
    assert getattr(algo, verb)(*args, **(kwargs or {})) is algo
    return algo


def documentation(cls: type, verb: str) -> str:
    """The class's and the verb's docstrings, where results must be documented."""
    return (inspect.getdoc(cls) or "") + (inspect.getdoc(getattr(cls, verb)) or "")
