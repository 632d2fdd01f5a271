#!/usr/bin/env bash
# Everything graphc needs on a fresh Debian/Ubuntu machine: Graphviz's `dot` and, for the
# viewer's browser tests, Chromium and chromedriver (with apt, where it runs as root), and the
# package with its test and data extras, in a virtual environment .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v dot >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) \
            || echo "note: could not install Graphviz; figures will be written as .dot files"
    else
        echo "note: Graphviz's dot is missing (apt-get install graphviz); figures fall back to .dot"
    fi
fi
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
    # the viewer's browser tests (tests/test_viewer.py) drive Debian's headless Chromium
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
            || echo "note: could not install Chromium; the viewer's browser tests will skip"
    else
        echo "note: Chromium is missing (apt-get install chromium chromium-driver);" \
             "the viewer's browser tests skip"
    fi
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test,data]'
