"""Verdicts: what every check (placement, signal quality, metric validity) tells the therapist.

A verdict says how bad (ok / warning / fail), what was found in plain words, and what to do about it. ``code`` is a
stable machine-readable identifier (for the UI, translations and tests); ``details`` carries the numbers behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """Severity, ordered: ``ok`` < ``warning`` < ``fail``."""

    OK = "ok"
    WARNING = "warning"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return ("ok", "warning", "fail").index(self.value)


@dataclass(frozen=True)
class Verdict:
    """One check's outcome, for one subject (a site, a metric, the whole kit)."""

    level: Level
    #: Stable identifier, e.g. ``placement.upside_down``, ``quality.loss``.
    code: str
    #: What was found, in words a therapist understands ("The left thigh sensor is upside down.").
    message: str
    #: What to do about it ("Turn it so the arrow points up."); empty when nothing needs doing.
    action: str = ""
    #: What the verdict is about: a site name, a metric name, or "kit".
    subject: str = "kit"
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``verdicts`` items of ``stridetwin analyze --json``)."""
        return {
            "level": self.level.value,
            "code": self.code,
            "subject": self.subject,
            "message": self.message,
            "action": self.action,
            "details": self.details,
        }


def worst(verdicts: list[Verdict]) -> Level:
    """The most severe level among ``verdicts`` (``ok`` for none)."""
    return max((v.level for v in verdicts), key=lambda level: level.rank, default=Level.OK)
