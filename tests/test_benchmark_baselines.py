"""The benchmark baselines compute a correct training step, and the harness reports them right."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from numpy.typing import DTypeLike

from benchmarks import mlp_baselines as mb
from benchmarks.harness import BenchmarkUnavailable, compare, table

BATCH = 8


def test_implementations_agree_on_one_float64_step() -> None:
    losses = mb.reference_step_check(batch=BATCH)
    assert {"hand_tuned", "textbook"} <= losses.keys()
    assert all(np.isfinite(loss) and loss > 0 for loss in losses.values())


def test_reference_check_catches_an_update_that_is_slightly_off() -> None:
    def too_far(batch: int, dtype: DTypeLike, seed: int = 0) -> mb.TrainingStep:
        base = mb.make_textbook(batch, dtype, seed)

        def step() -> float:
            before = [p.copy() for p in base.params]
            loss = base()
            for param, old in zip(base.params, before, strict=True):
                param += 1e-4 * (param - old)
            return loss

        return mb.TrainingStep(step, lambda: base.params)

    factories = {"textbook": mb.make_textbook, "too_far": too_far}
    with pytest.raises(AssertionError, match="too_far: the update of W1"):
        mb.reference_step_check(batch=BATCH, factories=factories)


def test_hand_tuned_gradient_matches_finite_differences() -> None:
    """The update is -lr times the true gradient, which the agreeing steps could share wrongly."""
    step = mb.make_hand_tuned(BATCH, np.float64)
    before = [p.copy() for p in step.params]
    step()
    after = step.params
    gradients = [(old - new) / mb.LEARNING_RATE for old, new in zip(before, after, strict=True)]

    def loss_with(param: int, index: tuple[int, ...], delta: float) -> float:
        probe = mb.make_textbook(BATCH, np.float64)
        probe.params[param][index] += delta
        return probe()

    eps = 1e-6
    for param, index in [(0, (3, 5)), (1, (7,)), (2, (10, 20)), (3, (2,)), (4, (0, 9)), (5, (2,))]:
        numeric = (loss_with(param, index, eps) - loss_with(param, index, -eps)) / (2 * eps)
        assert gradients[param][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_gemm_floor_runs_and_has_no_loss() -> None:
    assert np.isnan(mb.make_gemm_floor(BATCH, np.float32)())


def test_compare_alternates_and_table_has_ratio_one_for_hand_tuned() -> None:
    names = ["hand_tuned", "textbook", "gemm_floor"]
    calls: list[str] = []

    def recorded(name: str) -> mb.TrainingStep:
        step = mb.IMPLEMENTATIONS[name](BATCH, np.float32)

        def call() -> float:
            calls.append(name)
            return step()

        return mb.TrainingStep(call, lambda: [])

    def unavailable() -> mb.TrainingStep:
        raise BenchmarkUnavailable("no such package")

    factories = {name: partial(recorded, name) for name in names}
    factories["missing"] = unavailable
    samples = compare(factories, repeats=3, inner=1, warmup=1)

    assert {name: len(times) for name, times in samples.items()} == dict.fromkeys(names, 3)
    assert samples.skipped == {"missing": "no such package"}
    rotations = [names[r:] + names[:r] for r in range(3)]
    assert calls == names + [name for order in rotations for name in order]

    markdown = table(samples)
    rows = {
        cells[0]: cells
        for line in markdown.splitlines()[2:]
        if line.startswith("|")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert rows.keys() == set(names)
    assert rows["hand_tuned"][3] == "1.00"  # columns: name, median, spread, × hand_tuned, ...
    assert rows["gemm_floor"][4] == "1.00"
    assert "missing" in markdown and "no such package" in markdown
