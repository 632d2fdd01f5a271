"""Bad input: shape mismatches name the op, the shapes and the user's line; bad feeds name the
input; gradients of unrelated nodes warn and give zeros; hostile node names cannot inject
code into the generated module."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp

import graphc as gc

THIS_FILE = os.path.basename(__file__)


def _line() -> int:
    """The line number of the caller's next line."""
    return inspect.currentframe().f_back.f_lineno + 1


# --- shape errors while declaring -----------------------------------------------------------
def test_matmul_shape_mismatch_names_op_shapes_and_line():
    x = gc.input("x", ("batch", 64))
    W = gc.param("W", (32, 10))
    with pytest.raises(gc.ShapeError) as err:
        line = _line()
        scores = x @ W  # noqa: F841
    message = str(err.value)
    assert "matmul" in message
    assert "(batch, 64)" in message and "(32, 10)" in message
    assert f"{THIS_FILE}:{line}" in message
    assert "scores = x @ W" in message


def test_broadcast_mismatch_names_op_shapes_and_line():
    a = gc.input("a", (3, 4))
    b = gc.input("b", (5,))
    with pytest.raises(gc.ShapeError) as err:
        line = _line()
        total = a + b  # noqa: F841
    message = str(err.value)
    assert "'+'" in message
    assert "(3, 4)" in message and "(5,)" in message
    assert f"{THIS_FILE}:{line}" in message and "total = a + b" in message


def test_named_dimensions_do_not_unify_with_numbers_or_other_names():
    x = gc.input("x", ("batch", 3))
    y = gc.input("y", ("other", 3))
    with pytest.raises(gc.ShapeError, match=r"\(batch, 3\).*\(other, 3\)"):
        x + y
    with pytest.raises(gc.ShapeError, match=r"\(batch, 3\) and \(5, 3\)"):
        x - gc.input("z", (5, 3))


@pytest.mark.parametrize("build, words", [
    (lambda x: gc.matmul(x, gc.input("v", (3,))), ["matmul", "2 or more dimensions"]),
    (lambda x: gc.matmul(gc.input("u", (2, 4, 5)), gc.input("v", (3, 5, 6))),
     ["matmul", "(2, 4, 5)", "(3, 5, 6)"]),
    (lambda x: gc.sum(x, axis=2), ["sum", "axis 2"]),
    (lambda x: gc.mean(x, axis=(0, 0)), ["mean", "repeated"]),
    (lambda x: gc.reshape(x, (4, 2)), ["reshape", "(batch, 3)", "(4, 2)"]),
    (lambda x: gc.reshape(x, (-1, -1)), ["reshape", "-1"]),
    (lambda x: gc.transpose(x, (0, 0)), ["transpose", "permutation"]),
    (lambda x: gc.concatenate([x, gc.input("v", ("batch", 2, 1))], axis=1),
     ["concatenate", "(batch, 3)", "(batch, 2, 1)"]),
    (lambda x: gc.softmax(x, axis=3), ["axis 3"]),
    (lambda x: gc.softmax_cross_entropy(x, gc.input("l", ("batch",))),
     ["softmax_cross_entropy", "integers"]),
    (lambda x: gc.softmax_cross_entropy(x, gc.input("l", (4,), dtype="int64")),
     ["softmax_cross_entropy", "(batch, 3)", "(4,)"]),
    (lambda x: gc.take(x, gc.input("l", ("batch", 1), dtype="int64")), ["take", "(batch, 1)"]),
    (lambda x: gc.where(x, x, x), ["where", "boolean"]),
    (lambda x: gc.grad(x, [x]), ["grad", "scalar", "(batch, 3)"]),
])
def test_other_shape_errors_name_the_op_and_shapes(build, words):
    x = gc.input("x", ("batch", 3))
    with pytest.raises(gc.ShapeError) as err:
        build(x)
    for word in words:
        assert word in str(err.value)


def test_bad_declarations_raise_clear_errors():
    with pytest.raises(ValueError, match="dimension must be >= 0"):
        gc.input("x", (-1, 3))
    with pytest.raises(ValueError, match="identifier"):
        gc.input("x", ("not a name", 3))
    with pytest.raises(TypeError, match="int or a name"):
        gc.input("x", (2.5,))
    with pytest.raises(gc.ShapeError, match="numbers"):
        gc.param("W", ("batch", 3))
    with pytest.raises(gc.ShapeError, match=r"init array has shape \(2,\)"):
        gc.param("W", (3,), init=np.zeros(2))
    with pytest.raises(ValueError, match="unknown init"):
        gc.param("W", (3,), init="uniformish")
    with pytest.raises(TypeError, match="non-empty string"):
        gc.input("", (3,))
    with pytest.raises(TypeError, match="cannot use str"):
        gc.input("x", (3,)) + "1"
    with pytest.raises(ValueError, match="not given a node"):
        z, w = sp.symbols("z w")
        gc.from_sympy(z * w, {z: gc.input("x", (3,))})


# --- feeds ------------------------------------------------------------------------------------
@pytest.fixture
def program():
    x = gc.input("x", ("batch", 3))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (3, 4), init="glorot", seed=0)
    loss = gc.softmax_cross_entropy(x @ W, labels)
    return gc.compile([loss], [x, labels])


GOOD = dict(x=np.ones((5, 3)), labels=np.arange(5) % 4)


@pytest.mark.parametrize("feeds, words", [
    ({"x": GOOD["x"]}, ["missing", "labels"]),
    ({**GOOD, "y": np.ones(3)}, ["unknown", "'y'"]),
    ({**GOOD, "x": np.ones((5, 4))}, ["'x'", "(batch, 3)", "(5, 4)"]),
    ({**GOOD, "x": np.ones(15)}, ["'x'", "(batch, 3)", "(15,)"]),
    ({**GOOD, "x": np.ones((1, 5, 3))}, ["'x'", "(batch, 3)"]),
    ({**GOOD, "labels": np.zeros(5)}, ["'labels'", "int"]),
    ({**GOOD, "labels": np.array([0.0, 1.5, 2.0, 3.0, 0.0])}, ["'labels'", "int"]),
    ({**GOOD, "labels": ["a", "b", "c", "d", "e"]}, ["'labels'"]),
    ({**GOOD, "x": "hello"}, ["'x'"]),
    ({**GOOD, "x": None}, ["'x'"]),
    ({**GOOD, "x": np.ones((5, 3)) + 1j}, ["'x'", "complex"]),
    ({**GOOD, "labels": np.arange(6) % 4}, ["'labels'", "batch", "6", "5"]),
])
def test_bad_feeds_raise_feed_error_naming_the_input(program, feeds, words):
    with pytest.raises(gc.FeedError) as err:
        program(**feeds)
    for word in words:
        assert word in str(err.value)


def test_good_feeds_in_other_forms_are_converted(program):
    (expected,) = program(**GOOD)
    as_lists = program(x=GOOD["x"].tolist(), labels=GOOD["labels"].tolist())[0]
    as_float32 = program(x=GOOD["x"].astype(np.float32), labels=GOOD["labels"].astype(np.int32))
    np.testing.assert_allclose(as_lists, expected, rtol=1e-15)
    np.testing.assert_allclose(as_float32[0], expected, rtol=1e-15)


def test_inconsistent_named_dimension_across_two_inputs():
    a = gc.input("a", ("batch", 2))
    b = gc.input("b", ("batch", 2))
    prog = gc.compile([gc.sum(a * b)], [a, b])
    with pytest.raises(gc.FeedError) as err:
        prog(a=np.ones((3, 2)), b=np.ones((4, 2)))
    message = str(err.value)
    assert "'b'" in message and "'a'" in message and "'batch'" in message
    assert prog(a=np.ones((4, 2)), b=np.ones((4, 2)))[0] == 8.0


@pytest.mark.parametrize("bad", [-1, 4])
def test_labels_out_of_range_raise_feed_error(program, bad):
    labels = np.array([0, 1, 2, 3, bad])
    with pytest.raises(gc.FeedError, match="labels"):
        program(x=GOOD["x"], labels=labels)


def test_compile_checks_its_inputs_list():
    x = gc.input("x", (3,))
    y = gc.input("y", (3,))
    with pytest.raises(gc.GraphcError, match="'y'.*not in the inputs"):
        gc.compile([x * y], [x])
    with pytest.raises(gc.GraphcError, match="not an input node"):
        gc.compile([x * 2], [x, x * 2])
    with pytest.raises(gc.GraphcError, match="not an input node"):
        gc.compile([x * 2], [x, gc.constant(np.ones(3))])
    with pytest.raises(gc.GraphcError, match="two inputs are named"):
        gc.compile([x + gc.input("x", (3,))], [x, gc.input("x", (3,))])
    with pytest.raises(ValueError, match="optimize"):
        gc.compile([x * 2], [x], optimize=7)
    with pytest.raises(ValueError, match="unknown passes"):
        gc.compile([x * 2], [x], passes=["inline-everything"])
    with pytest.raises(gc.GraphcError, match="no parameter"):
        gc.compile([gc.sum(x)], [x], optimizer=gc.SGD(0.1))


# --- gradients of nodes the output does not depend on ---------------------------------------------
def test_grad_of_unrelated_node_warns_and_gives_zeros():
    x = gc.input("x", (2, 3))
    unrelated = gc.input("unrelated", ("batch", 4))
    W = gc.param("W", (5,))
    y = gc.sum(x * x)
    with pytest.warns(UserWarning, match="does not depend on") as record:
        dx, du, dW = gc.grad(y, [x, unrelated, W])
    assert len(record) == 2
    assert all(r.filename == __file__ for r in record), "the warning points at the user's line"
    assert du.shape == ("batch", 4) and dW.shape == (5,)
    feeds = {x: np.ones((2, 3)), unrelated: np.ones((7, 4))}
    for got in [gc.evaluate([dx, du, dW], feeds),
                gc.compile([dx, du, dW], [x, unrelated])(x=np.ones((2, 3)),
                                                          unrelated=np.ones((7, 4)))]:
        np.testing.assert_array_equal(got[0], 2 * np.ones((2, 3)))
        np.testing.assert_array_equal(got[1], np.zeros((7, 4)))
        np.testing.assert_array_equal(got[2], np.zeros(5))


def test_gradient_through_non_differentiable_ops_is_zero_with_a_warning():
    x = gc.input("x", (4,))
    y = gc.mean(gc.where(x > 0, 1.0, 0.0))  # a step: no gradient reaches x
    with pytest.warns(UserWarning, match="does not depend"):
        (dx,) = gc.grad(y, [x])
    np.testing.assert_array_equal(gc.evaluate([dx], {x: np.arange(4.0)})[0], np.zeros(4))


# --- hostile names --------------------------------------------------------------------------------
HOSTILE = [
    "x; import os",
    "__import__('os').system('touch PWNED')",
    "class",
    "np",
    "numpy",
    "main",
    "sigmoid",
    "__builtins__",
    "1x",
    "a\nimport os\nos.system('touch PWNED')",
    "q\"uote's",
    "\"\"\"; os.system('touch PWNED'); \"\"\"",
    "# comment",
    "a-b",
    "a_b",
    "a b",
    "λ",
    "x" * 300,
    "\\",
    # names the generated module uses for its own variables, helpers and temporaries
    "_buffer", "_buffers", "_saved", "buf0", "shifted", "batch", "g_1_01", "d_a_b", "add1",
    "tanh1", "np_", "__file__", "__name__",
]

DANGEROUS_CALLS = {"__import__", "exec", "eval", "system", "compile", "open", "getattr",
                   "setattr", "globals", "locals", "vars", "breakpoint", "input", "popen"}


def assert_source_is_safe(source: str) -> None:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            raise AssertionError(f"an import from {node.module} in the generated code")
        if isinstance(node, ast.Import):
            assert [a.name for a in node.names] == ["numpy"], ast.unparse(node)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            assert name not in DANGEROUS_CALLS, ast.unparse(node)
        if isinstance(node, ast.Name):
            assert node.id not in ("os", "sys", "subprocess"), node.id
    # and at module level only definitions and plain assignments: nothing runs on import
    for stmt in tree.body:
        assert isinstance(stmt, (ast.Import, ast.FunctionDef, ast.Assign, ast.Expr)), \
            ast.unparse(stmt)


def test_hostile_input_names_compile_run_and_stay_inert(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs = [gc.input(name, (2,)) for name in HOSTILE]
    weights = np.arange(1, len(HOSTILE) + 1, dtype=np.float64)
    total = inputs[0] * weights[0]
    for x, w in zip(inputs[1:], weights[1:]):
        total = total + x * w
    out = gc.tanh(total / 100)
    grads = gc.grad(gc.sum(out), inputs)
    feeds = {name: np.full(2, 0.5 + i) for i, name in enumerate(HOSTILE)}
    expected = np.tanh(sum(w * feeds[n] for w, n in zip(weights, HOSTILE)) / 100)
    for level in (0, 1, 2):
        prog = gc.compile([out, *grads], inputs, optimize=level)
        assert_source_is_safe(prog.source)
        got, *dgot = prog(**feeds)
        np.testing.assert_allclose(got, expected, rtol=1e-14)
        for w, d in zip(weights, dgot):
            np.testing.assert_allclose(d, w / 100 * (1 - expected**2), rtol=1e-12)
        with pytest.raises(gc.FeedError, match="missing"):
            prog(**{k: v for k, v in feeds.items() if k != "a_b"})
    assert not os.path.exists(tmp_path / "PWNED")
    assert os.listdir(tmp_path) == []


def test_colliding_sanitized_names_stay_distinct(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b, c = gc.input("a-b", (3,)), gc.input("a_b", (3,)), gc.input("a b", (3,))
    d = gc.input("a_b_2", (3,))  # the name a collision suffix would produce
    prog = gc.compile([a - b * 2 + c * 3 - d * 4], [a, b, c, d])
    assert_source_is_safe(prog.source)
    got = prog(**{"a-b": np.full(3, 1.0), "a_b": np.full(3, 10.0), "a b": np.full(3, 100.0),
                  "a_b_2": np.full(3, 1000.0)})[0]
    np.testing.assert_array_equal(got, np.full(3, 1 - 20 + 300 - 4000.0))


STANDALONE = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("step", "step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    feeds = dict(np.load("feeds.npz"))
    print(repr(float(module.main(**feeds)[0])))
    assert "graphc" not in sys.modules
""")


def run_standalone(directory, feeds) -> float:
    """Run directory/step.py's main(**feeds) in a fresh interpreter; its first output."""
    np.savez(directory / "feeds.npz", **feeds)
    done = subprocess.run([sys.executable, "-c", STANDALONE], cwd=directory, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_hostile_param_names_dims_and_symbols(tmp_path, monkeypatch):
    """Names reach the module by other roads too: parameters and optimizer state, named
    dimensions, SymPy symbol names (in a from_sympy label), and the saved standalone file."""
    monkeypatch.chdir(tmp_path)
    evil = "W'); __import__('os').system('touch PWNED'); ('"
    x = gc.input("class", ("np", 3))
    labels = gc.input("main", ("np",), dtype="int64")
    W = gc.param(evil, (3, 2), init=np.full((3, 2), 0.1))
    b = gc.param("b\n__import__('os').system('touch PWNED')", (2,), init="zeros")
    z = sp.Symbol("z\n__import__('os').system('touch PWNED')\n")
    h = gc.from_sympy(z / (1 + sp.Abs(z)), {z: x @ W + b})
    loss = gc.softmax_cross_entropy(h, labels)
    prog = gc.compile([loss], [x, labels], optimizer=gc.Adam(lr=0.1))
    assert_source_is_safe(prog.source)
    assert set(prog.params) == {evil, b.name}
    prog.save(tmp_path / "step.py")
    assert_source_is_safe((tmp_path / "step.py").read_text())
    feeds = {"class": np.ones((4, 3)), "main": np.array([0, 1, 1, 0])}
    saved = run_standalone(tmp_path, feeds)  # the saved main takes the program's input names
    (loss_value,) = prog(**feeds)
    assert saved == pytest.approx(float(loss_value), rel=1e-14)
    assert not os.path.exists(tmp_path / "PWNED")


def test_saved_module_takes_the_programs_input_names(tmp_path):
    x = gc.input("class", (3,))
    y = gc.input("a-b", (3,))
    prog = gc.compile([gc.sum(x * y)], [x, y])
    prog.save(tmp_path / "step.py")
    feeds = {"class": np.ones(3), "a-b": np.full(3, 2.0)}
    assert run_standalone(tmp_path, feeds) == prog(**feeds)[0] == 6.0


def test_from_sympy_with_a_function_numpy_lacks_fails_clearly_at_declaration():
    z = sp.Symbol("z")
    x = gc.input("x", (3,))
    with pytest.raises(gc.ExpressionError, match="cannot write the SymPy function besselj"):
        gc.from_sympy(sp.besselj(0, z) + sp.sin(z), {z: x})


# --- raw errors become graphc errors, at declaration where possible (case 14) --------------------
def _generated_frames(err: pytest.ExceptionInfo) -> list[str]:
    return [str(e.path) for e in err.traceback if str(e.path).startswith("<graphc-generated")]


@pytest.mark.parametrize("build, error, words", [
    (lambda x: gc.input("c", (3,), dtype="complex128"),
     gc.ShapeError, ["input 'c'", "complex128", "float, integer or bool"]),
    (lambda x: gc.input("c", (3,), dtype="nonsense"), gc.ShapeError, ["input 'c'", "'nonsense'"]),
    (lambda x: gc.param("W", (3,), dtype="complex64"), gc.ShapeError, ["param 'W'", "complex64"]),
    (lambda x: gc.one_hot(gc.input("l", ("batch",), dtype="int64"), depth=-3),
     gc.ShapeError, ["one_hot", "depth", "positive integer", "-3"]),
    (lambda x: gc.one_hot(gc.input("l", ("batch",), dtype="int64"), depth=2.5),
     gc.ShapeError, ["one_hot", "2.5"]),
    (lambda x: gc.sum(x, axis=1.5), gc.ShapeError, ["sum", "axis", "1.5", "(batch, 3)"]),
    (lambda x: gc.mean(x, axis="batch"),
     gc.ShapeError, ["mean", "'batch'", "(batch, 3)", "is axis 0"]),
    (lambda x: gc.max(x, axis=[0, None]), gc.ShapeError, ["max", "[0, None]"]),
    (lambda x: gc.softmax(x, axis=(0, 1)), gc.ShapeError, ["softmax", "an int", "(0, 1)"]),
    (lambda x: gc.grad(gc.sum(x), [3.0]), gc.GraphcError, ["grad", "wrt[0]", "3.0", "float"]),
    (lambda x: gc.grad("y", [x]), gc.GraphcError, ["grad", "output", "'y'"]),
    (lambda x: gc.grad(gc.sum(x), x, upstream=gc.input("s", (2,))),
     gc.ShapeError, ["grad", "upstream gradient", "(2,)", "()"]),
    (lambda x: gc.param("W", (0, 3), init="he"), gc.ShapeError, ["param 'W'", "(0, 3)"]),
    (lambda x: gc.param("W", (4, 0), init="glorot"), gc.ShapeError, ["param 'W'", "(4, 0)"]),
    (lambda x: gc.compile(["x"]), gc.GraphcError, ["compile", "outputs[0]", "'x'", "str"]),
    (lambda x: gc.compile([]), gc.GraphcError, ["compile", "no outputs"]),
])
def test_bad_arguments_raise_graphc_errors_naming_them(build, error, words):
    x = gc.input("x", ("batch", 3))
    with pytest.raises(error) as err:
        build(x)
    for word in words:
        assert word in str(err.value), str(err.value)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_an_empty_batch_is_refused_before_the_code_divides_by_it(program, level):
    x = gc.input("x", ("batch", 3))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (3, 4), init="glorot", seed=0)
    loss = gc.softmax_cross_entropy(x @ W, labels)
    before = W.value.copy()
    for prog in (gc.compile([loss], [x, labels], optimizer=gc.SGD(0.1), optimize=level),
                 gc.compile([gc.mean(gc.tanh(x @ W))], [x], optimize=level)):
        feeds = {"x": np.ones((0, 3)), "labels": np.zeros(0, dtype=np.int64)}
        with pytest.raises(gc.FeedError) as err:
            prog(**{n.name: feeds[n.name] for n in prog.signature.inputs})
        assert "input 'x': dimension 'batch' is 0" in str(err.value)
        assert "mean over 'batch'" in str(err.value)
        assert not _generated_frames(err)
    np.testing.assert_array_equal(W.value, before)
    # a graph that takes no mean over the batch runs on an empty one
    (scores,) = gc.compile([x @ W], [x], optimize=level)(x=np.ones((0, 3)))
    assert scores.shape == (0, 4)


def test_an_input_named_self_is_an_ordinary_input(tmp_path):
    me = gc.input("self", (3,))
    prog = gc.compile([gc.sum(me * 2)], [me])
    assert prog(self=np.ones(3))[0] == 6.0
    assert gc.evaluate([gc.sum(me)], {"self": np.ones(3)})[0] == 3.0
    prog.save(tmp_path / "step.py")
    assert run_standalone(tmp_path, {"self": np.ones(3)}) == 6.0


def test_a_ragged_feed_is_a_feed_error_naming_the_input():
    x = gc.input("x", (2, 2))
    prog = gc.compile([gc.sum(x)], [x])
    with pytest.raises(gc.FeedError, match="input 'x': the value is not a rectangular array") \
            as err:
        prog(x=[[1, 2], [3]])
    assert not _generated_frames(err)
    with pytest.raises(gc.FeedError, match="input 'x': the value is not a rectangular array"):
        gc.evaluate([gc.sum(x)], {x: [[1, 2], [3]]})
