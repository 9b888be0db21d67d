"""The intra-op thread count of a training process, chosen while it trains by timing its own steps.

Why: on a 2-core machine beside one busy process, two spinning OpenMP threads ran the OCR BiLSTM's step at
0.12x its idle speed and one thread at 1.0x, while on the idle machine one thread costs the CRNN half its
speed (docs/threads.md). No count chosen at start-up is right for both, and the load changes while a run
trains (a second queued experiment, a CI neighbour), so the loop measures: it times a window of steps at the
current count, then a window at a neighbouring count (half or double, within 1..the policy's count), keeps the
faster one, and re-checks after a gap that doubles while the choice holds (the probes' cost on an idle machine
shrinks to ~1%) and shrinks back when the step time moves by half or more (the load changed).

The choice cannot change what is trained: seqlab.core.threads makes MKL's results independent of the thread
count (MKL_CBWR's strict mode), and a test checks that steps under changing counts give the same weights as
steps under a fixed one. A task whose kernels are not count-invariant (oneDNN's RNN, which kth and binary_add
run) names a fixed count instead (Task.training_threads), and is never tuned.

Off (the count stays as the policy set it) when the user fixed the threads (SEQLAB_THREADS, OMP_NUM_THREADS),
in DDP (every rank waits for the slowest at each step), or with SEQLAB_THREAD_TUNER=off.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch

from seqlab.core import threads as policy

WINDOW = 20  # steps timed per count: long enough that the batches' own spread averages out
FIRST_GAP = 100  # steps between decisions after a switch
MAX_GAP = 1600  # ... doubling up to this while the choice holds
MARGIN = 0.15  # a count must be this much faster to replace the current one
MOVED = 1.5  # a window this much slower or faster than the chosen count's reference: re-check now
TUNER_ENV = "SEQLAB_THREAD_TUNER"  # "off": keep the policy's count


def ladder(threads: int) -> list[int]:
    """The counts tried, most first: `threads`, then halving down to 1."""
    counts = [max(1, threads)]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


class ThreadTuner:
    """Call `step_done()` after every training step and `pause()` before anything that is not one (validation);
    the tuner sets torch's thread count itself. `clock` and `set_threads` are replaceable for tests."""

    def __init__(self, threads: int, *, window: int = WINDOW, first_gap: int = FIRST_GAP, max_gap: int = MAX_GAP,
                 margin: float = MARGIN, set_threads: Callable[[int], None] = torch.set_num_threads,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.counts = ladder(threads)
        self.window, self.first_gap, self.max_gap, self.margin = window, first_gap, max_gap, margin
        self._set, self._clock = set_threads, clock
        self.index = 0  # into counts: the chosen count
        self._trying = 0  # the count being timed now
        self._phase = "measure"  # measure (the chosen count) -> probe (a neighbour) -> run (gap steps) -> measure
        self._times: list[float] = []
        self._chosen_median = 0.0
        self._reference: float | None = None  # the chosen count's median at the last decision
        self._gap, self._left = first_gap, 0
        self._direction = 1  # the next probe's neighbour: +1 fewer threads, -1 more
        self._last: float | None = None
        self._skip = True  # the first step after a switch pays the threads' wake-up
        self.steps: dict[int, int] = {}  # steps run per count
        self.switches = 0
        self.decisions = 0  # probes decided
        self._set(self.counts[0])

    @property
    def threads(self) -> int:
        """The count the next step runs with."""
        return self.counts[self._trying]

    def pause(self) -> None:
        """The time until the next step_done is not a step's."""
        self._last = None

    def step_done(self) -> None:
        now = self._clock()
        last, self._last = self._last, now
        self.steps[self.threads] = self.steps.get(self.threads, 0) + 1
        if last is None or self._skip:
            self._skip = False
            return
        self._record(now - last)

    def mean_threads(self, since: Mapping[int, int] | None = None) -> float:
        """The step-weighted mean count of the steps run since `since` (a copy of `steps` then; None: all)."""
        run = {k: v - (since or {}).get(k, 0) for k, v in self.steps.items()}
        total = sum(run.values())
        return sum(k * v for k, v in run.items()) / total if total else float(self.threads)

    def _record(self, seconds: float) -> None:
        if self._phase == "run":
            self._left -= 1
            self._times.append(seconds)
            if len(self._times) == self.window:
                median, self._times = statistics.median(self._times), []
                ref = self._reference
                if ref is not None and (median > ref * MOVED or median < ref / MOVED):
                    self._gap, self._left = self.first_gap, 0  # the load changed: decide again now
            if self._left <= 0:
                self._phase, self._times = "measure", []
            return
        self._times.append(seconds)
        if len(self._times) < self.window:
            return
        median, self._times = statistics.median(self._times), []
        if self._phase == "measure":
            self._chosen_median = median
            probe = self._neighbour()
            if probe is None:  # one count only (one core): nothing to compare
                self.decisions += 1
                self._start_run(median, grow=True)
                return
            self._phase = "probe"
            self._switch_to(probe)
            return
        self.decisions += 1
        if median < self._chosen_median * (1 - self.margin):  # the neighbour is faster: it becomes the choice
            self.index = self._trying
            self.switches += 1
            self._start_run(median, grow=False)
        else:
            self._switch_to(self.index)
            self._direction = -self._direction
            self._start_run(self._chosen_median, grow=True)

    def _neighbour(self) -> int | None:
        for direction in (self._direction, -self._direction):
            probe = self.index + direction
            if 0 <= probe < len(self.counts):
                self._direction = direction
                return probe
        return None

    def _switch_to(self, index: int) -> None:
        if index != self._trying:
            self._trying = index
            self._set(self.counts[index])
            self._skip = True

    def _start_run(self, reference: float, grow: bool) -> None:
        self._gap = min(self._gap * 2, self.max_gap) if grow else self.first_gap
        self._phase, self._left, self._times, self._reference = "run", self._gap, [], reference


def training_threads(fixed: int | None, env: Mapping[str, str], world_size: int) -> ThreadTuner | None:
    """Set a training process's thread count and return the tuner that adjusts it while it trains (None: the count
    stays). `fixed`, a task's Task.training_threads, replaces the policy's count unless the count is the user's."""
    if count_is_given(env, world_size):
        return None
    if fixed is not None:
        torch.set_num_threads(max(1, min(fixed, torch.get_num_threads())))
        return None
    return ThreadTuner(torch.get_num_threads()) if tuning_allowed(env, world_size) else None


def count_is_given(env: Mapping[str, str], world_size: int) -> bool:
    """Whether the thread count is the user's or DDP's (SEQLAB_THREADS, OMP_NUM_THREADS, the policy off, ranks)."""
    return (world_size > 1 or env.get(policy.SWITCH_ENV, "").lower() == "off" or bool(env.get(policy.THREADS_ENV))
            or "OMP_NUM_THREADS" in policy.user_env(env))


def tuning_allowed(env: Mapping[str, str], world_size: int) -> bool:
    """Whether a training process may tune its thread count (see the module docstring for when it does not)."""
    return not count_is_given(env, world_size) and env.get(TUNER_ENV, "").lower() != "off"

