"""benchmarks.compare_commits builds every workload as a standalone module and times two
builds against each other: here both from this tree, so the ratios can only be noise, and the
modules must run on their own (numpy only) and train."""

from __future__ import annotations

import numpy as np

from benchmarks import compare_commits


def test_both_builds_load_run_and_compare(tmp_path):
    for tag in ("old", "new"):
        compare_commits.build(str(tmp_path), tag)
    module = compare_commits._load(str(tmp_path / "new_digits_adam_float64.py"))
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((8, 64)), "labels": rng.integers(0, 10, 8)}
    losses = [float(module.main(**feeds)[0]) for _ in range(5)]
    assert losses[-1] < losses[0]
    rows = compare_commits.compare(str(tmp_path), rounds=1)
    batches = sum(len(b) for _, _, b in compare_commits.WORKLOADS.values())
    assert len(rows) == 2 + batches
    assert all(float(row.rsplit("|", 2)[1]) > 0 for row in rows[2:])
