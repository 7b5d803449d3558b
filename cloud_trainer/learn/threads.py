"""Torch threads for training, chosen by measurement while it runs (docs/learning.md, "Threads on 2 cores").

Rollout and update alternate. The MuJoCo batch uses both cores in the rollout, and the policy's inference between its
physics steps runs on one torch thread (``INFERENCE_THREADS``: a second one spins after each operation and slowed the
batch by 10 %). The update runs on the chosen count. On an idle 2-core machine two threads in the update make an
iteration (rollout + update) 18 % faster than one; as soon as another process holds a core, two are 1.7× slower than
one (OpenMP threads wait for each other at every operation, and a descheduled one stalls the rest). Which count is
right therefore depends on what else runs, and that can change during a run. :class:`ThreadChooser` times every
iteration, keeps a smoothed time per thread count, runs the update on the fastest, and every ``probe_every``
iterations tries another count once, so it follows a load that comes or goes.

The choice does not change what is learnt: the PPO update gives bit-identical weights with one or two threads
(``tests/cloud_trainer/learn/test_threads.py``), so runs stay reproducible from their seed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

#: Torch threads outside the updates: the policy's inference in rollouts, checks and evaluations, and everything
#: else a run does (see the module docstring).
INFERENCE_THREADS = 1
#: The most torch threads tried: the policies are small (3×256), beyond a few threads synchronisation costs more.
MAX_TORCH_THREADS = 8


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_candidates(cores: int | None = None, max_threads: int = MAX_TORCH_THREADS) -> tuple[int, ...]:
    """Torch thread counts worth trying on ``cores`` cores (default: :func:`available_cores`): 1, 2, 4, … up to
    both limits. One comes first: the safe count on a busy machine."""
    limit = min(cores if cores is not None else available_cores(), max_threads)
    counts, n = [], 1
    while n <= max(limit, 1):
        counts.append(n)
        n *= 2
    return tuple(counts)


@dataclass
class ThreadChooser:
    """Picks the torch thread count of each training iteration from measured iteration times.

    Call :meth:`next` before an iteration (it answers the count to use) and :meth:`record` after it with the
    seconds it took. The first iteration is not counted (it pays for allocations); a count not measured for
    ``probe_every`` iterations has its smoothed time replaced by its next measurement rather than blended with it.
    """

    candidates: tuple[int, ...]
    #: Iterations between two tries of a count other than the current one. A try on the slower count costs about 0.1 s
    #: of a 0.5 s iteration on the idle VM (docs/learning.md), so one in 25 costs < 1 %; a load that comes or goes is
    #: noticed within 25 iterations (≈ 15 s).
    probe_every: int = 25
    #: Weight of the newest iteration in a count's smoothed time: one iteration on two threads under load (1.26 s)
    #: lifts their smoothed 0.555 s above one thread's 0.645 s, so the chooser leaves them at once (tested).
    smoothing: float = 0.3
    #: The count in use (the fastest measured so far).
    current: int = field(init=False)
    #: Smoothed seconds per iteration, by thread count.
    mean_s: dict[int, float] = field(init=False, default_factory=dict)
    #: Iterations run, by thread count (the first, uncounted one included).
    iterations: dict[int, int] = field(init=False, default_factory=dict)
    _count: int = field(init=False, default=0)
    _last_measured: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.candidates or any(int(c) < 1 for c in self.candidates):
            raise ValueError(f"thread candidates must be counts ≥ 1, got {self.candidates!r}")
        if self.probe_every < 1:
            raise ValueError(f"probe_every must be ≥ 1, got {self.probe_every}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        self.candidates = tuple(int(c) for c in self.candidates)
        self.current = self.candidates[0]

    def next(self) -> int:
        """The thread count for the coming iteration: a count not yet measured, else one due for a new try, else
        the current (fastest) one."""
        if self._count == 0 or self.current not in self.mean_s:
            return self.current
        for n in self.candidates:
            if n not in self.mean_s:
                return n
        others = [n for n in self.candidates if n != self.current]
        if others:
            stalest = min(others, key=lambda n: self._last_measured.get(n, -1))
            if self._count - self._last_measured.get(stalest, -1) > self.probe_every:
                return stalest
        return self.current

    def record(self, threads: int, seconds: float) -> None:
        """Fold in an iteration run on ``threads`` threads that took ``seconds``; switch to the fastest count."""
        self._count += 1
        self.iterations[threads] = self.iterations.get(threads, 0) + 1
        if self._count == 1 or not seconds > 0.0:
            return
        stale = self._count - self._last_measured.get(threads, -self.probe_every - 1) > self.probe_every
        old = self.mean_s.get(threads)
        self.mean_s[threads] = seconds if old is None or stale else old + self.smoothing * (seconds - old)
        self._last_measured[threads] = self._count
        self.current = min(self.mean_s, key=self.mean_s.__getitem__)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on ``n`` torch threads and restore the count after it (None: leave the setting alone)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def update_threads(chooser: ThreadChooser | None, iteration_start_s: float) -> Iterator[int]:
    """Run a training iteration's update on ``chooser``'s count (None: the process's setting) and yield that count;
    when the block ends, record the iteration's time since ``iteration_start_s`` (a ``time.perf_counter()`` reading
    taken before its rollout) with the chooser."""
    chosen = chooser.next() if chooser is not None else None
    with torch_threads(chosen):
        n_threads = torch.get_num_threads()
        yield n_threads
    if chooser is not None:
        chooser.record(n_threads, time.perf_counter() - iteration_start_s)
