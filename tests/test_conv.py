"""Convolution, pooling and dropout: gradients against finite differences, the generated code
against the reference interpreter, the forward against a direct loop, shape errors, the
max-pool tie rule, and dropout's masks."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import graphc as gc
from graphc.backend.memory import plan_memory
from graphc.backend.schedule import schedule_of as _schedule

RNG = np.random.default_rng(20240)


def numeric_gradient(f, value: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f at ``value``, entry by entry."""
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        saved = value[index]
        value[index] = saved + eps
        up = f(value)
        value[index] = saved - eps
        down = f(value)
        value[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


def check_gradients(out: gc.Node, wrt: list[gc.Node], feeds: dict[gc.Node, np.ndarray]) -> None:
    """Gradients of sum(out * r), for a random r, with respect to ``wrt``: the compiled code
    equals the reference interpreter, and both match finite differences of the forward."""
    r = gc.input("r", out.shape)
    feeds = {**feeds, r: RNG.standard_normal(feeds_shape(out, feeds))}
    loss = gc.sum(out * r)
    outputs = [out, loss, *gc.grad(loss, wrt)]
    inputs = list(feeds)
    by_name = {node.name: value for node, value in feeds.items()}
    compiled = gc.compile(outputs, inputs)(**by_name)
    reference = gc.evaluate(outputs, feeds)
    for got, want in zip(compiled, reference):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    forward = gc.compile([loss], inputs)
    for node, analytic in zip(wrt, compiled[2:]):
        value = by_name[node.name].copy()
        numeric = numeric_gradient(
            lambda v, name=node.name: float(forward(**{**by_name, name: v})[0]), value)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


def feeds_shape(out: gc.Node, feeds: dict[gc.Node, np.ndarray]) -> tuple[int, ...]:
    """``out``'s shape with the named batch dimension bound by the feeds."""
    dims = {d: n for node, value in feeds.items() for d, n in zip(node.shape, value.shape)
            if isinstance(d, str)}
    return tuple(dims.get(d, d) for d in out.shape)


def direct_conv(x, w, b, stride, padding):
    """Convolution by its definition, one multiply-add at a time."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for e in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    total = 0.0 if b is None else b[f]
                    for ch in range(c):
                        for di in range(kh):
                            for dj in range(kw):
                                total += xp[e, ch, i * stride + di, j * stride + dj] * \
                                    w[f, ch, di, dj]
                    out[e, f, i, j] = total
    return out


CONV_CASES = [  # stride, padding, bias, kernel
    (1, 0, False, (3, 3)),
    (1, 1, True, (3, 2)),
    (2, 0, True, (3, 3)),
    (2, 1, False, (2, 3)),
    ((2, 1), (0, 1), True, (3, 3)),
]


def conv_case(stride, padding, bias, kernel) -> tuple[gc.Node, dict[gc.Node, np.ndarray]]:
    """A conv2d of one of CONV_CASES over fed input, filters and bias, and the feeds."""
    x = gc.input("x", ("batch", 3, 7, 6))
    w = gc.input("w", (4, 3) + kernel)
    b = gc.input("b", (4,)) if bias else None
    feeds = {x: RNG.standard_normal((2, 3, 7, 6)), w: RNG.standard_normal((4, 3) + kernel)}
    if bias:
        feeds[b] = RNG.standard_normal(4)
    return gc.conv2d(x, w, b, stride=stride, padding=padding), feeds


@pytest.mark.parametrize("stride, padding, bias, kernel", CONV_CASES)
def test_conv2d_gradients(stride, padding, bias, kernel):
    y, feeds = conv_case(stride, padding, bias, kernel)
    check_gradients(y, list(feeds), feeds)


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)])
def test_conv2d_forward_matches_direct_loops(stride, padding):
    xv, wv, bv = RNG.standard_normal((2, 2, 7, 5)), RNG.standard_normal((3, 2, 3, 3)), \
        RNG.standard_normal(3)
    x, w, b = gc.input("x", ("batch", 2, 7, 5)), gc.input("w", (3, 2, 3, 3)), gc.input("b", 3)
    y = gc.conv2d(x, w, b, stride=stride, padding=padding)
    want = direct_conv(xv, wv, bv, stride, padding)
    assert y.shape[1:] == want.shape[1:]
    np.testing.assert_allclose(gc.compile([y], [x, w, b])(x=xv, w=wv, b=bv)[0], want,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gc.evaluate([y], {x: xv, w: wv, b: bv})[0], want,
                               rtol=1e-12, atol=1e-12)


POOL_CASES = [  # kernel, stride, input height and width
    (2, None, (6, 8)),
    (2, 1, (5, 5)),
    (3, 2, (7, 6)),
    ((2, 3), (1, 2), (5, 7)),
]


@pytest.mark.parametrize("pool", [gc.max_pool2d, gc.avg_pool2d])
@pytest.mark.parametrize("kernel, stride, size", POOL_CASES)
def test_pool_gradients(pool, kernel, stride, size):
    x = gc.input("x", ("batch", 3) + size)
    feeds = {x: RNG.standard_normal((2, 3) + size)}
    check_gradients(pool(x, kernel, stride), [x], feeds)


@pytest.mark.parametrize("pool, reduce", [(gc.max_pool2d, np.max), (gc.avg_pool2d, np.mean)])
def test_pool_forward_matches_direct_loops(pool, reduce):
    xv = RNG.standard_normal((2, 3, 7, 6))
    x = gc.input("x", ("batch", 3, 7, 6))
    y = pool(x, 3, 2)
    want = np.array([[[[reduce(xv[n, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3]) for j in range(2)]
                       for i in range(3)] for c in range(3)] for n in range(2)])
    np.testing.assert_allclose(gc.compile([y], [x])(x=xv)[0], want, rtol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum(stride):
    xv = np.array([[[[1.0, 1.0, 0.0, 5.0],
                     [1.0, 1.0, 5.0, 5.0],
                     [2.0, 7.0, 3.0, 3.0],
                     [7.0, 7.0, 3.0, 3.0]]]])
    x = gc.input("x", ("batch", 1, 4, 4))
    y = gc.max_pool2d(x, 2, stride)
    (dx,) = gc.grad(gc.sum(y), [x])
    want = np.zeros((4, 4))
    oh = (4 - 2) // stride + 1
    for i in range(oh):  # the first maximum of each window, in row-major order
        for j in range(oh):
            window = xv[0, 0, i * stride:i * stride + 2, j * stride:j * stride + 2]
            r, c = divmod(int(np.argmax(window)), 2)
            want[i * stride + r, j * stride + c] += 1.0
    if stride == 2:
        assert want.tolist() == [[1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    program = gc.compile([dx], [x])
    for _ in range(2):
        np.testing.assert_array_equal(program(x=xv)[0][0, 0], want)
    np.testing.assert_array_equal(gc.evaluate([dx], {x: xv})[0][0, 0], want)


@pytest.mark.parametrize("order", ["conv_input", "conv_weight", "avg_pool"])
def test_gradients_of_gradients(order):
    """The gradient ops have gradients too: differentiate a penalty on a gradient."""
    x, w = gc.input("x", ("batch", 2, 5, 5)), gc.input("w", (3, 2, 3, 3))
    feeds = {x: RNG.standard_normal((2, 2, 5, 5)), w: RNG.standard_normal((3, 2, 3, 3))}
    if order == "avg_pool":
        y = gc.avg_pool2d(x, 2, 1)
        (inner,) = gc.grad(gc.sum(y * y), [x])
        check_gradients(inner, [x], {x: feeds[x]})
        return
    y = gc.conv2d(x, w, stride=2, padding=1)
    dx, dw = gc.grad(gc.sum(y * y), [x, w])
    check_gradients(dx if order == "conv_input" else dw, [x, w], feeds)


def test_training_step_equals_the_interpreter():
    """One SGD step of a small CNN: generated code and the reference interpreter agree."""
    x = gc.input("x", ("batch", 1, 8, 8))
    labels = gc.input("labels", ("batch",), dtype="int64")
    K = gc.param("K", (4, 1, 3, 3), seed=1)
    c = gc.param("c", (4,), init=0.1)
    W = gc.param("W", (4 * 3 * 3, 3), seed=2)
    h = gc.avg_pool2d(gc.max_pool2d(gc.relu(gc.conv2d(x, K, c, padding=1)), 2), 2, 1)
    loss = gc.softmax_cross_entropy(gc.flatten(h) @ W, labels)
    xv, yv = RNG.standard_normal((5, 1, 8, 8)), RNG.integers(0, 3, 5)
    grads = gc.evaluate(gc.grad(loss, [K, c, W]), {x: xv, labels: yv})
    want = [p.value - 0.1 * g for p, g in zip([K, c, W], grads)]
    step = gc.compile([loss], [x, labels], optimizer=gc.SGD(0.1))
    for line in step.source.splitlines():  # loops only over kernel offsets
        assert not line.strip().startswith("for ") or "np.ndindex(" in line
    step(x=xv, labels=yv)
    for p, expected in zip([K, c, W], want):
        np.testing.assert_allclose(p.value, expected, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32():
    x = gc.input("x", ("batch", 2, 6, 6), dtype="float32")
    w = gc.param("w", (3, 2, 3, 3), dtype="float32", seed=0)
    y = gc.max_pool2d(gc.conv2d(x, w, padding=1))
    (dw,) = gc.grad(gc.sum(y), [w])
    out, grad = gc.compile([y, dw], [x])(x=RNG.standard_normal((2, 2, 6, 6)).astype("float32"))
    assert out.dtype == grad.dtype == np.float32


@pytest.mark.parametrize("build, message", [
    (lambda x: gc.conv2d(x, gc.input("w", (4, 2, 3, 3))), "has 3 channels but"),
    (lambda x: gc.conv2d(x, gc.input("w", (4, 3, 7, 3))),
     "7x3 kernel is larger than the input's height 6"),
    (lambda x: gc.conv2d(x, gc.input("w", (4, 3, 9, 3)), padding=1), "height 6 padded to 8"),
    (lambda x: gc.conv2d(x, gc.input("w", (4, 3, 3, 3)), gc.input("b", (3,))),
     "bias must have shape (4,)"),
    (lambda x: gc.conv2d(gc.input("v", ("batch", 3, 6)), gc.input("w", (4, 3, 3, 3))),
     "(batch, channels, height, width)"),
    (lambda x: gc.conv2d(gc.input("v", ("batch", 3, "h", 6)), gc.input("w", (4, 3, 3, 3))),
     "must be numbers"),
    (lambda x: gc.max_pool2d(x, 7), "7x7 kernel is larger"),
    (lambda x: gc.avg_pool2d(x, (2, 8)), "larger than the input's width 6"),
])
def test_shape_errors_say_what_and_where(build, message):
    x = gc.input("x", ("batch", 3, 6, 6))
    with pytest.raises(gc.ShapeError) as err:
        build(x)
    assert message in str(err.value)
    assert "test_conv.py" in str(err.value)


@pytest.mark.parametrize("call", [
    lambda x: gc.conv2d(x, gc.input("w", (4, 3, 3, 3)), stride=0),
    lambda x: gc.conv2d(x, gc.input("w", (4, 3, 3, 3)), padding=-1),
    lambda x: gc.max_pool2d(x, (2, 2, 2)),
    lambda x: gc.avg_pool2d(x, 2, 1.5),
    lambda x: gc.dropout(x, 1.0),
])
def test_bad_arguments(call):
    with pytest.raises(ValueError):
        call(gc.input("x", ("batch", 3, 6, 6)))


# --- dropout ---------------------------------------------------------------------------
def test_dropout_is_the_identity_in_evaluation():
    x = gc.input("x", ("batch", 50))
    y = gc.dropout(gc.relu(x), 0.5)
    xv = RNG.standard_normal((4, 50))
    np.testing.assert_array_equal(gc.compile([y], [x])(x=xv)[0], np.maximum(xv, 0))
    np.testing.assert_array_equal(gc.evaluate([y], {x: xv})[0], np.maximum(xv, 0))


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_masks_in_training(rate):
    x = gc.input("x", ("batch", 500))
    y = gc.dropout(x, rate, seed=3)
    program = gc.compile([y], [x], training=True)
    out = program(x=np.ones((400, 500)))[0]
    kept = out != 0
    assert abs(kept.mean() - (1 - rate)) < 0.01
    np.testing.assert_allclose(out[kept], 1 / (1 - rate))
    assert abs(out.mean() - 1) < 0.02
    second = program(x=np.ones((400, 500)))[0]
    assert not np.array_equal(out, second)  # a fresh mask at every step
    want = (np.random.default_rng((3, 0)).random((400, 500)) >= rate) / (1 - rate)
    np.testing.assert_array_equal(out, want)


def test_dropout_gradient_uses_the_same_mask():
    x, r = gc.input("x", ("batch", 30)), gc.input("r", ("batch", 30))
    y = gc.dropout(x, 0.3, seed=1)
    (dx,) = gc.grad(gc.sum(y * r), [x])
    xv, rv = RNG.standard_normal((8, 30)) + 5, RNG.standard_normal((8, 30))
    out, grad = gc.compile([y, dx], [x, r], training=True)(x=xv, r=rv)
    mask = out / xv
    assert set(np.round(np.unique(mask), 12)) == {0.0, round(1 / 0.7, 12)}
    np.testing.assert_allclose(grad, rv * mask, rtol=1e-12)


def _dropout_runs(seed: int) -> list[np.ndarray]:
    x = gc.input("x", ("batch", 20))
    program = gc.compile([gc.dropout(x, 0.5, seed=seed)], [x], training=True)
    return [program(x=np.ones((3, 20)))[0] for _ in range(3)]


def test_dropout_same_seed_same_masks():
    first, again, other = _dropout_runs(5), _dropout_runs(5), _dropout_runs(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_dropout_counter_is_saved_with_the_program(tmp_path):
    """The draw counter is a plain array: a saved program continues the sequence of masks."""
    x = gc.input("x", ("batch", 20))
    y = gc.dropout(x, 0.5, seed=2)
    program = gc.compile([y], [x], training=True)
    evaluation = gc.compile([y], [x])
    ones = np.ones((3, 20))
    program(x=ones)
    evaluation(x=ones)  # evaluation draws nothing
    program.save(tmp_path / "step.py")
    want = program(x=ones)[0]
    spec = importlib.util.spec_from_file_location("saved_step", tmp_path / "step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    np.testing.assert_array_equal(module.main(ones)[0], want)


def test_a_training_step_copies_each_conv_input_into_columns_once():
    """conv2d and its filter gradient read one im2col node (the cse pass), and the step still
    equals the interpreter's; a forward-only program keeps conv2d's own layout."""
    x = gc.input("x", ("batch", 2, 9, 9))
    labels = gc.input("labels", ("batch",), dtype="int64")
    K1 = gc.param("K1", (3, 2, 3, 3), seed=1)
    K2 = gc.param("K2", (4, 3, 2, 2), seed=2)
    h = gc.relu(gc.conv2d(gc.relu(gc.conv2d(x, K1, stride=2, padding=1)), K2, padding=1))
    loss = gc.softmax_cross_entropy(gc.sum(h, axis=(2, 3)), labels)
    xv, yv = RNG.standard_normal((3, 2, 9, 9)), RNG.integers(0, 4, 3)
    grads = gc.evaluate(gc.grad(loss, [K1, K2]), {x: xv, labels: yv})
    want = [p.value - 0.1 * g for p, g in zip([K1, K2], grads)]
    for optimize in (1, 2):
        step = gc.compile([loss], [x, labels], optimizer=gc.SGD(0.1), optimize=optimize)
        ops = [n.op.name for n in step.stages[-1].graph.nodes()]
        assert ops.count("im2col") == 2 and ops.count("conv2d_grad_weight") == 2
        assert step.source.count("sliding_window_view") == 2
    step(x=xv, labels=yv)  # the optimize=2 step
    for p, expected in zip([K1, K2], want):
        np.testing.assert_allclose(p.value, expected, rtol=1e-12, atol=1e-12)
    forward = gc.compile([h], [x])
    assert "im2col" not in [n.op.name for n in forward.stages[-1].graph.nodes()]


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((1, 2), (2, 0))])
def test_im2col_code_equals_its_reference(stride, padding):
    """The im2col op's generated layout against its loop-by-loop evaluate, and columns
    times filters against conv2d."""
    from graphc.ops.registry import make

    x = gc.input("x", ("batch", 2, 7, 6))
    w = gc.param("w", (3, 2, 3, 2), seed=4)
    kernel = (3, 2)
    stride_pair = stride if isinstance(stride, tuple) else (stride, stride)
    padding_pair = padding if isinstance(padding, tuple) else (padding, padding)
    cols = make("im2col", (x,), kernel=kernel, stride=stride_pair, padding=padding_pair)
    out = gc.conv2d(x, w, stride=stride, padding=padding)
    xv = RNG.standard_normal((2, 2, 7, 6))
    got_cols, got_out = gc.compile([cols, out], [x])(x=xv)
    want_cols, want_out = gc.evaluate([cols, out], {x: xv})
    np.testing.assert_array_equal(got_cols, want_cols)
    products = (w.value.reshape(3, -1) @ want_cols).reshape(want_out.shape)
    np.testing.assert_allclose(products, want_out, rtol=1e-12, atol=1e-12)


def check_planned(outs: list[gc.Node], feeds: dict[gc.Node, np.ndarray]) -> None:
    """One scalar that reads every node of ``outs`` (random weights r_k): the nodes are
    intermediates, so the memory plan gives them buffers (their ``emit`` into given arrays), at
    optimize=2 and with memory planning alone (no pass: columns not shared), over two calls and two
    batch sizes; it must equal the interpreter, and allocate no padded or zeroed array."""
    total = None
    for k, out in enumerate(outs):
        r = gc.input(f"r{k}", out.shape)
        feeds[r] = RNG.standard_normal(feeds_shape(out, feeds))
        total = gc.sum(out * r) if total is None else total + gc.sum(out * r)
    for prog in (gc.compile([total], list(feeds)),
                 gc.compile([total], list(feeds), passes=[], memory=True)):
        final = prog.stages[-1].graph
        plan = plan_memory(_schedule(final), final.outputs)
        placeable = [n for n in final.nodes()  # convolutions, columns, pools, gradients
                     if n.op.storage(n)
                     and type(n.op).__module__ in ("graphc.ops.conv", "graphc.ops.pool")]
        assert placeable and all(n.id in plan.placements for n in placeable)
        body = prog.source.split("def main")[1]
        assert "np.zeros(" not in body and "np.pad(" not in body
        for scale in (1, 2):  # a second call, then another batch size, reuse the buffers
            batch_feeds = {n: np.concatenate([v] * scale) if "batch" in n.shape[:1] else v
                           for n, v in feeds.items()}
            for _ in range(2):
                got = prog(**{n.name: v for n, v in batch_feeds.items()})[0]
            want = gc.evaluate([total], batch_feeds)[0]
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride, padding, bias, kernel", CONV_CASES)
def test_planned_conv_code_equals_the_interpreter(stride, padding, bias, kernel):
    y, feeds = conv_case(stride, padding, bias, kernel)
    x, w = list(feeds)[:2]
    r = gc.input("ry", y.shape)
    feeds[r] = RNG.standard_normal(feeds_shape(y, feeds))
    check_planned([gc.tanh(y), *gc.grad(gc.sum(y * r), [x, w])], feeds)


@pytest.mark.parametrize("pool", [gc.max_pool2d, gc.avg_pool2d])
@pytest.mark.parametrize("kernel, stride, size", POOL_CASES)
def test_planned_pool_code_equals_the_interpreter(pool, kernel, stride, size):
    x = gc.input("x", ("batch", 2) + size)
    feeds = {x: np.round(RNG.standard_normal((2, 2) + size), 1)}  # ties, too
    y = pool(x, kernel, stride)
    r = gc.input("ry", y.shape)
    feeds[r] = RNG.standard_normal(feeds_shape(y, feeds))
    check_planned([gc.tanh(y), *gc.grad(gc.sum(y * r), [x])], feeds)
