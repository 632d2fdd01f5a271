"""``python -m benchmarks.adam_step``, the earlier name of `benchmarks.optimizer_step`, kept
so that the command of docs/benchmarks.md's Adam section still runs."""

from __future__ import annotations

import sys

from benchmarks.optimizer_step import main

if __name__ == "__main__":
    sys.exit(main())
