"""One Adam training step of the digits MLP: hand-tuned flat NumPy against graphc.

The workload of issue 12: an MLP 64-128-10, ReLU, softmax cross-entropy, Adam (lr 0.003,
betas (0.9, 0.999), eps 1e-8, PyTorch's formula: eps added after the bias correction), one
call per minibatch. At this size the arithmetic is a few microseconds and a step costs its
NumPy calls, so the update is where an implementation wins or loses.

Rows:

- ``hand_tuned_flat``: NumPy written for speed, every parameter, gradient and Adam moment a
  view of one flat buffer per role (``flat_params``, ``flat_grads``, ``m_all``, ``v_all``):
  the weight-gradient products write straight into their views (``out=``), and Adam is 13
  NumPy calls for all four parameters together.
- ``graphc``: the generated step at the default level (optimize=2).
- ``graphc_flat_sketch`` (with ``--sketch``): graphc's generated module edited by hand into
  the flat form (views of flat arrays, 13 calls for Adam): what flat storage in graphc would
  give, measured before it is built. Not graphc's code.

Both start from the same parameters and minibatch; `reference_check` first checks that they
compute the same loss and the same update (float64, 1e-9 relative, three steps). Run
``python -m benchmarks.adam_step --threads 1`` for the tables: implementations alternated in
one process, medians of per-round samples, ratios to hand_tuned_flat.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike

from benchmarks.harness import BenchmarkUnavailable, table, tables_by_dtype_and_batch

SIZES = (64, 128, 10)
LR = 0.003
BETAS = (0.9, 0.999)
EPS = 1e-8
PARAM_NAMES = ("W1", "b1", "W2", "b2")


class Problem:
    """Initial parameters (in PARAM_NAMES order) and one minibatch, from one seed."""

    def __init__(self, batch: int, dtype: DTypeLike, seed: int) -> None:
        rng = np.random.default_rng(seed)
        dtype = np.dtype(dtype)
        n_in, n_hidden, n_out = SIZES
        self.x = rng.standard_normal((batch, n_in)).astype(dtype)
        self.labels = rng.integers(0, n_out, size=batch).astype(np.int64)
        self.params = [
            (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2 / n_in)).astype(dtype),
            (0.1 * rng.standard_normal(n_hidden)).astype(dtype),
            (rng.standard_normal((n_hidden, n_out))
             * np.sqrt(2 / (n_hidden + n_out))).astype(dtype),
            (0.1 * rng.standard_normal(n_out)).astype(dtype),
        ]


class Step:
    """A training step to time: call it for one step (it returns the loss); `params()` reads
    the parameters in PARAM_NAMES order, as they are now."""

    def __init__(self, step: Callable[[], float], params: Callable[[], list[np.ndarray]]) -> None:
        self._step = step
        self.params = params

    def __call__(self) -> float:
        return self._step()


def make_hand_tuned_flat(batch: int, dtype: DTypeLike, seed: int = 0) -> Step:
    """NumPy by hand, at the floor of calls: flat storage for parameters, gradients and both
    moments, buffers allocated once, every call with ``out=``."""
    problem = Problem(batch, dtype, seed)
    dtype = np.dtype(dtype)
    x, labels = problem.x, problem.labels
    shapes = [p.shape for p in problem.params]
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.cumsum([0, *sizes])
    total = int(offsets[-1])

    def views(flat: np.ndarray) -> list[np.ndarray]:
        return [flat[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]

    flat_params = np.concatenate([p.ravel() for p in problem.params]).astype(dtype)
    flat_grads = np.zeros(total, dtype)
    m_all = np.zeros(total, dtype)
    v_all = np.zeros(total, dtype)
    scratch_all = np.empty(total, dtype)
    W1, b1, W2, b2 = views(flat_params)
    d_W1, d_b1, d_W2, d_b2 = views(flat_grads)
    n_hidden, n_out = SIZES[1], SIZES[2]
    h1 = np.empty((batch, n_hidden), dtype)
    zeros_h = np.zeros((batch, n_hidden), dtype)
    mask = np.empty((batch, n_hidden), dtype)
    d_h1 = np.empty((batch, n_hidden), dtype)
    s = np.empty((batch, n_out), dtype)
    p = np.empty((batch, n_out), dtype)
    col = np.empty((batch, 1), dtype)
    ones = np.ones(batch, dtype)
    rows = np.arange(batch)
    beta1, beta2 = BETAS
    t = [0]

    def step() -> float:
        # forward
        np.matmul(x, W1, out=h1)
        np.add(h1, b1, out=h1)
        np.maximum(h1, zeros_h, out=h1)
        np.matmul(h1, W2, out=s)
        np.add(s, b2, out=s)
        # softmax cross-entropy and its gradient (softmax - onehot) / B
        s.max(axis=1, keepdims=True, out=col)
        np.subtract(s, col, out=s)
        np.exp(s, out=p)
        p.sum(axis=1, keepdims=True, out=col)
        loss = float(np.log(col).sum() - s[rows, labels].sum()) / batch
        np.divide(p, col, out=p)
        p[rows, labels] -= 1.0
        np.multiply(p, 1.0 / batch, out=p)
        # backward: the weight gradients land in their views of flat_grads
        np.matmul(h1.T, p, out=d_W2)
        np.matmul(ones, p, out=d_b2)
        np.matmul(p, W2.T, out=d_h1)
        np.greater(h1, zeros_h, out=mask)
        np.multiply(d_h1, mask, out=d_h1)
        np.matmul(x.T, d_h1, out=d_W1)
        np.matmul(ones, d_h1, out=d_b1)
        # Adam on all four parameters at once
        t[0] += 1
        step_size = LR / (1 - beta1 ** t[0])
        root_correction = np.sqrt(1 - beta2 ** t[0])
        np.multiply(m_all, beta1, out=m_all)
        np.multiply(flat_grads, 1 - beta1, out=scratch_all)
        np.add(m_all, scratch_all, out=m_all)
        np.square(flat_grads, out=scratch_all)
        np.multiply(scratch_all, 1 - beta2, out=scratch_all)
        np.multiply(v_all, beta2, out=v_all)
        np.add(v_all, scratch_all, out=v_all)
        np.sqrt(v_all, out=scratch_all)
        np.multiply(scratch_all, 1 / root_correction, out=scratch_all)
        np.add(scratch_all, EPS, out=scratch_all)
        np.divide(m_all, scratch_all, out=scratch_all)
        np.multiply(scratch_all, step_size, out=scratch_all)
        np.subtract(flat_params, scratch_all, out=flat_params)
        return loss

    return Step(step, lambda: [a.copy() for a in (W1, b1, W2, b2)])


def make_graphc(batch: int, dtype: DTypeLike, seed: int = 0, optimize: int = 2) -> Step:
    """graphc's generated step at `optimize` (the default level, 2, unless told)."""
    import graphc as gc

    problem = Problem(batch, dtype, seed)
    dtype = np.dtype(dtype)
    x = gc.input("x", ("batch", SIZES[0]), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1, b1, W2, b2 = (gc.param(name, value.shape, init=value, dtype=dtype)
                      for name, value in zip(PARAM_NAMES, problem.params, strict=True))
    h1 = gc.relu(x @ W1 + b1)
    scores = h1 @ W2 + b2
    loss = gc.softmax_cross_entropy(scores, labels)
    prog = gc.compile([loss], [x, labels], optimizer=gc.Adam(lr=LR, betas=BETAS, eps=EPS),
                      optimize=optimize)
    feeds = {"x": problem.x, "labels": problem.labels}

    def step() -> float:
        return float(prog(**feeds)[0])

    return Step(step, lambda: [np.array(prog.params[name]) for name in PARAM_NAMES])


#: The update section of `make_graphc_flat_sketch`: Adam on all four parameters at once.
_FLAT_ADAM = """    # update: Adam on all parameters at once, over their flat arrays
    t[...] = 1 + t
    step_size = {lr!r}/(1 - {beta1!r}**t)
    root_correction = np.sqrt(1 - {beta2!r}**t)
    np.multiply(m_all, {beta1!r}, out=m_all)
    np.multiply(flat_grads, {one_minus_beta1!r}, out=scratch_all)
    np.add(m_all, scratch_all, out=m_all)
    np.square(flat_grads, out=scratch_all)
    np.multiply(scratch_all, {one_minus_beta2!r}, out=scratch_all)
    np.multiply(v_all, {beta2!r}, out=v_all)
    np.add(v_all, scratch_all, out=v_all)
    np.sqrt(v_all, out=scratch_all)
    np.multiply(scratch_all, 1/root_correction, out=scratch_all)
    np.add(scratch_all, {eps!r}, out=scratch_all)
    np.divide(m_all, scratch_all, out=scratch_all)
    np.multiply(scratch_all, step_size, out=scratch_all)
    np.subtract(flat_params, scratch_all, out=flat_params)
"""


def make_graphc_flat_sketch(batch: int, dtype: DTypeLike, seed: int = 0) -> Step:
    """What flat storage would give graphc, sketched by editing its generated module (not
    graphc's code): the parameters and both moments rebound to views of flat arrays, the
    weight gradients' buffers made views of ``flat_grads`` in ``_allocate`` (so the products
    write into them), and the per-parameter update section replaced by 13 flat calls."""
    import re

    import graphc as gc

    problem = Problem(batch, dtype, seed)
    dtype = np.dtype(dtype)
    x = gc.input("x", ("batch", SIZES[0]), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    params = [gc.param(name, value.shape, init=value, dtype=dtype)
              for name, value in zip(PARAM_NAMES, problem.params, strict=True)]
    W1, b1, W2, b2 = params
    loss = gc.softmax_cross_entropy(gc.relu(x @ W1 + b1) @ W2 + b2, labels)
    prog = gc.compile([loss], [x, labels], optimizer=gc.Adam(lr=LR, betas=BETAS, eps=EPS))
    source = prog.source
    shapes = [p.shape for p in params]
    offsets = np.cumsum([0, *(int(np.prod(s)) for s in shapes)])
    total = int(offsets[-1])
    flat = {"flat_params": np.concatenate([p.value.ravel() for p in params]),
            "flat_grads": np.zeros(total, dtype), "m_all": np.zeros(total, dtype),
            "v_all": np.zeros(total, dtype), "scratch_all": np.empty(total, dtype)}
    owned = {n.name: n for n in prog.signature.owned}
    for k, name in enumerate(PARAM_NAMES):
        part = slice(int(offsets[k]), int(offsets[k + 1]))
        for prefix, array in (("", "flat_params"), ("m_", "m_all"), ("v_", "v_all")):
            owned[prefix + name].value = flat[array][part].reshape(shapes[k])
        source, found = re.subn(rf"    d_{name} = np\.empty\(\([^)]*\), np\.\w+\)",
                                f"    d_{name} = flat_grads[{part.start}:{part.stop}]"
                                f".reshape{shapes[k]}", source)
        if found != 1:
            raise BenchmarkUnavailable(f"the generated module allocates d_{name} otherwise")
    if source.count("    # update\n") != 1:
        raise BenchmarkUnavailable("the generated module has no single update section")
    head, tail = source.split("    # update\n")
    beta1, beta2 = BETAS
    update = _FLAT_ADAM.format(lr=LR, beta1=beta1, beta2=beta2, eps=EPS,
                               one_minus_beta1=1 - beta1, one_minus_beta2=1 - beta2)
    namespace: dict[str, object] = dict(flat)
    exec(compile(head + update + tail[tail.index("    return"):], "<sketch>", "exec"),
         namespace)
    prog._fn = namespace["main"]
    feeds = {"x": problem.x, "labels": problem.labels}

    def step() -> float:
        return float(prog(**feeds)[0])

    return Step(step, lambda: [owned[name].value.copy() for name in PARAM_NAMES])


FACTORIES: dict[str, Callable[..., Step]] = {
    "hand_tuned_flat": make_hand_tuned_flat,
    "graphc": make_graphc,
}

#: Rows timed only with --sketch: prototypes of what graphc could emit, not graphc.
SKETCHES: dict[str, Callable[..., Step]] = {"graphc_flat_sketch": make_graphc_flat_sketch}


def reference_check(factories: dict[str, Callable[..., Step]] | None = None, batch: int = 8,
                    steps: int = 3, rtol: float = 1e-9) -> None:
    """Every implementation takes `steps` steps from the same start in float64: the losses
    and the parameters after them must agree with hand_tuned_flat's within `rtol`."""
    made = {}
    for name, factory in (factories or FACTORIES).items():
        try:
            made[name] = factory(batch, np.float64)
        except BenchmarkUnavailable as exc:
            print(f"{name} skipped: {exc}")
    start = made["hand_tuned_flat"].params()
    results = {}
    for name, step in made.items():
        losses = [step() for _ in range(steps)]
        results[name] = (losses, step.params())
    ref_losses, ref_params = results["hand_tuned_flat"]
    for name, (losses, params) in results.items():
        np.testing.assert_allclose(losses, ref_losses, rtol=rtol, err_msg=f"{name}: loss")
        for pname, p, r, p0 in zip(PARAM_NAMES, params, ref_params, start, strict=True):
            change, ref_change = p - p0, r - p0
            err = np.linalg.norm(change - ref_change) / np.linalg.norm(ref_change)
            assert err < rtol, f"{name}: update of {pname} differs by {err:.2e} relative"


def main(argv: Sequence[str] | None = None) -> int:
    """Check the implementations agree, then print one table per dtype and batch."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adam_step",
                                     description="Time one Adam step of the digits MLP.")
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--inner", type=int, default=200, help="steps per sample")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="also write the tables (Markdown) to this file")
    parser.add_argument("--sketch", action="store_true",
                        help="also time graphc_flat_sketch (graphc's module edited by hand)")
    args = parser.parse_args(argv)
    chosen = {**FACTORIES, **(SKETCHES if args.sketch else {})}
    reference_check(chosen)
    tables_by_dtype_and_batch(chosen, args.dtype, args.batch, repeats=args.repeats,
                              inner=lambda batch: args.inner, threads=args.threads,
                              render=lambda samples: table(samples,
                                                           baselines=("hand_tuned_flat",)),
                              out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
