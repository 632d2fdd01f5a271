"""Each pass's rewrites fire where they should and not where they must not; the pipeline
reports its stages. (That every pass preserves values on random graphs is
test_codegen_vs_interpreter.py's job.)"""

import numpy as np
import pytest
import sympy as sp

import graphc as gc
from graphc.ir.graph import Graph, topological_order
from graphc.passes.cse import cse
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.pipeline import LEVELS, PASSES, pass_names
from graphc.passes.simplify import simplify

z = sp.Symbol("z")


def ops_of(graph: Graph) -> list[str]:
    return [n.label for n in graph.nodes() if n.inputs]


def test_cse_merges_equal_nodes_and_keeps_different_ones():
    x = gc.input("x", (3,))
    a, b = gc.exp(x), gc.exp(x)
    s1, s2 = gc.sum(x, axis=0), gc.sum(x, axis=0, keepdims=True)
    out = cse(Graph((a + b, s1 * 1.0 + gc.sum(s2))))
    assert ops_of(out).count("exp") == 1
    assert [n.attrs["keepdims"] for n in out.nodes() if n.op.name == "sum"].count(True) == 1


def test_fuse_folds_a_single_use_chain_into_one_node():
    x = gc.input("x", (3,))
    y = gc.tanh(gc.exp(x) * 2 + 1)
    out = fuse_elementwise(Graph((y,)))
    (node,) = [n for n in out.nodes() if n.inputs]
    assert node.inputs == (x,)
    assert str(node.attrs["expr"]) == "tanh(2*exp(x0) + 1)"


def test_fuse_keeps_a_value_read_twice():
    x = gc.input("x", (3,))
    e = gc.exp(x)
    out = fuse_elementwise(Graph((gc.tanh(e) + e,)))
    assert "exp" in ops_of(out)  # computed once, read by two expressions


def test_fuse_does_not_cross_a_reduction_whose_result_is_reused():
    x = gc.input("x", (4, 3))
    m = gc.sum(gc.exp(x), axis=1, keepdims=True)
    y = gc.log(m) + m
    out = fuse_elementwise(Graph((y,)))
    sums = [n for n in out.nodes() if n.op.name == "sum"]
    assert len(sums) == 1
    assert sums[0].inputs[0].op.name == "elementwise"  # exp stays the reduction's input
    (top,) = out.outputs
    assert top.inputs == (sums[0],)  # log(m) + m fused over the one reduction


def test_fuse_keeps_outputs():
    x = gc.input("x", (3,))
    e = gc.exp(x)
    out = fuse_elementwise(Graph((e, e * 2)))
    assert out.outputs[0].label == "exp" and out.outputs[1].inputs == (out.outputs[0],)


def test_simplify_factors_across_fused_ops():
    x, a, b = (gc.input(n, (3,)) for n in "xab")
    fused = fuse_elementwise(Graph((x * a + x * b,)))
    (node,) = [n for n in fused.nodes() if n.inputs]
    assert sp.count_ops(node.attrs["expr"]) == 3
    (node,) = [n for n in simplify(fused).nodes() if n.inputs]
    assert str(node.attrs["expr"]) == "x0*(x1 + x2)"  # one multiply fewer per entry


def test_simplify_refuses_cancelling_what_numpy_computes():
    """(x*x - 1)/(x + 1) is x - 1 for SymPy, but NaN at x = -1 for NumPy; exp(2 log x) is
    x**2 for SymPy, NaN at x < 0 for NumPy: the simplified code must give the same NaNs."""
    x = gc.input("x", (3,))
    value = np.array([-1.0, -2.0, 3.0])
    for y in [(x * x - 1) / (x + 1), gc.exp(gc.log(x) * 2)]:
        fused = fuse_elementwise(Graph((y,)))
        exprs = [n.attrs["expr"] for n in fused.nodes() if n.inputs]
        assert [n.attrs["expr"] for n in simplify(fused).nodes() if n.inputs] == exprs
        with np.errstate(all="ignore"):
            expected = gc.compile([y], [x], optimize=0)(x=value)[0]
            got = gc.compile([y], [x], optimize=2)(x=value)[0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert np.isnan(got).any()


def test_simplify_leaves_trigonometric_expressions_alone():
    x = gc.input("x", (3,))
    y = gc.from_sympy(sp.sin(z) ** 2 + sp.cos(z) ** 2, {z: x})
    assert simplify(Graph((y,))).outputs[0] is y  # sympy would take seconds here


def test_transpose_of_transpose_is_the_node_itself():
    x = gc.input("x", (2, 3, 4))
    out = simplify(Graph((gc.transpose(gc.transpose(x, (1, 2, 0)), (2, 0, 1)),)))
    assert out.outputs[0] is x


def test_two_transposes_compose_into_one():
    x = gc.input("x", (2, 3, 4))
    out = simplify(Graph((gc.transpose(gc.transpose(x, (1, 0, 2)), (0, 2, 1)),)))
    (t,) = [n for n in out.nodes() if n.inputs]
    assert t.op.name == "transpose" and t.inputs == (x,) and t.attrs["axes"] == (1, 2, 0)
    value = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(gc.evaluate(out.outputs, {x: value})[0],
                                  value.transpose(1, 0, 2).transpose(0, 2, 1))


def test_sum_of_a_broadcast_is_a_product():
    g = gc.input("g", (3,))
    like = gc.input("like", (3, 5))
    out = simplify(Graph((gc.sum(gc.ops.api.expand(g, like, (1,)), axis=1),)))
    assert [n.op.name for n in out.nodes() if n.inputs] == ["elementwise"]
    np.testing.assert_allclose(gc.evaluate(out.outputs, {g: np.arange(3.0),
                                                         like: np.zeros((3, 5))})[0],
                               5 * np.arange(3.0))


def test_constants_fold():
    x = gc.input("x", (2,))
    A = gc.constant(np.array([[1.0, 2.0], [3.0, 4.0]]))
    out = simplify(Graph((gc.sum(A.T @ A, axis=0) * x,)))
    (c,) = [n for n in topological_order(out.outputs) if n.op.name == "constant"]
    np.testing.assert_array_equal(c.value, [24.0, 34.0])  # column sums of A^T A


def test_optimize_levels_are_prefixes_of_the_pipeline_and_names_are_checked():
    order = list(PASSES)
    for names in LEVELS.values():
        assert list(names) == [p for p in order if p in names]
    assert pass_names(0, ["fuse"]) == (("fuse",), False)
    with pytest.raises(ValueError, match="unknown passes"):
        pass_names(2, ["fusion"])


def test_memory_planning_is_an_option_not_a_pass():
    """Planning is on by default from optimize=2, off for a list of passes, and ``memory``
    decides either way; "memory" in a list is the deprecated spelling of memory=True."""
    assert "memory" not in PASSES and all("memory" not in names for names in LEVELS.values())
    assert [pass_names(level, None)[1] for level in sorted(LEVELS)] == [False, False, True, True]
    assert pass_names(2, None, False) == (LEVELS[2], False)
    assert pass_names(0, None, True) == ((), True)
    assert pass_names(2, LEVELS[2]) == (LEVELS[2], False)
    assert pass_names(2, [], True) == ((), True)
    with pytest.warns(DeprecationWarning, match="memory=True"):
        assert pass_names(0, ["memory", "cse"]) == (("cse",), True)


def test_report_has_a_row_per_stage_and_the_memory_pass_cuts_allocations():
    x = gc.input("x", ("batch", 8))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (8, 4), seed=0)
    loss = gc.softmax_cross_entropy(gc.relu(x @ W), labels)
    prog = gc.compile([loss], [x, labels], optimizer=gc.SGD(0.1))
    table = prog.report(batch=32)
    for stage in ("source", *LEVELS[2], "memory"):
        assert stage in table
    assert "peak" in table.lower() or "buffer" in table.lower()


def test_a_program_shows_its_code_in_jupyter():
    x = gc.input("x<y", (2,))
    html = gc.compile([gc.sum(x)], [x])._repr_html_()
    assert html.startswith("<pre><code") and "x_y.sum()" in html and "<y" not in html


def test_report_shows_once_as_text_or_a_table(capsys):
    x = gc.input("x", ("batch", 3))
    prog = gc.compile([gc.sum(gc.tanh(x))], [x])
    report = prog.report(batch=4)
    assert capsys.readouterr().out == ""  # returned, not printed as well
    assert repr(report) == str(report) and report.startswith("stage")
    html = report._repr_html_()
    assert html.count("<tr>") == len(str(report).splitlines()) - 1  # the "at batch=4" line
    prog.report(print=True)
    assert capsys.readouterr().out.startswith("stage")
