"""The README's front-door example prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_ten_lines_print_the_code_shown(tmp_path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if b.startswith("import graphc as gc"))
    shown = next(b for b in blocks if b.startswith("def main("))
    script = tmp_path / "ten_lines.py"  # run from a file: names come from its variables
    script.write_text(snippet)
    printed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             check=True).stdout
    assert shown in printed
