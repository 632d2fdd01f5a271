"""``python -m benchmarks.adam_step``, the earlier name of the Adam rows of
`benchmarks.optimizer_step`: it runs ``python -m benchmarks.optimizer_step --optimizer adam``
with the arguments given, so that the command of docs/benchmarks.md's Adam section still
gives its tables."""

from __future__ import annotations

import sys

from benchmarks.optimizer_step import main

if __name__ == "__main__":
    sys.exit(main(["--optimizer", "adam", *sys.argv[1:]]))
