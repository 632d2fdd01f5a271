"""Optimizers as torch.optim defines them: ten steps of each (momentum with dampening,
Nesterov, weight decay, centered RMSProp, AdamW...) on a small MLP, against the update
formulas written out in NumPy here, at optimize 0, 2 and 3, and against torch.optim itself
where torch is installed; the defaults, the earlier keywords, learning-rate folding, and the
errors for bad hyperparameters and integer parameters.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import labels_for, normal

import graphc as gc
from graphc.backend.program import Program
from graphc.passes import gemm as gemm_pass

SIZES = (3, 5, 4)  # features, hidden units, classes
STEPS = 10
#: How close (absolute, on parameters of order 1) a float64 step must come to the formulas.
TOL = 1e-12

CASES = [
    gc.SGD(0.1),
    gc.SGD(0.1, weight_decay=0.1),
    gc.SGD(0.1, momentum=0.9),
    gc.SGD(0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    gc.SGD(0.05, momentum=0.8, weight_decay=0.05, nesterov=True),
    gc.Momentum(0.1, 0.8),
    gc.Momentum(),
    gc.RMSProp(),
    gc.RMSProp(0.01, rho=0.9),
    gc.RMSProp(0.005, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.5),
    gc.RMSProp(0.005, alpha=0.95, centered=True),
    gc.RMSProp(0.005, centered=True, momentum=0.7, weight_decay=0.02),
    gc.Adam(),
    gc.Adam(0.05, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.1),
    gc.Adam(0.05, beta1=0.7, beta2=0.9),
    gc.AdamW(),
    gc.AdamW(0.02, betas=(0.85, 0.995), weight_decay=0.1),
]


def initial_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"W1": normal(rng, SIZES[:2], 0.8), "b1": normal(rng, SIZES[1], 0.1),
            "W2": normal(rng, SIZES[1:], 0.8), "b2": normal(rng, SIZES[2], 0.1)}


def batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """Ten minibatches of changing size."""
    rng = np.random.default_rng(11)
    return [(normal(rng, (4 + i % 5, SIZES[0])), labels_for(rng, 4 + i % 5, SIZES[2]))
            for i in range(STEPS)]


def compiled(optimizer: gc.Optimizer, optimize: int, **options) -> Program:
    """The MLP x -> tanh(x W1 + b1) W2 + b2 -> softmax cross-entropy, trained by ``optimizer``."""
    x = gc.input("x", ("batch", SIZES[0]))
    labels = gc.input("labels", ("batch",), dtype="int64")
    p = {name: gc.param(name, value.shape, init=value) for name, value in
         initial_params().items()}
    scores = gc.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    loss = gc.softmax_cross_entropy(scores, labels)
    return gc.compile([loss], [x, labels], optimizer=optimizer, optimize=optimize, **options)


def loss_and_grads(p: dict[str, np.ndarray], x: np.ndarray,
                   labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """The MLP's mean softmax cross-entropy and its gradients, by hand."""
    h = np.tanh(x @ p["W1"] + p["b1"])
    s = h @ p["W2"] + p["b2"]
    z = s - s.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    d_s = np.exp(log_p)
    d_s[rows, labels] -= 1
    d_s /= len(labels)
    d_z = (d_s @ p["W2"].T) * (1 - h**2)
    grads = {"W1": x.T @ d_z, "b1": d_z.sum(axis=0), "W2": h.T @ d_s, "b2": d_s.sum(axis=0)}
    return -log_p[rows, labels].mean(), grads


def reference_step(opt: gc.Optimizer, p: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                   state: dict, t: int) -> None:
    """Step ``t`` (from 1) of ``opt``'s documented formula (torch.optim's), in place on ``p``."""
    kind = type(opt).__name__
    for k, w in p.items():
        g = grads[k]
        if kind == "Momentum":  # graphc's earlier formula, which torch's SGD must reproduce
            state[k, "v"] = opt.mu * state.get((k, "v"), 0.0) - opt.lr * g
            w += state[k, "v"]
        elif kind == "SGD":
            g = g + opt.weight_decay * w
            if opt.momentum:
                b = g if t == 1 else opt.momentum * state[k, "b"] + (1 - opt.dampening) * g
                state[k, "b"] = b
                g = g + opt.momentum * b if opt.nesterov else b
            w -= opt.lr * g
        elif kind == "RMSProp":
            g = g + opt.weight_decay * w
            a = opt.alpha
            s = state[k, "s"] = a * state.get((k, "s"), 0.0) + (1 - a) * g**2
            if opt.centered:
                gbar = state[k, "gbar"] = a * state.get((k, "gbar"), 0.0) + (1 - a) * g
                s = s - gbar**2
            step = g / (np.sqrt(s) + opt.eps)
            if opt.momentum:
                step = state[k, "b"] = opt.momentum * state.get((k, "b"), 0.0) + step
            w -= opt.lr * step
        else:  # Adam, AdamW
            if kind == "AdamW":
                w *= 1 - opt.lr * opt.weight_decay
            else:
                g = g + opt.weight_decay * w
            b1, b2 = opt.betas
            m = state[k, "m"] = b1 * state.get((k, "m"), 0.0) + (1 - b1) * g
            v = state[k, "v"] = b2 * state.get((k, "v"), 0.0) + (1 - b2) * g**2
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            w -= opt.lr * m_hat / (np.sqrt(v_hat) + opt.eps)


def reference_run(opt: gc.Optimizer) -> tuple[list[float], dict[str, np.ndarray]]:
    """The losses of ten steps and the parameters after them, by the formulas above."""
    p, state, losses = initial_params(), {}, []
    for t, (x, labels) in enumerate(batches(), start=1):
        loss, grads = loss_and_grads(p, x, labels)
        reference_step(opt, p, grads, state, t)
        losses.append(loss)
    return losses, p


def graphc_run(prog) -> tuple[list[float], dict[str, np.ndarray]]:
    losses = [float(prog(x=x, labels=labels)[0]) for x, labels in batches()]
    return losses, prog.params


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.mark.parametrize("optimize", [0, 2, 3])
@pytest.mark.parametrize("opt", CASES, ids=repr)
def test_ten_steps_follow_the_formula(opt, optimize, monkeypatch):
    monkeypatch.setattr(gemm_pass, "MIN_SIZE", 1)  # fold every update optimize=3 can fold
    prog = compiled(opt, optimize)
    if optimize == 3:
        assert ("_gemm(" in prog.source) == (opt.seed_scale != 1.0)
    want_losses, want = reference_run(opt)
    got_losses, got = graphc_run(prog)
    np.testing.assert_allclose(got_losses, want_losses, rtol=0, atol=TOL)
    assert max_difference(got, want) <= TOL
    assert max_difference(got, initial_params()) > 1e-3, "the parameters moved"


def test_the_formulas_tell_the_rules_apart():
    """The reference above is sensitive to each hyperparameter a case sets: no two cases,
    nor a case and its defaults, train alike."""
    finals = [reference_run(opt)[1] for opt in CASES]
    for i in range(len(CASES)):
        for j in range(i):
            assert max_difference(finals[i], finals[j]) > 1e-6, (CASES[i], CASES[j])


@pytest.mark.parametrize("opt", CASES, ids=repr)
def test_ten_steps_match_torch_optim(opt):
    torch = pytest.importorskip("torch")
    w = {k: torch.tensor(v, requires_grad=True) for k, v in initial_params().items()}
    if isinstance(opt, gc.Momentum):
        reference = torch.optim.SGD(list(w.values()), lr=opt.lr, momentum=opt.mu)
    else:
        cls = {"SGD": torch.optim.SGD, "RMSProp": torch.optim.RMSprop, "Adam": torch.optim.Adam,
               "AdamW": torch.optim.AdamW}[type(opt).__name__]
        reference = cls(list(w.values()), **{f: getattr(opt, f) for f in opt.fields})
    torch_losses = []
    for x, labels in batches():
        reference.zero_grad()
        h = torch.tanh(torch.tensor(x) @ w["W1"] + w["b1"])
        loss = torch.nn.functional.cross_entropy(h @ w["W2"] + w["b2"], torch.tensor(labels))
        loss.backward()
        reference.step()
        torch_losses.append(loss.item())
    got_losses, got = graphc_run(compiled(opt, 2))
    np.testing.assert_allclose(got_losses, torch_losses, rtol=0, atol=TOL)
    assert max_difference(got, {k: v.detach().numpy() for k, v in w.items()}) <= TOL


@pytest.mark.parametrize("cls", [gc.SGD, gc.RMSProp, gc.Adam, gc.AdamW])
def test_defaults_are_torchs(cls):
    torch = pytest.importorskip("torch")
    import inspect

    mine = cls()
    theirs = inspect.signature(getattr(torch.optim, cls.__name__.replace("RMSProp", "RMSprop")))
    for name in mine.fields:
        assert getattr(mine, name) == theirs.parameters[name].default, name


def test_documented_defaults():
    assert gc.SGD() == gc.SGD(1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                              nesterov=False)
    assert gc.Momentum() == gc.Momentum(0.01, 0.9) and gc.Momentum().momentum == 0.9
    assert gc.RMSProp() == gc.RMSProp(0.01, 0.99, 1e-8, 0.0, 0.0, False)
    assert gc.Adam() == gc.Adam(1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert gc.AdamW() == gc.AdamW(1e-3, (0.9, 0.999), 1e-8, 0.01)
    assert gc.Adam() != gc.AdamW(weight_decay=0.0), "AdamW is another rule"


def test_earlier_keywords_keep_working():
    assert gc.RMSProp(0.01, rho=0.9) == gc.RMSProp(0.01, alpha=0.9) and gc.RMSProp().rho == 0.99
    assert gc.Adam(beta1=0.8, beta2=0.99) == gc.Adam(betas=(0.8, 0.99))
    assert gc.Adam(beta2=0.99).betas == (0.9, 0.99)
    assert gc.Momentum(lr=0.2, mu=0.5).mu == 0.5
    assert repr(gc.Momentum(0.2, 0.5)) == "Momentum(lr=0.2, mu=0.5)"
    assert repr(gc.Adam(0.1, (0.8, 0.9))) == "Adam(lr=0.1, betas=(0.8, 0.9), eps=1e-08, " \
                                             "weight_decay=0.0)"


def test_learning_rate_folds_only_into_plain_sgd():
    """Backprop is seeded with lr only where the update is linear in the gradient and keeps no
    state; an explicit fold_lr=True leaves the other rules unfolded, and still correct."""
    assert gc.SGD(0.1).seed_scale == 0.1 and gc.Momentum(0.1, 0.0).seed_scale == 0.1
    for opt in (gc.SGD(0.1, momentum=0.9), gc.SGD(0.1, weight_decay=0.1), gc.Momentum(0.1),
                gc.RMSProp(), gc.Adam(), gc.AdamW()):
        assert opt.seed_scale == 1.0, opt
    plain = compiled(gc.SGD(0.1), 2).source
    assert "flat_params -= d_all" in plain and "folded into backpropagation's seed" in plain
    for opt in (gc.SGD(0.1, momentum=0.9), gc.SGD(0.1, weight_decay=0.1)):
        prog = compiled(opt, 0, fold_lr=True)
        assert "folded" not in prog.source
        assert max_difference(graphc_run(prog)[1], reference_run(opt)[1]) <= TOL
    with pytest.raises(ValueError, match="scaled by 0.5"):
        gc.Adam().updates([], [], seed_scale=0.5)


def test_state_is_named_after_its_parameter():
    """Checkpoints store optimizer state under these names."""
    def owned(opt):
        prog = compiled(opt, 2)
        return {prog.names[n.id] for n in prog.signature.owned} - {"W1", "b1", "W2", "b2"}

    assert owned(gc.SGD(0.1)) == set()
    assert owned(gc.SGD(0.1, momentum=0.9)) == {"b_W1", "b_b1", "b_W2", "b_b2"}
    assert owned(gc.SGD(0.1, momentum=0.9, dampening=0.1)) == {"t", "b_W1", "b_b1", "b_W2",
                                                                "b_b2"}
    assert owned(gc.RMSProp(centered=True, momentum=0.5)) >= {"s_W1", "gbar_W1", "b_W1"}
    assert owned(gc.AdamW()) == {"t"} | {f"{s}_{p}" for s in "mv" for p in ("W1", "b1", "W2",
                                                                           "b2")}


@pytest.mark.parametrize("make, message", [
    (lambda: gc.SGD("a"), r"SGD: lr must be a real number, got 'a' \(str\)"),
    (lambda: gc.SGD(True), "SGD: lr must be a real number"),
    (lambda: gc.SGD(-0.1), r"SGD: lr must be >= 0 and finite, got -0.1"),
    (lambda: gc.SGD(float("nan")), "SGD: lr must be >= 0"),
    (lambda: gc.SGD(0.1, momentum=-0.5), "SGD: momentum must be >= 0"),
    (lambda: gc.SGD(0.1, momentum=0.9, dampening=1.5), r"SGD: dampening must be in \[0, 1\]"),
    (lambda: gc.SGD(0.1, nesterov=True), "SGD: nesterov needs a momentum > 0 and dampening 0"),
    (lambda: gc.SGD(0.1, momentum=0.9, dampening=0.1, nesterov=True), "SGD: nesterov needs"),
    (lambda: gc.SGD(0.1, momentum=0.9, nesterov="yes"), "SGD: nesterov must be True or False"),
    (lambda: gc.Momentum(0.1, mu=None), "Momentum: mu must be a real number"),
    (lambda: gc.Momentum(-1.0), "Momentum: lr must be >= 0"),
    (lambda: gc.RMSProp(alpha=1.0), r"RMSProp: alpha must be in \[0, 1\), got 1.0"),
    (lambda: gc.RMSProp(rho=-0.1), r"RMSProp: rho must be in \[0, 1\)"),
    (lambda: gc.RMSProp(alpha=0.9, rho=0.9), "RMSProp: alpha and rho name the same decay"),
    (lambda: gc.RMSProp(eps=-1e-8), "RMSProp: eps must be >= 0"),
    (lambda: gc.RMSProp(centered=1), "RMSProp: centered must be True or False"),
    (lambda: gc.Adam(betas=(1.0, 0.999)), r"Adam: beta1 \(betas\[0\]\) must be in \[0, 1\)"),
    (lambda: gc.Adam(betas=(0.9, -0.1)), r"Adam: beta2 \(betas\[1\]\) must be in \[0, 1\)"),
    (lambda: gc.Adam(beta1=1.5), r"Adam: beta1 \(betas\[0\]\) must be in \[0, 1\)"),
    (lambda: gc.Adam(0.01, 0.8, 0.99), r"Adam: betas must be a pair \(beta1, beta2\), got 0.8"),
    (lambda: gc.Adam(betas=(0.9, 0.99), beta1=0.8), "Adam: give betas=.* not both"),
    (lambda: gc.Adam(lr=[0.1]), "Adam: lr must be a real number"),
    (lambda: gc.AdamW(weight_decay=-0.01), "AdamW: weight_decay must be >= 0"),
    (lambda: gc.AdamW(eps=float("inf")), "AdamW: eps must be >= 0 and finite, got inf"),
])
def test_bad_hyperparameters_are_refused_by_name(make, message):
    with pytest.raises(gc.OptimizerError, match=message) as caught:
        make()
    assert isinstance(caught.value, gc.GraphcError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("opt", [gc.SGD(0.1), gc.SGD(0.1, momentum=0.9), gc.RMSProp(),
                                 gc.Adam(), gc.AdamW()], ids=repr)
def test_an_integer_parameter_is_refused_by_name(opt):
    x = gc.input("x", ("batch", 3))
    W = gc.param("W", (3,), init=0.5)
    counts = gc.param("counts", (3,), dtype="int64", init=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autodiff may warn that the loss ignores counts
        with pytest.raises(gc.OptimizerError,
                           match=rf"{type(opt).__name__}: parameter 'counts' is int64; "
                                 "optimizers update floating-point parameters only"):
            gc.compile([gc.sum(x * W * counts)], [x], optimizer=opt)


def test_float32_training_keeps_float32_state():
    """Every state array keeps the parameters' float32; the step count t is float64 (exact
    past 2**24 steps, its scalars computed as torch.optim computes them in Python)."""
    x = gc.input("x", ("batch", 2), dtype="float32")
    W = gc.param("W", (2,), init=[1.0, -1.0], dtype="float32")
    opt = gc.SGD(0.1, momentum=0.9, dampening=0.5)
    prog = gc.compile([gc.sum((x * W) ** 2)], [x], optimizer=opt)
    for _ in range(3):
        prog(x=np.ones((2, 2)))
    assert {n.name: n.value.dtype.name for n in prog.signature.owned} == \
        {"W": "float32", "b_W": "float32", "t": "float64"}
    # by hand: g = 4 W (two rows of ones); b = g, then 0.9 b + 0.5 g
    w, b = np.array([1.0, -1.0]), None
    for _ in range(3):
        g = 4 * w
        b = g if b is None else 0.9 * b + 0.5 * g
        w = w - 0.1 * b
    np.testing.assert_allclose(prog.params["W"], w, rtol=1e-6)


def test_float32_adam_scales_by_step_scalars_computed_in_float64():
    """torch.optim computes Adam's bias corrections in Python floats; in float32,
    1 - 0.999**t would be 1.3e-5 off at t=1 (0.999 is not a float32 number). graphc computes
    them in float64 and rounds each once to float32, so its float32 steps agree with the
    formula so computed to float32's precision."""
    rng = np.random.default_rng(4)
    x = gc.input("x", ("batch", 3), dtype="float32")
    W = gc.param("W", (3,), init=rng.standard_normal(3), dtype="float32")
    prog = gc.compile([gc.sum((x * W) ** 2)], [x], optimizer=gc.Adam(0.01))
    assert "np.float32(step_size)" in prog.source
    w, m, v = W.array.astype(np.float32).copy(), np.zeros(3, np.float32), np.zeros(3, np.float32)
    xs = rng.standard_normal((5, 2, 3)).astype(np.float32)
    for t, xv in enumerate(xs, start=1):
        prog(x=xv)
        g = (2 * (xv * w) * xv).sum(axis=0, dtype=np.float32)
        m = np.float32(0.9) * m + np.float32(0.1) * g
        v = np.float32(0.999) * v + np.float32(0.001) * g * g
        step_size = np.float32(0.01 / (1 - 0.9**t))
        root = np.float32(math.sqrt(1 - 0.999**t))
        w = w - step_size * m / (np.sqrt(v) / root + np.float32(1e-8))
        np.testing.assert_allclose(prog.params["W"], w, rtol=2e-6)
