"""The graphc command: emit, render, examples and train's options (checkpoints and
resumption are tested in test_checkpoint.py), and its manners: a user's mistake is one
message naming the file and line with exit status 2, ``--debug`` adds the traceback, and a
bug in graphc is not disguised as a user error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import graphc
from graphc.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


def example(name: str) -> str:
    return str(EXAMPLES / name)


def broken(tmp_path: Path, old: str, new: str, name: str = "broken.py") -> Path:
    """The digits MLP example with one piece of text replaced: a user's mistake."""
    text = (EXAMPLES / "mlp_digits.py").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, text: str) -> int:
    return next(k for k, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# --- manners ---------------------------------------------------------------------------------
def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"graphc {graphc.__version__}\n"


@pytest.mark.parametrize("old, new, failing, said", [
    ("gc.relu(x @ W1", "gc.rleu(x @ W1", "gc.rleu(",
     "AttributeError: module 'graphc' has no attribute 'rleu' (did you mean 'relu'?)"),
    ("h1 = gc.relu(x @ W1 + b1)", "h1 = gc.relu(x @ W1 + b1", "h1 = ",
     "SyntaxError: '(' was never closed"),
    ("(64, 128)", "(63, 128)", "h1 = ", "inner dimensions 64 and 63 differ"),  # at the matmul
])
def test_a_mistake_in_an_example_is_one_message_with_its_file_and_line(tmp_path, capsys, old,
                                                                        new, failing, said):
    path = broken(tmp_path, old, new)
    assert main(["emit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "importlib" not in err
    assert err.startswith("graphc emit: ") and said in err
    lineno = line_of(path, failing)
    assert f"{path.name}:{lineno}" in err, err
    assert path.read_text().splitlines()[lineno - 1].strip() in err  # the line, quoted


def test_a_file_that_is_not_python_is_one_message(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("x = 1\n")
    assert main(["emit", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "not a Python file" in err and "notes.txt" in err


def test_a_missing_extra_says_which_one_to_install(tmp_path, capsys, monkeypatch):
    path = broken(tmp_path, "import graphc as gc\n",
                  "import graphc as gc\nfrom sklearn.datasets import load_digits as _\n")
    for module in ("sklearn", "sklearn.datasets"):  # as if scikit-learn were not installed
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path.name}:{line_of(path, 'sklearn')}: ModuleNotFoundError" in err
    assert "pip install 'graphc[data]'" in err and "Traceback" not in err
    assert main(["train", "mlp_digits"]) == 2  # graphc.data.load_digits finds it missing
    err = capsys.readouterr().err
    assert err.startswith("graphc train: load_digits needs scikit-learn")
    assert "pip install 'graphc[data]'" in err and "Traceback" not in err


def test_debug_adds_the_traceback(tmp_path, capsys):
    path = broken(tmp_path, "gc.relu(x @ W1", "gc.rleu(x @ W1")
    assert main(["--debug", "emit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "AttributeError" in err
    assert main(["emit", str(path), "--debug"]) == 2  # after the command too, as pip takes it
    assert "Traceback" in capsys.readouterr().err


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    path = broken(tmp_path, "gc.relu(x @ W1", "gc.rleu(x @ W1")
    done = subprocess.run([sys.executable, "-m", "graphc.cli.main", "emit", str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 2 and "Traceback" not in done.stderr  # message + line


def test_a_bug_in_graphc_keeps_its_traceback(monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("an internal error")

    monkeypatch.setattr("graphc.cli.main.build_program", bug)
    with pytest.raises(RuntimeError, match="an internal error"):
        main(["emit", example("add_mul.py")])


def test_a_missing_example_names_the_shipped_ones(capsys):
    assert main(["emit", "no/such/example.py"]) == 2
    err = capsys.readouterr().err
    assert "no example file at 'no/such/example.py'" in err and "mlp_digits" in err


def test_an_unwritable_output_is_a_user_error(tmp_path, capsys):
    target = tmp_path / "missing-folder" / "step.py"
    assert main(["emit", example("add_mul.py"), "-o", str(target)]) == 2
    assert capsys.readouterr().err == (f"graphc emit: {target}: No such file or directory\n")


# --- examples by name --------------------------------------------------------------------------
def test_examples_are_listed_and_run_by_name_from_any_directory(tmp_path, monkeypatch, capsys):
    assert main(["examples"]) == 0
    listing = capsys.readouterr().out
    for name in ("add_mul", "mlp_digits", "cnn_digits", "sigmoid_neuron"):
        assert f"\n{name} " in "\n" + listing
    monkeypatch.chdir(tmp_path)
    assert main(["emit", "add_mul"]) == 0
    assert "def main(x, y, z" in capsys.readouterr().out


# --- emit --------------------------------------------------------------------------------------
def test_emit_writes_the_generated_module(tmp_path, capsys):
    out = tmp_path / "step.py"
    assert main(["emit", example("mlp_digits.py"), "-o", str(out)]) == 0
    source = out.read_text()
    compile(source, str(out), "exec")
    assert "def main(x, labels, W1, b1, W2, b2" in source and "flat_params -= " in source
    assert "(optimize=2)" in source
    assert "generated code written to" in capsys.readouterr().out


@pytest.mark.parametrize("stage, written_as", [
    ("source", "np.exp("),       # 1 / (1 + exp(-dot)) as the user wrote it
    ("stabilize", "sigmoid("),   # rewritten to the stable sigmoid
])
def test_emit_stage_prints_the_code_after_that_pass(capsys, stage, written_as):
    assert main(["emit", example("sigmoid_neuron.py"), "--stage", stage]) == 0
    code = capsys.readouterr().out
    forward = code.split("# backward")[0]
    assert written_as in forward
    assert ("sigmoid(" in forward) == (stage == "stabilize")
    header = code.splitlines()[0]
    assert f"(stage {stage} of -O 2: " in header and "optimize=-1" not in header


def test_emit_stage_gemm_implies_the_gemm_pipeline(capsys):
    assert main(["emit", example("mlp_digits.py"), "--stage", "gemm"]) == 0
    code = capsys.readouterr().out
    assert ("(stage gemm of -O 3: stabilize, fold_lr, cse, fuse, simplify, gemm)"
            in code.splitlines()[0])
    assert main(["emit", example("mlp_digits.py"), "--stage", "gemm", "-O", "3"]) == 0
    assert capsys.readouterr().out == code


def test_emit_stage_memory_is_the_levels_code_with_buffers(capsys):
    """``--stage memory`` prints what ``emit`` prints (the level's passes, then the backend's
    buffers), its header naming the stage; a pass's stage is printed without buffers."""
    assert main(["emit", example("mlp_digits.py")]) == 0
    default = capsys.readouterr().out
    assert main(["emit", example("mlp_digits.py"), "--stage", "memory"]) == 0
    planned = capsys.readouterr().out
    header = "(stage memory of -O 2: stabilize, fold_lr, cse, fuse, simplify, flatten, memory)"
    assert header in planned.splitlines()[0]
    assert planned == default.replace("(optimize=2)", header, 1)
    assert main(["emit", example("mlp_digits.py"), "--stage", "simplify"]) == 0
    unplanned = capsys.readouterr().out
    assert "_buffers" in planned and "_buffers" not in unplanned and "out=" not in unplanned
    assert main(["emit", example("add_mul.py"), "-O", "1", "--stage", "memory"]) == 2
    assert "buffers are not planned at -O 1; they are at -O 2 and 3" in capsys.readouterr().err


def test_emit_stage_lists_its_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["emit", example("add_mul.py"), "--stage", "fusion"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'fusion'" in err
    for stage in ("source", "stabilize", "fold_lr", "cse", "fuse", "simplify", "gemm", "memory"):
        assert f"'{stage}'" in err


def test_emit_stage_outside_the_level_asked_for_says_where_it_runs(capsys):
    assert main(["emit", example("add_mul.py"), "-O", "1", "--stage", "fuse"]) == 2
    assert "the fuse pass does not run at -O 1; it runs at -O 2 and 3" in capsys.readouterr().err


# --- train -----------------------------------------------------------------------------------
def train(tmp_path: Path, *options: str) -> int:
    pytest.importorskip("sklearn")
    return main(["train", "logistic_regression", "--checkpoint-dir", str(tmp_path / "ck"),
                 *options])


def test_train_takes_lr_batch_size_and_epochs(tmp_path, capsys):
    assert train(tmp_path, "--lr", "0.05", "--batch-size", "100", "--epochs", "2") == 0
    out = capsys.readouterr().out
    assert "SGD(lr=0.05," in out and "minibatches of 100" in out and "2 epochs" in out
    assert "epoch 2/2  loss" in out and "epoch 3/" not in out
    steps = -(-216 // 100) * 2  # 216 training digits (60% of the 360 zeros and ones)
    assert [p.name for p in (tmp_path / "ck").iterdir()][-1] == f"ckpt-{steps:08d}.npz"


def test_train_quiet_prints_nothing_and_warnings_are_one_line(tmp_path, capsys):
    assert train(tmp_path, "--epochs", "1", "--quiet") == 0
    assert capsys.readouterr() == ("", "")
    assert train(tmp_path, "--epochs", "1") == 0  # a rerun deletes the first run's checkpoint
    err = capsys.readouterr().err
    assert err.startswith("warning: starting afresh: deleting 1 checkpoint(s) of an earlier")
    assert err.count("\n") == 1 and "warnings.warn" not in err and "Warning" not in err


@pytest.mark.parametrize("text", ["0", "-1", "fast"])
def test_train_refuses_a_learning_rate_that_is_not_positive(text, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "mlp_digits", "--lr", text])
    assert exit_.value.code == 2
    assert "must be a positive number" in capsys.readouterr().err


def test_train_plot_draws_the_curves(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    curves = tmp_path / "curves.png"
    assert train(tmp_path, "--epochs", "2", "--plot", str(curves)) == 0
    assert curves.read_bytes().startswith(PNG)
    assert f"curves drawn to {curves}" in capsys.readouterr().out


def test_train_of_an_example_without_data_says_what_works(capsys):
    assert main(["train", "add_mul"]) == 2
    assert "declares no optimizer and dataset" in capsys.readouterr().err


# --- render ----------------------------------------------------------------------------------
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed")
SVG = "{http://www.w3.org/2000/svg}"


def svg_text_and_ratio(path: Path) -> tuple[list[str], float]:
    """The words of an SVG figure and how far from square it is (3.0 for 3:1 either way)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    width, height = (float(root.get(k).removesuffix("pt")) for k in ("width", "height"))
    words = [t.text or "" for t in root.iter(f"{SVG}text")]
    return words, max(width / height, height / width)


@needs_dot
@pytest.mark.parametrize("name", ["mlp_digits", "cnn_digits"])
@pytest.mark.parametrize("stage", ["source", "autodiff", "optimized"])
def test_a_network_renders_in_a_slides_shape_without_values(tmp_path, name, stage):
    out = tmp_path / f"{name}.svg"
    assert main(["render", name, "-o", str(out), "--stage", stage]) == 0
    words, ratio = svg_text_and_ratio(out)
    assert ratio <= 3.0, f"{name} at {stage} is {ratio:.1f}:1"
    assert "layer 1" in words  # collapsed: one box per layer
    assert not any("mean" in w for w in words) and not any("values" in w for w in words)


@needs_dot
def test_a_networks_values_are_drawn_when_asked_and_say_where_they_come_from(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "mlp.svg"
    assert main(["render", "mlp_digits", "-o", str(out), "--values", "3"]) == 0
    words, ratio = svg_text_and_ratio(out)
    assert "values and gradients for digits examples 0-2 (labels 0, 1, 2)" in words
    assert any(w.startswith("3×128: mean") for w in words) and ratio <= 3.0


@needs_dot
def test_render_writes_the_slides_numbers_and_takes_a_format(tmp_path):
    out = tmp_path / "neuron.svg"
    assert main(["render", "sigmoid_neuron", "-o", str(out)]) == 0
    words, _ = svg_text_and_ratio(out)
    assert {"1.37", "-0.20", "0.73", "-0.53"} <= set(words)
    assert main(["render", "sigmoid_neuron", "-o", str(out), "--digits", "2"]) == 0
    words, _ = svg_text_and_ratio(out)
    assert "1.4" in words and "1.37" not in words
    assert main(["render", "sigmoid_neuron", "-o", str(out), "--no-values"]) == 0
    words, _ = svg_text_and_ratio(out)
    assert "0.73" not in words
    png = tmp_path / "neuron.png"
    assert main(["render", "sigmoid_neuron", "-o", str(png)]) == 0
    assert png.read_bytes().startswith(PNG) and not (tmp_path / "neuron.png.svg").exists()


def test_render_refuses_an_unknown_format_before_any_work(tmp_path, capsys):
    assert main(["render", "add_mul", "-o", str(tmp_path / "f.xyz")]) == 2
    err = capsys.readouterr().err
    assert "cannot write figures as 'xyz'" in err and "svg, png, pdf" in err
    assert list(tmp_path.iterdir()) == []


def test_steps_of_a_network_without_values_says_how(tmp_path, capsys):
    assert main(["render", "mlp_digits", "-o", str(tmp_path / "f.svg"), "--steps"]) == 2
    assert "--steps needs values to step through; add --values" in capsys.readouterr().err
