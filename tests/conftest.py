"""Shared test set-up: the package on the path, and Hypothesis profiles.

The default profile is derandomized (the same examples at every run, so CI never flakes);
``GRAPHC_HYPOTHESIS_PROFILE=nightly`` draws fresh examples, ten times as many (see
``helpers.examples``; the fuzz tests draw 2,000 each), for the nightly run.
"""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
for _path in (ROOT, TESTS):
    if _path not in sys.path:
        sys.path.insert(0, _path)

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("default", derandomize=True, **_common)
settings.register_profile("nightly", derandomize=False, **_common)
settings.load_profile(os.environ.get("GRAPHC_HYPOTHESIS_PROFILE", "default"))
