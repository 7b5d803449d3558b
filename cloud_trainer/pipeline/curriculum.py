"""The task curriculum (Dai et al. 2025, Methods, "Task-Conditioned Rehabilitation Evaluation"; Bengio et al. 2009):
five difficulty levels per task, promoted "when the cumulative reward exceeds 90 % of the patient's flat-ground
performance and after at least 500 episodes".

Here: a level is mastered when at least ``min_episodes`` episodes have ended at it and the mean return of the last
``window_episodes`` of them reaches ``threshold_fraction`` × the patient's flat-ground return (the adapted policy's
mean return on flat ground under the same task and episode length, :attr:`reference_return`). Returns are the
environment's own reward (the GAIL reward and the stair cue are not counted).

Our addition: at most ``max_fall_fraction`` (10 %) of those episodes may have ended in a fall. The paper's rule is
relative to the patient's own flat-ground return, so a policy that cannot walk on flat ground (a physics-only baseline
early in training) would "master" every level by falling as early as it does on flat ground; a therapist reads
"mastered" as "walks it".

Which episodes are judged: with ``check_every_samples`` 0, the training episodes themselves (sampled actions; the
paper's literal rule). With it set, mastery checks: once ``min_episodes`` training episodes have ended in the current
phase, and at most every ``check_every_samples`` samples, :meth:`observe` answers ``"check"``; the caller then runs
episodes of the policy's deterministic actions at the level (the policy that is evaluated and exported) and hands
their returns and falls to :meth:`judge`, which applies the same rule to them (the reference return must then be
measured the same way). Why: sampled episodes judge the exploration noise as much as the policy (docs/pipeline.md:
a ramp policy that fell in 1 % of its deterministic episodes fell in 60 % of sampled ones). A check may stop at its
first fall beyond :meth:`Curriculum.allowed_falls` and hand over only the episodes that ended by then: the rule fails
it whatever the others do, and the fall fraction of those episodes is above the limit too.

The stair guidance cue (Methods, "Task II") "only facilitates initial learning and is disabled once mastery is
achieved": each level in ``guided_levels`` is first trained with the cue; when the rule is met the cue is switched
off and the level must be mastered again without it before promotion, so no level is reported mastered with the cue.
Levels without stairs to cue (the flat first level) are not guided: there the cue would only add a constant.

:meth:`Curriculum.observe` takes the returns of episodes that ended and says what changed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

N_LEVELS = 5
THRESHOLD_FRACTION = 0.9
MAX_FALL_FRACTION = 0.1


@dataclass
class LevelRecord:
    """What happened at one level: samples and wall-clock spent until mastery (None: not mastered)."""

    level: int
    samples_start: int
    wall_start_s: float
    samples_mastered: int | None = None
    wall_mastered_s: float | None = None
    episodes: int = 0
    cue_off_samples: int | None = None
    #: The best mean return of the judged episodes whose falls stayed within the rule's limit (None: none did). A
    #: check stopped at a fall beyond the limit judges only the episodes that had ended, mostly falls: not counted.
    best_mean_return: float | None = None


@dataclass
class Curriculum:
    """Level, promotion rule and the guidance-cue switch of one task (see the module docstring).

    ``reference_return`` must be set before :meth:`observe` is called.
    """

    reference_return: float = float("nan")
    threshold_fraction: float = THRESHOLD_FRACTION
    max_fall_fraction: float = MAX_FALL_FRACTION
    min_episodes: int = 500
    window_episodes: int = 200
    n_levels: int = N_LEVELS
    #: Levels first trained with the guidance cue (see the module docstring); () for none.
    guided_levels: tuple[int, ...] = ()
    #: 0: judge the training episodes; > 0: judge mastery checks, at most this many samples apart.
    check_every_samples: int = 0
    level: int = 1
    cue_on: bool = False
    complete: bool = False
    records: list[LevelRecord] = field(default_factory=list)
    _recent: deque = field(default_factory=deque, repr=False)
    _recent_falls: deque = field(default_factory=deque, repr=False)
    _episodes_phase: int = 0
    _last_check_samples: int | None = None

    def __post_init__(self) -> None:
        if not self.records:
            self.records = [LevelRecord(self.level, 0, 0.0)]
            self.cue_on = self.level in self.guided_levels
        self._recent = deque(self._recent, maxlen=self.window_episodes)
        self._recent_falls = deque(self._recent_falls, maxlen=self.window_episodes)

    def allowed_falls(self, n_episodes: int) -> int:
        """The most falls among ``n_episodes`` judged episodes that the rule allows (one more fails it)."""
        return math.floor(self.max_fall_fraction * n_episodes + 1e-9)  # 0.1 × 10 is not quite 1.0 in floats

    @property
    def threshold(self) -> float:
        return self.threshold_fraction * self.reference_return

    @property
    def mean_return(self) -> float | None:
        return sum(self._recent) / len(self._recent) if self._recent else None

    @property
    def fall_fraction(self) -> float | None:
        return sum(self._recent_falls) / len(self._recent_falls) if self._recent_falls else None

    @property
    def levels_mastered(self) -> int:
        """The highest level mastered (0: none)."""
        return max((r.level for r in self.records if r.samples_mastered is not None), default=0)

    def observe(self, returns: list[float], samples: int, wall_s: float, fell: list[bool] | None = None) -> str:
        """Fold in the returns of training episodes that just ended (after ``samples`` task samples and ``wall_s``
        seconds) and whether each ended in a fall (default: none did). Returns ``""``, ``"cue_off"``,
        ``"promoted"`` or ``"complete"`` (the last level mastered); with mastery checks, ``"check"`` when one is due
        (then call :meth:`judge`) and otherwise ``""``."""
        if self.complete or not returns:
            return ""
        fell = self._fall_flags(returns, fell)
        record = self.records[-1]
        self._episodes_phase += len(returns)
        record.episodes += len(returns)
        self._recent.extend(returns)
        self._recent_falls.extend(fell)
        if self.check_every_samples:  # the window is logged; the rule looks at the checks
            if self._episodes_phase < self.min_episodes:
                return ""
            last = self._last_check_samples
            return "check" if last is None or samples - last >= self.check_every_samples else ""
        return self._apply_rule(self.mean_return, self.fall_fraction, samples, wall_s)

    def judge(self, returns: list[float], fell: list[bool], samples: int, wall_s: float) -> str:
        """Apply the promotion rule to all the episodes of a mastery check (see the module docstring); returns what
        :meth:`observe` would."""
        if not self.check_every_samples:
            raise RuntimeError("judge() is for a curriculum with mastery checks (check_every_samples > 0)")
        if self.complete or not returns:
            return ""
        fell = self._fall_flags(returns, fell)
        self._last_check_samples = samples
        return self._apply_rule(sum(returns) / len(returns), sum(fell) / len(fell), samples, wall_s)

    @staticmethod
    def _fall_flags(returns: list[float], fell: list[bool] | None) -> list[bool]:
        if fell is not None and len(fell) != len(returns):
            raise ValueError(f"{len(returns)} returns but {len(fell)} fall flags")
        return list(fell) if fell is not None else [False] * len(returns)

    def _apply_rule(self, mean: float | None, fall_fraction: float | None, samples: int, wall_s: float) -> str:
        """Promote (or switch the cue off) when the judged episodes' mean return and fall fraction meet the rule."""
        record = self.records[-1]
        within_falls = fall_fraction is None or fall_fraction <= self.max_fall_fraction
        if mean is not None and within_falls:
            record.best_mean_return = mean if record.best_mean_return is None else max(record.best_mean_return, mean)
        if self._episodes_phase < self.min_episodes or mean is None or not mean >= self.threshold:
            return ""
        if not within_falls:
            return ""
        self._recent.clear()
        self._recent_falls.clear()
        self._episodes_phase = 0
        if self.cue_on:
            self.cue_on = False
            record.cue_off_samples = samples
            return "cue_off"
        record.samples_mastered, record.wall_mastered_s = samples, wall_s
        if self.level >= self.n_levels:
            self.complete = True
            return "complete"
        self.level += 1
        self.cue_on = self.level in self.guided_levels
        self.records.append(LevelRecord(self.level, samples, wall_s))
        return "promoted"

    def state_dict(self) -> dict:
        return {
            "reference_return": self.reference_return,
            "level": self.level,
            "cue_on": self.cue_on,
            "complete": self.complete,
            "records": [vars(r).copy() for r in self.records],
            "recent": list(self._recent),
            "recent_falls": list(self._recent_falls),
            "episodes_phase": self._episodes_phase,
            "last_check_samples": self._last_check_samples,
        }

    def load_state_dict(self, state: dict) -> None:
        self.reference_return = float(state["reference_return"])
        self.level, self.cue_on, self.complete = int(state["level"]), bool(state["cue_on"]), bool(state["complete"])
        self.records = [LevelRecord(**r) for r in state["records"]]
        self._recent = deque(state["recent"], maxlen=self.window_episodes)
        self._recent_falls = deque(state.get("recent_falls", ()), maxlen=self.window_episodes)
        self._episodes_phase = int(state["episodes_phase"])
        self._last_check_samples = state.get("last_check_samples")

    def to_json(self) -> dict:
        """Levels reached and what each took (for the report)."""
        return {
            "reference_return": self.reference_return,
            "threshold_fraction": self.threshold_fraction,
            "threshold_return": self.threshold,
            "max_fall_fraction": self.max_fall_fraction,
            "min_episodes": self.min_episodes,
            "window_episodes": self.window_episodes,
            "judged": "mastery checks, deterministic actions" if self.check_every_samples else "training episodes",
            "check_every_samples": self.check_every_samples,
            "guided_levels": list(self.guided_levels),
            "level": self.level,
            "levels_mastered": self.levels_mastered,
            "complete": self.complete,
            "levels": [vars(r).copy() for r in self.records],
        }
