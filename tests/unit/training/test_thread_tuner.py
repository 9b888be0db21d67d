"""The thread tuner: it follows the faster count as the (simulated) load changes, keeps its probes rare on a
steady machine, and the counts it switches between train the same weights (MKL's strict mode, the sequence
models' RNN outside oneDNN: a fresh process, since MKL reads MKL_CBWR when it loads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqlab.core import threads as policy
from seqlab.training.thread_tuner import ThreadTuner, ladder, training_threads, tuning_allowed

REPO = Path(__file__).resolve().parents[3]


class Machine:
    """A step takes `cost[threads]` seconds of a fake clock; the tuner sets `threads`."""

    def __init__(self, cost: dict[int, float]) -> None:
        self.cost, self.now, self.threads, self.sets = cost, 0.0, 0, 0

    def set_threads(self, n: int) -> None:
        self.threads, self.sets = n, self.sets + 1

    def clock(self) -> float:
        return self.now

    def run(self, tuner: ThreadTuner, steps: int) -> dict[int, int]:
        ran: dict[int, int] = {}
        for _ in range(steps):
            assert self.threads == tuner.threads
            self.now += self.cost[self.threads]
            ran[self.threads] = ran.get(self.threads, 0) + 1
            tuner.step_done()
        return ran


def test_ladder_halves_down_to_one():
    assert ladder(2) == [2, 1]
    assert ladder(16) == [16, 8, 4, 2, 1]
    assert ladder(3) == [3, 1]
    assert ladder(1) == [1]


def test_idle_machine_keeps_all_threads_and_probes_rarely():
    machine = Machine({2: 1.0, 1: 1.6})
    tuner = ThreadTuner(2, set_threads=machine.set_threads, clock=machine.clock)
    ran = machine.run(tuner, 4000)
    assert tuner.threads == 2 and tuner.switches == 0
    assert ran[1] / 4000 < 0.03  # the probes' share once the gap has grown


def test_a_busy_neighbour_moves_it_to_one_thread_and_back_when_it_leaves():
    machine = Machine({2: 1.0, 1: 1.6})
    tuner = ThreadTuner(2, set_threads=machine.set_threads, clock=machine.clock)
    machine.run(tuner, 3000)
    machine.cost = {2: 8.0, 1: 1.7}  # a busy process arrives: two spinning threads stall each other
    ran = machine.run(tuner, 300)
    assert tuner.threads == 1
    assert ran[1] > 200  # noticed within a few windows, not after the long gap
    machine.cost = {2: 1.0, 1: 1.6}  # it leaves: one thread is now the slower choice (and its steps get faster)
    machine.run(tuner, 400)
    assert tuner.threads == 2


def test_many_cores_walk_the_ladder_to_the_fastest():
    machine = Machine({16: 3.0, 8: 2.0, 4: 1.0, 2: 1.5, 1: 2.5})
    tuner = ThreadTuner(16, set_threads=machine.set_threads, clock=machine.clock)
    machine.run(tuner, 2000)
    assert tuner.threads == 4


def test_a_pause_is_not_counted_as_a_step():
    machine = Machine({2: 1.0, 1: 1.6})
    tuner = ThreadTuner(2, set_threads=machine.set_threads, clock=machine.clock)
    for _ in range(100):
        machine.run(tuner, 10)
        machine.now += 500.0  # validation between epochs
        tuner.pause()
    assert tuner.threads == 2 and tuner.switches == 0


def test_mean_threads_since_a_snapshot():
    machine = Machine({2: 1.0, 1: 1.6})
    tuner = ThreadTuner(2, set_threads=machine.set_threads, clock=machine.clock)
    machine.run(tuner, 21)
    before = dict(tuner.steps)
    machine.run(tuner, 30)  # the probe's 21 steps at one thread (its first one untimed), then back at two
    assert 1.0 < tuner.mean_threads(since=before) < 2.0
    assert tuner.mean_threads(since=tuner.steps) == tuner.threads


def test_tuning_is_off_where_the_count_is_fixed():
    assert tuning_allowed({}, 1)
    assert not tuning_allowed({}, 2)  # DDP
    assert not tuning_allowed({"SEQLAB_THREADS": "2"}, 1)
    assert not tuning_allowed({"OMP_NUM_THREADS": "2"}, 1)
    assert tuning_allowed({"OMP_NUM_THREADS": "2", policy.SET_ENV: "OMP_NUM_THREADS"}, 1)  # the policy's own
    assert not tuning_allowed({"SEQLAB_THREAD_TUNER": "off"}, 1)
    assert not tuning_allowed({"SEQLAB_THREAD_POLICY": "off"}, 1)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_a_task_with_a_fixed_count_trains_on_it_untuned(two_threads):
    assert training_threads(1, {}, 1) is None
    assert torch.get_num_threads() == 1


def test_the_users_count_beats_the_tasks(two_threads):
    for env, world_size in (({"SEQLAB_THREADS": "2"}, 1), ({"OMP_NUM_THREADS": "2"}, 1), ({}, 2),
                            ({"SEQLAB_THREAD_POLICY": "off"}, 1)):
        assert training_threads(1, env, world_size) is None
        assert torch.get_num_threads() == 2, env


def test_a_task_without_one_is_tuned_unless_the_tuner_is_off(two_threads):
    tuner = training_threads(None, {}, 1)
    assert isinstance(tuner, ThreadTuner) and tuner.counts == [2, 1]
    assert training_threads(None, {"SEQLAB_THREAD_TUNER": "off"}, 1) is None
    assert torch.get_num_threads() == 2


def test_the_sequence_models_train_on_one_fixed_thread():
    from seqlab.core.registry import task_class
    assert task_class("kth").training_threads == task_class("binary_add").training_threads == 1
    assert task_class("ocr").training_threads is None


# Every model family's training step, under a changing thread count and under a fixed one, in a process that
# the policy started (it sets MKL_CBWR before torch loads MKL).
SAME_WEIGHTS = """
import json, sys
from pathlib import Path
from seqlab.core import threads
threads.apply()
import torch
from seqlab.bench import threads as bench
from seqlab.core.config import load_params
from seqlab.training.loop import make_scheduler, train_step
params = load_params(Path(sys.argv[1]))
def train(model, counts):
    task, net, batch, cfg = bench.step_setup(params, model)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(opt, "constant", 1)
    for n in counts:
        torch.set_num_threads(n)
        train_step(task, net, batch, opt, sched, cfg.grad_clip)
    return net.state_dict()
out = {}
for model in bench.MODELS:
    if bench.step_setup(params, model)[0].training_threads is not None:
        continue  # trains on its own fixed count, never tuned
    fixed, changing = train(model, [2] * 6), train(model, [1, 2, 1, 1, 2, 1])
    out[model] = [k for k in fixed if not torch.equal(fixed[k], changing[k])]
print(json.dumps(out))
"""


@pytest.mark.slow  # builds every model in a fresh process
def test_a_changing_thread_count_trains_the_same_weights(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (*policy.VARS, policy.SET_ENV, policy.SWITCH_ENV)}
    proc = subprocess.run([sys.executable, "-c", SAME_WEIGHTS, str(REPO / "params.yaml")], capture_output=True,
                          text=True, env={**env, "PYTHONPATH": str(REPO / "src")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    differing = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(differing) == {"ocr-bilstm", "ocr-crnn"}  # kth and binary_add train on one fixed thread
    assert differing == {model: [] for model in differing}
