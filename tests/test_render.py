"""Figures: every example renders at every stage, the lecture graphs carry the right values and
gradients on the right edges, step-by-step frames match backpropagation, output is
deterministic, big graphs stay fast, and a missing Graphviz is explained.

Checks on SVG files need Graphviz's ``dot`` and are skipped without it; the DOT source
checks (golden files included) run everywhere. ``GRAPHC_UPDATE_GOLDEN=1`` rewrites the
golden files in tests/golden after a deliberate change of the look.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.example import Example, load_example
from graphc.ir.graph import topological_order
from graphc.render import RenderError, render, render_steps, style
from graphc.render.labels import format_array, format_number
from graphc.render.stages import STAGES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
GOLDEN = Path(__file__).resolve().parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot program is not installed (apt-get install graphviz); the SVG "
           "checks need it, the DOT source checks ran")


# --- reading figures back ----------------------------------------------------------------
def svg_edges(path: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Each edge of an SVG figure, by (tail text, head text) of the boxes it joins (the text
    of a branch dot is "•"), with its label lines as (text, fill colour)."""
    root = ET.parse(path).getroot()
    text: dict[str, str] = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "node":
            words = [t.text or "" for t in g.iter(f"{SVG}text")]
            text[g.find(f"{SVG}title").text] = " ".join(words) or "•"
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "edge":
            tail, head = g.find(f"{SVG}title").text.split("->")
            labels = [(t.text, t.get("fill")) for t in g.iter(f"{SVG}text")]
            edges.setdefault((text[tail], text[head]), []).extend(labels)
    return edges


def value_and_grad(labels: list[tuple[str, str]]) -> tuple[str, str]:
    """An edge's value (the green line) and gradient (the red line)."""
    value = [t for t, fill in labels if fill == style.VALUE]
    grad = [t for t, fill in labels if fill == style.GRADIENT]
    assert len(value) == 1 and len(grad) == 1, labels
    return value[0], grad[0]


def random_feeds(example: Example, seed: int = 0) -> dict:
    """Values for every input the outputs read: normal floats, zeros for integer inputs
    (label 0 is valid for any number of classes), named dimensions of size 2."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for node in topological_order(example.outputs):
        if node.op.name == "input":
            shape = tuple(2 if isinstance(d, str) else d for d in node.shape)
            feeds[node] = (np.zeros(shape, dtype=node.dtype) if node.dtype.kind in "iu"
                           else rng.standard_normal(shape))
    return feeds


def lecture(name: str) -> Example:
    return load_example(ROOT / "examples" / f"{name}.py")


# --- numbers -------------------------------------------------------------------------------
@pytest.mark.parametrize("x, text", [
    (3.0, "3"), (-12.0, "-12"), (0.7310585, "0.73"), (-0.19661193, "-0.2"), (0.3932, "0.39"),
    (0.0, "0"), (-0.0, "0"), (12345.0, "12000"), (1.5e7, "1.5e7"), (-2.5e-5, "-2.5e-5"),
    (float("nan"), "nan"), (float("-inf"), "-inf"),
])
def test_numbers_are_rounded_to_significant_digits(x, text):
    assert format_number(x, 2) == text


@pytest.mark.parametrize("x, text", [
    (1.3678794, "1.37"), (-0.19661193, "-0.20"), (2.0401886, "2.04"), (0.7310585, "0.73"),
    (3.0, "3"), (-12.0, "-12"), (0.00097, "9.7e-4"), (-2.5e-5, "-2.5e-5"), (0.0, "0"),
    (12345.0, "12345"), (1.5e7, "1.5e7"), (0.01, "0.01"), (float("nan"), "nan"),
])
def test_numbers_are_written_as_the_slides_write_them_by_default(x, text):
    assert format_number(x) == text


def test_decimals_and_digits_are_configurable():
    example = lecture("sigmoid_neuron")
    assert "1.37" in render(example.outputs, example.feeds).source
    assert "1.368" in render(example.outputs, example.feeds, decimals=3).source
    two_digits = render(example.outputs, example.feeds, digits=2).source
    assert "1.4<" in two_digits and "1.37" not in two_digits


def test_small_tensors_show_values_and_large_ones_a_summary():
    assert format_array(np.array([1.0, -0.5]), 2) == "[1, -0.5]"
    assert format_array(np.array([[1.0, 2.0], [3.0, 4.0]]), 2) == "[[1, 2], [3, 4]]"
    assert format_array(np.array([[1.0, 2.0], [3.0, 4.0]]), 2, multiline=True) == \
        "[[1, 2],\n[3, 4]]"
    summary = format_array(np.full((4, 128), 0.5), 2)
    assert summary == "4×128: mean 0.5, norm 11"


# --- the lecture examples --------------------------------------------------------------------
@needs_dot
def test_add_mul_edges_carry_values_and_gradients(tmp_path):
    example = lecture("add_mul")
    render(example.outputs, example.feeds, path=tmp_path / "add_mul.svg")
    edges = svg_edges(tmp_path / "add_mul.svg")
    assert value_and_grad(edges[("x", "+")]) == ("-2", "-4")
    assert value_and_grad(edges[("y", "+")]) == ("5", "-4")
    assert value_and_grad(edges[("+", "×")]) == ("3", "-4")
    assert ("q = ", style.INK) in edges[("+", "×")]      # q = x + y, named as in the code
    assert value_and_grad(edges[("z", "×")]) == ("-4", "3")
    assert value_and_grad(edges[("×", "f")]) == ("-12", "1")


@needs_dot
def test_sigmoid_neuron_edges_carry_values_and_gradients(tmp_path):
    example = lecture("sigmoid_neuron")
    render(example.outputs, example.feeds, path=tmp_path / "neuron.svg")
    edges = svg_edges(tmp_path / "neuron.svg")
    assert value_and_grad(edges[("w0", "×")]) == ("2", "-0.20")
    assert value_and_grad(edges[("x0", "×")]) == ("-1", "0.39")
    assert value_and_grad(edges[("w1", "×")]) == ("-3", "-0.39")
    assert value_and_grad(edges[("x1", "×")]) == ("-2", "-0.59")
    assert value_and_grad(edges[("w2", "+")]) == ("-3", "0.20")
    # the weighted sum (1) going into the sigmoid part, whose local gradient is 0.2
    assert value_and_grad(edges[("+", "×-1")]) == ("1", "0.20")
    assert ("dot = ", style.INK) in edges[("+", "×-1")]   # dot = w0*x0 + w1*x1 + w2
    assert value_and_grad(edges[("exp", "+1")]) == ("0.37", "-0.53")
    assert value_and_grad(edges[("+1", "1/x")]) == ("1.37", "-0.53")
    assert value_and_grad(edges[("1/x", "f")]) == ("0.73", "1")


@needs_dot
def test_softmax_loss_shows_the_slides_two_decimals(tmp_path):
    example = lecture("softmax_loss")
    render(example.outputs, example.feeds, path=tmp_path / "softmax.svg")
    words = [t.text for t in ET.parse(tmp_path / "softmax.svg").getroot().iter(f"{SVG}text")]
    assert "2.04" in words and "2" not in words


@needs_dot
def test_a_value_read_twice_shows_its_gradient_as_the_sum_of_the_branches(tmp_path):
    x, y = gc.scalar("x"), gc.scalar("y")
    f = (x + y) * x                      # df/dx = x (through +) + (x + y) (through *)
    render(f, {x: 2.0, y: -1.0}, path=tmp_path / "fan.svg")
    edges = svg_edges(tmp_path / "fan.svg")
    assert value_and_grad(edges[("x", "•")]) == ("2", "3 = 2 + 1")
    assert value_and_grad(edges[("•", "+")]) == ("2", "2")
    assert value_and_grad(edges[("•", "×")]) == ("2", "1")


@pytest.mark.parametrize("name", ["add_mul", "sigmoid_neuron"])
def test_lecture_figures_match_their_golden_dot_files(name):
    example = lecture(name)
    source = render(example.outputs, example.feeds).source
    golden = GOLDEN / f"{name}.dot"
    if os.environ.get("GRAPHC_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(source, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with GRAPHC_UPDATE_GOLDEN=1"
    assert source == golden.read_text(encoding="utf-8"), (
        f"the figure of {name} changed; if on purpose, rerun with GRAPHC_UPDATE_GOLDEN=1")


# --- stages ----------------------------------------------------------------------------------
def test_optimized_stage_labels_a_fused_node_with_its_expression():
    example = lecture("sigmoid_neuron")
    source = render(example.outputs, example.feeds, stage="optimized").source
    assert "w0·x0" in source and "w1·x1" in source
    assert "×-1" not in source and "+1>" not in source      # the chain is one node now


def test_autodiff_stage_draws_backward_nodes_and_gradient_outputs():
    example = lecture("add_mul")
    source = render(example.outputs, example.feeds, stage="autodiff").source
    for wrt in ("x", "y", "z"):
        assert f"∂f/∂{wrt}" in source
    assert style.KINDS["gradient"]["fillcolor"] in source
    neuron = lecture("sigmoid_neuron")
    source = render(neuron.outputs, neuron.feeds, stage="autodiff").source
    assert source.count(f'fillcolor="{style.KINDS["backward"]["fillcolor"]}"') >= 6


def test_without_grads_edges_carry_values_only():
    example = lecture("add_mul")
    source = render(example.outputs, example.feeds, grads=False, rankdir="TB").source
    assert style.VALUE in source and style.GRADIENT not in source
    assert "rankdir=TB" in source


def test_without_feeds_the_graph_is_drawn_without_numbers():
    example = lecture("add_mul")
    source = render(example.outputs).source
    assert style.VALUE not in source and style.GRADIENT not in source
    assert source.count("->") == 5


def test_a_missing_feed_is_named_with_its_line():
    example = lecture("add_mul")
    feeds = dict(list(example.feeds.items())[:2])
    with pytest.raises(gc.FeedError, match="no value is fed for input 'z'.*add_mul.py"):
        render(example.outputs, feeds)


def test_unknown_stage_and_collapse_are_refused():
    example = lecture("add_mul")
    with pytest.raises(ValueError, match="unknown stage"):
        render(example.outputs, example.feeds, stage="lowered")
    with pytest.raises(ValueError, match="collapse must be"):
        render(example.outputs, example.feeds, collapse="blocks")


# --- every example ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("stage", STAGES)
def test_every_example_renders(path, stage, tmp_path):
    example = load_example(path)
    feeds = example.feeds or random_feeds(example)
    graph = render(example.outputs, feeds, stage=stage)
    assert "->" in graph.source
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed (apt-get install graphviz); "
                    "the DOT source was checked, the SVG was not drawn")
    out = tmp_path / f"{path.stem}.svg"
    render(example.outputs, feeds, path=out, stage=stage)
    ET.parse(out)
    render(example.outputs, None, path=tmp_path / "shapes.svg", stage=stage)
    ET.parse(tmp_path / "shapes.svg")


def test_a_tensor_graph_shows_ops_with_shapes_and_summaries():
    x = gc.input("x", ("batch", 16))
    W = gc.param("W", (16, 4), seed=0)
    loss = gc.mean(gc.relu(x @ W))
    source = render(loss, {x: np.ones((8, 16))}).source
    assert "(batch, 4)" in source and "(16, 4)" in source
    assert "8×16: mean 1, norm 11" in source      # the input, summarized
    assert "mean" in source and "norm" in source


# --- steps -----------------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("name, steps", [("add_mul", 2), ("sigmoid_neuron", 8)])
def test_one_frame_per_backward_step(name, steps, tmp_path):
    example = lecture(name)
    ops = [n for n in topological_order(example.outputs) if n.inputs]
    assert len(ops) == steps
    files = render_steps(example.outputs, example.feeds, tmp_path / name)
    assert [Path(f).name for f in files] == [f"{name}-{k:02d}.svg" for k in range(1, steps + 1)]
    for f in files:
        ET.parse(f)
    last = Path(files[-1]).read_text(encoding="utf-8")
    assert "local" in last and "upstream" in last and "result" in last


@needs_dot
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_steps_back_one_frame_per_differentiable_op(path, tmp_path):
    example = load_example(path)
    feeds = example.feeds or random_feeds(example)
    ops = [n for n in topological_order(example.outputs)
           if n.inputs and n.op.differentiable and n.dtype.kind == "f"]
    files = render_steps(example.outputs, feeds, tmp_path / "frame")
    assert len(files) == len(ops)
    for f in files:
        ET.parse(f)


@needs_dot
def test_step_frames_write_out_local_times_upstream(tmp_path):
    example = lecture("add_mul")
    first = Path(render_steps(example.outputs, example.feeds, tmp_path / "s")[0])
    words = " ".join(t.text or "" for t in ET.parse(first).getroot().iter(f"{SVG}text"))
    words = words.replace("\u00a0", " ")
    assert "∂f/∂q" in words and "∂f/∂z" in words      # the × gate goes first
    assert "z = -4" in words and "q = 3" in words       # local gradients, by name and value


# --- determinism and scale -------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
def test_the_same_graph_gives_the_same_dot_source(stage):
    first, second = lecture("sigmoid_neuron"), lecture("sigmoid_neuron")   # new node ids
    assert render(first.outputs, first.feeds, stage=stage).source == \
        render(second.outputs, second.feeds, stage=stage).source


@needs_dot
def test_the_same_graph_renders_byte_identical(tmp_path):
    first, second = lecture("sigmoid_neuron"), lecture("sigmoid_neuron")   # new node ids
    render(first.outputs, first.feeds, path=tmp_path / "a.svg")
    render(second.outputs, second.feeds, path=tmp_path / "b.svg")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    frames_a = render_steps(first.outputs, first.feeds, tmp_path / "fa")
    frames_b = render_steps(second.outputs, second.feeds, tmp_path / "fb")
    assert [Path(f).read_bytes() for f in frames_a] == [Path(f).read_bytes() for f in frames_b]


def mlp(layers: int, width: int = 8):
    x = gc.input("x", ("batch", width))
    h = x
    for i in range(layers):
        W = gc.param(f"W{i}", (width, width), init="he", seed=i)
        b = gc.param(f"b{i}", (width,), init="zeros")
        h = gc.relu(h @ W + b)
    return gc.mean(h * h), x


def test_a_100_layer_mlp_renders_and_collapses_into_one_box_per_layer():
    loss, x = mlp(100)
    feeds = {x: np.random.default_rng(0).standard_normal((4, 8))}
    full = render(loss, feeds).source
    assert full.count("->") >= 500
    collapsed = render(loss, feeds, collapse="layers").source
    assert collapsed.count("box3d") == 100
    assert "layer 0" in collapsed and "layer 99" in collapsed
    named = render(loss, None, collapse={"W1": "first block", "b1": "first block"}).source
    assert "first block" in named


# --- formats and shape -------------------------------------------------------------------
@needs_dot
def test_the_paths_extension_is_the_format(tmp_path):
    example = lecture("add_mul")
    render(example.outputs, example.feeds, path=tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    frames = render_steps(example.outputs, example.feeds, path=tmp_path / "s.pdf")
    assert [Path(f).name for f in frames] == ["s-01.pdf", "s-02.pdf"]
    assert Path(frames[0]).read_bytes().startswith(b"%PDF")
    render(example.outputs, example.feeds, path=tmp_path / "g")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "g.svg", "s-01.pdf",
                                                          "s-02.pdf"]


def test_an_unknown_format_or_direction_is_refused():
    example = lecture("add_mul")
    with pytest.raises(RenderError, match=r"cannot write figures as 'xyz' \(the extension"):
        render(example.outputs, example.feeds, path="f.xyz")
    with pytest.raises(RenderError, match="cannot write figures as 'jpeg2'"):
        render(example.outputs, example.feeds, format="jpeg2")
    with pytest.raises(ValueError, match="rankdir must be one of"):
        render(example.outputs, example.feeds, rankdir="sideways")


@needs_dot
def test_auto_direction_keeps_a_long_chain_within_a_slide(tmp_path):
    loss, _ = mlp(2)
    wide = render(loss, None, collapse="layers").source
    auto = render(loss, None, collapse="layers", rankdir="auto").source
    assert "rankdir=LR" in wide and "rankdir=TB" in auto
    render(loss, None, collapse="layers", rankdir="auto", path=tmp_path / "chain.svg")
    root = ET.parse(tmp_path / "chain.svg").getroot()
    width, height = (float(root.get(k).removesuffix("pt")) for k in ("width", "height"))
    assert max(width / height, height / width) <= 3.0
    small = lecture("add_mul")  # 2.6:1 left to right: kept
    assert "rankdir=LR" in render(small.outputs, small.feeds, rankdir="auto").source


# --- without Graphviz ------------------------------------------------------------------------
def test_without_dot_the_source_is_written_and_the_error_says_how_to_install(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    example = lecture("add_mul")
    with pytest.raises(RenderError, match="apt-get install graphviz") as err:
        render(example.outputs, example.feeds, path=tmp_path / "fig.svg")
    assert (tmp_path / "fig.dot").exists()
    assert "fig.dot" in str(err.value)
    with pytest.raises(RenderError, match="install Graphviz"):
        render_steps(example.outputs, example.feeds, tmp_path / "frame")
    assert sorted(p.name for p in tmp_path.glob("frame-*.dot")) == ["frame-01.dot",
                                                                    "frame-02.dot"]


# --- notebooks -------------------------------------------------------------------------------
@needs_dot
def test_nodes_and_lists_of_nodes_show_their_graph_and_nothing_else_changes():
    from graphc.render import notebook

    example = lecture("add_mul")
    (f,) = example.outputs
    assert "<svg" in notebook.node_svg(f) and "<svg" in notebook.node_svg(example.outputs)
    assert notebook.node_svg([1, 2]) is None and notebook.node_svg([]) is None

    class Formatter:
        def __init__(self):
            self.types = {}

        def for_type(self, kind, function):
            self.types[kind] = function

    class Shell:
        display_formatter = type("Display", (), {"formatters": {"image/svg+xml": Formatter()}})

    shell = Shell()
    assert notebook.register(shell)
    assert shell.display_formatter.formatters["image/svg+xml"].types[gc.Node] is notebook.node_svg
