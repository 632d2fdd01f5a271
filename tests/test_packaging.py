"""The package as pip installs it: built without packaging warnings, with the examples inside,
so that the installed ``graphc`` command trains ``mlp_digits`` by name from an empty
directory, far from any clone."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, str]:
    """graphc built into a wheel and installed into a folder of its own (its dependencies
    come from this environment); returns the folder and what the build printed."""
    pytest.importorskip("setuptools")
    folder = tmp_path_factory.mktemp("installed")
    built = run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                 "-w", str(folder / "wheel"), str(ROOT)])
    assert built.returncode == 0, built.stderr
    (wheel,) = (folder / "wheel").glob("graphc-*.whl")
    done = run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                str(folder / "site"), str(wheel)])
    assert done.returncode == 0, done.stderr
    return folder, built.stdout + built.stderr


def test_the_build_prints_no_packaging_warning(installed):
    _, log = installed
    assert "deprecated" not in log.lower() and "BuildBackendWarning" not in log
    assert "SetuptoolsWarning" not in log


def test_the_wheel_holds_the_examples(installed):
    folder, _ = installed
    (wheel,) = (folder / "wheel").glob("graphc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"graphc_examples/mlp_digits.py", "graphc_examples/cnn_digits.py",
            "graphc_examples/add_mul.py"} <= set(names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    for extra in ("data", "plot", "test", "all"):
        assert f"Provides-Extra: {extra}" in text


def test_the_installed_command_trains_an_example_by_name_from_an_empty_directory(installed,
                                                                                  tmp_path):
    pytest.importorskip("sklearn")
    folder, _ = installed
    site = folder / "site"
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = run([sys.executable, "-c", "import graphc, graphc_examples; "
                 "print(graphc.__file__, *graphc_examples.__path__)"], env=env, cwd=tmp_path)
    assert where.stdout.split() == [str(site / "graphc" / "__init__.py"),
                                    str(site / "graphc_examples")]
    trained = run([str(site / "bin" / "graphc"), "train", "mlp_digits", "--epochs", "1"],
                  env=env, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "training mlp_digits on digits" in trained.stdout
    assert "test accuracy" in trained.stdout
    listed = run([str(site / "bin" / "graphc"), "examples"], env=env, cwd=tmp_path)
    assert str(site / "graphc_examples") in listed.stdout
