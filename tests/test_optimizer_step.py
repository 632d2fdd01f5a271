"""benchmarks.optimizer_step's rows compute the same step for every optimizer, and its
reference check tells when a flat update's formula is off."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks import optimizer_step as osb
from benchmarks.harness import Samples


@pytest.mark.parametrize("name", list(osb.OPTIMIZERS))
def test_rows_agree_over_three_float64_steps(name: str) -> None:
    osb.reference_check(osb.OPTIMIZERS[name])


@pytest.mark.parametrize("name", list(osb.OPTIMIZERS))
def test_reference_check_catches_a_flat_update_slightly_off(name: str) -> None:
    """The hand-tuned update with lr 1e-7 too large: graphc no longer agrees with it."""
    rule = osb.OPTIMIZERS[name]

    def too_far(hyper, *arrays) -> None:
        rule.update({**hyper, "lr": hyper["lr"] * (1 + 1e-7)}, *arrays)

    with pytest.raises(AssertionError, match=f"{rule.graphc_class} graphc"):
        osb.reference_check(replace(rule, update=too_far))


def test_rows_are_grouped_into_one_table_per_optimizer() -> None:
    samples = Samples({"adam/hand_tuned_flat": [1.0, 1.0], "adam/graphc": [1.5, 1.5],
                           "rmsprop/hand_tuned_flat": [2.0, 2.0], "rmsprop/graphc": [2.2, 2.2]},
                          {"rmsprop/graphc_O3": "not built"})
    markdown = osb.render_by_optimizer(["adam", "rmsprop"], samples)
    adam, rmsprop = markdown.split("### rmsprop")
    assert "| graphc | 1,500,000 | ±0.0% | 1.50 |" in adam
    assert "| graphc | 2,200,000 | ±0.0% | 1.10 |" in rmsprop
    assert "graphc_O3: not built" in rmsprop and "graphc_O3" not in adam
