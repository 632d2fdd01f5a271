#!/usr/bin/env bash
# The test command: set up (idempotent), lint (ruff, import-linter's layers contract and mypy,
# both configured in pyproject.toml), run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check graphc tests examples benchmarks
.venv/bin/lint-imports
.venv/bin/mypy
.venv/bin/python -m pytest -p no:cacheprovider "$@"
