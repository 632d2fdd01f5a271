"""benchmarks.optimizer_step's rows compute the same step for every optimizer, and its
reference check tells when one of them is off: a flat update's formula, or the arguments a
library row is built with."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks import optimizer_step as osb
from benchmarks.harness import BenchmarkUnavailable, Samples

#: Every row but the reference, each checked against hand_tuned_flat on its own.
ROWS = [row for row in osb.FACTORIES if row != "hand_tuned_flat"]


def _check_or_skip(row: str, optimizer: osb.Rule, **check: object) -> None:
    """reference_check of `row` against hand_tuned_flat; skipped where `row` cannot run here
    (its library missing, or no fused implementation of `optimizer`)."""
    factories = {"hand_tuned_flat": osb.make_hand_tuned_flat, row: osb.FACTORIES[row]}
    skipped = osb.reference_check(optimizer, factories, **check)
    if row in skipped:
        pytest.skip(skipped[row])


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("name", list(osb.OPTIMIZERS))
def test_row_agrees_over_three_float64_steps(name: str, row: str) -> None:
    _check_or_skip(row, osb.OPTIMIZERS[name])


@pytest.mark.parametrize("row", ROWS)
def test_row_agrees_in_float32_after_a_float64_run(row: str) -> None:
    """float32 to 1e-4 (graphc and JAX compute Adam's bias corrections in float32, 7e-6 off
    the others), after a float64 run has switched JAX's x64 mode on for the process: the
    float32 rows must stay float32 under it."""
    _check_or_skip(row, osb.OPTIMIZERS["adam"], steps=1)
    _check_or_skip(row, osb.OPTIMIZERS["adam"], dtype=np.float32, rtol=1e-4)


@pytest.mark.parametrize("name", list(osb.OPTIMIZERS))
def test_reference_check_catches_a_flat_update_slightly_off(name: str) -> None:
    """The hand-tuned update with lr 1e-7 too large: graphc no longer agrees with it."""
    rule = osb.OPTIMIZERS[name]

    def too_far(hyper, *arrays) -> None:
        rule.update({**hyper, "lr": hyper["lr"] * (1 + 1e-7)}, *arrays)

    with pytest.raises(AssertionError, match=f"{rule.graphc_class} graphc"):
        osb.reference_check(replace(rule, update=too_far))


@pytest.mark.parametrize("row", ["torch_eager", "torch_fused", "jax_jit"])
def test_reference_check_catches_a_library_row_slightly_off(row: str) -> None:
    """The library row built with an Adam lr 1e-7 too large, the hand-tuned one with the
    right lr: the check fails and names the library row."""
    rule = osb.OPTIMIZERS["adam"]
    off = replace(rule, hyper={**rule.hyper, "lr": rule.hyper["lr"] * (1 + 1e-7)})
    try:
        osb.FACTORIES[row](8, np.float64, optimizer=off)
    except BenchmarkUnavailable as exc:
        pytest.skip(str(exc))

    def right_lr(batch: int, dtype: object, optimizer: osb.Rule) -> osb.Step:
        return osb.make_hand_tuned_flat(batch, dtype, optimizer=rule)

    with pytest.raises(AssertionError, match=f"Adam {row}: "):
        osb.reference_check(off, {"hand_tuned_flat": right_lr, row: osb.FACTORIES[row]})


def test_a_fused_rmsprop_is_unavailable_with_its_reason() -> None:
    pytest.importorskip("torch")
    with pytest.raises(BenchmarkUnavailable, match="RMSprop has no fused implementation"):
        osb.FACTORIES["torch_fused"](8, np.float32, optimizer=osb.OPTIMIZERS["rmsprop"])


def test_rows_are_grouped_into_one_table_per_optimizer() -> None:
    samples = Samples({"adam/hand_tuned_flat": [1.0, 1.0], "adam/graphc": [1.5, 1.5],
                       "rmsprop/hand_tuned_flat": [2.0, 2.0], "rmsprop/graphc": [2.2, 2.2]},
                      {"rmsprop/torch_fused": "no fused RMSprop"})
    calls = {"adam": {"graphc": 47, "hand_tuned_flat": 47}, "rmsprop": {"graphc": 35}}
    markdown = osb.render_by_optimizer(["adam", "rmsprop"], calls, samples)
    adam, rmsprop = markdown.split("### rmsprop")
    assert "| graphc | 1,500,000 | ±0.0% | 1.50 | 47 |" in adam
    assert "| graphc | 2,200,000 | ±0.0% | 1.10 | 35 |" in rmsprop
    assert "| hand_tuned_flat | 2,000,000 | ±0.0% | 1.00 | - |" in rmsprop
    assert "torch_fused: no fused RMSprop" in rmsprop and "torch_fused" not in adam


def test_numpy_calls_of_the_numpy_rows() -> None:
    """graphc's count is its report's; the hand-tuned step's is counted from its source with
    the flat update's body in place of its call: Adam's 13 calls on arrays and its Python
    scalar arithmetic, on top of the forward and backward pass."""
    adam, momentum = osb.OPTIMIZERS["adam"], osb.OPTIMIZERS["momentum"]
    hand = {name: osb.make_hand_tuned_flat(8, np.float64, optimizer=opt).numpy_calls
            for name, opt in (("adam", adam), ("momentum", momentum))}
    assert hand["adam"] - hand["momentum"] >= 13 - 4
    graphc = osb.make_graphc(8, np.float64, optimizer=adam)
    assert 30 < graphc.numpy_calls < 60
