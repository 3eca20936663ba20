"""The Lanczos learning-rate and momentum learner (Granziol et al. 2022, Sec. 10.2).

Closed forms on hand-computed Ritz values; the optimal heavy ball and Nesterov rates on
quadratics with a known spectrum, reached by torch.optim.SGD with the learner's settings;
on a small network, the learner's estimate against lanczos run directly, its records, and
a model state that no estimate changes.
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import rmtlr.learner
from rmtlr.curvature import HessianOperator, lanczos
from rmtlr.learner import LanczosLearner, lr_momentum_from_ritz
from rmtlr.models import build

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")

COMBOS = [(v, f) for v in ("polyak", "nesterov") for f in ("classical", "printed")]


def test_docstring_examples_run():
    assert doctest.testmod(rmtlr.learner).failed == 0


# --- lr_momentum_from_ritz: hand-computed values -------------------------------------------

# λ₁ = 9, λ_min = 1 (√ = 3, 1): heavy ball α = 4/(3+1)² = 1/4, printed 4/(3+1) = 1,
# ρ = ((3−1)/(3+1))² = 1/4; Nesterov α = 1/9, printed √(1/9) = 1/3, ρ = 1/2.
NO_DROP = {("polyak", "classical"): (0.25, 0.25), ("polyak", "printed"): (1.0, 0.25),
           ("nesterov", "classical"): (1 / 9, 0.5), ("nesterov", "printed"): (1 / 3, 0.5)}


@pytest.mark.parametrize(("variant", "form"), COMBOS)
def test_closed_form_without_drop(variant, form):
    # The heaviest weight is exactly 0.5: the rule drops only weights *above* one half.
    r = lr_momentum_from_ritz([1.0, 4.0, 9.0], [0.2, 0.3, 0.5], variant=variant, form=form)
    lr, mom = NO_DROP[variant, form]
    assert r.lr == pytest.approx(lr, rel=1e-15) and r.momentum == pytest.approx(mom, rel=1e-15)
    assert (r.lam_max, r.lam_min, r.kappa) == (9.0, 1.0, 9.0)
    assert r.dropped_values.size == 0 and r.dropped_weights.size == 0
    assert (r.variant, r.form) == (variant, form)


# After dropping 1e-3 (weight 0.6): |values| {4, 16, 9, 1}, λ₁ = 16, λ_min = 1 (√ = 4, 1):
# heavy ball α = 4/25, printed 4/5, ρ = (3/5)²; Nesterov α = 1/16, printed 1/4, ρ = 3/5.
ONE_DROP = {("polyak", "classical"): (0.16, 0.36), ("polyak", "printed"): (0.8, 0.36),
            ("nesterov", "classical"): (0.0625, 0.6), ("nesterov", "printed"): (0.25, 0.6)}


@pytest.mark.parametrize(("variant", "form"), COMBOS)
def test_closed_form_one_drop_uses_moduli(variant, form):
    r = lr_momentum_from_ritz([1e-3, 4.0, -16.0, 9.0, 1.0], [0.6, 0.1, 0.1, 0.1, 0.1],
                              variant=variant, form=form)
    lr, mom = ONE_DROP[variant, form]
    assert r.lr == pytest.approx(lr, rel=1e-15) and r.momentum == pytest.approx(mom, rel=1e-15)
    assert (r.lam_max, r.lam_min) == (16.0, 1.0)  # |−16| is λ₁
    assert r.dropped_values.tolist() == [1e-3]
    np.testing.assert_allclose(r.dropped_weights, [0.6], rtol=1e-15)


def test_closed_form_two_drops_renormalise():
    # Drop 0 (0.7); the rest renormalise to (2/3, 1/6, 1/6): drop 1e-3 (2/3); then (1/2, 1/2)
    # stops. λ₁ = 4, λ_min = 1: α = 4/9, ρ = 1/9 (heavy ball); α = 1/4, ρ = 1/3 (Nesterov).
    # Without the rule λ_min would be 0 (an error, see below).
    values, weights = [0.0, 1e-3, 1.0, 4.0], [0.7, 0.2, 0.05, 0.05]
    hb = lr_momentum_from_ritz(values, weights, variant="polyak", form="classical")
    assert hb.lr == pytest.approx(4 / 9, rel=1e-15)
    assert hb.momentum == pytest.approx(1 / 9, rel=1e-15)
    assert hb.dropped_values.tolist() == [0.0, 1e-3]
    np.testing.assert_allclose(hb.dropped_weights, [0.7, 2 / 3], rtol=1e-15)
    nag = lr_momentum_from_ritz(values, weights, variant="nesterov", form="classical")
    assert (nag.lr, nag.momentum) == pytest.approx((0.25, 1 / 3), rel=1e-15)


def test_weights_need_not_be_normalised_and_inputs_may_be_tensors():
    a = lr_momentum_from_ritz([1e-3, 4.0, 16.0, 1.0], [6.0, 1.0, 2.0, 1.0],
                              variant="polyak", form="classical")
    b = lr_momentum_from_ritz(torch.tensor([1e-3, 4.0, 16.0, 1.0]),
                              torch.tensor([0.6, 0.1, 0.2, 0.1]),
                              variant="polyak", form="classical")
    assert a.lr == pytest.approx(b.lr, rel=1e-6) and a.dropped_weights[0] == pytest.approx(0.6)


def test_equal_extremes_give_kappa_one():
    # κ = 1: α = 4/(2√λ)² = 1/λ (one Newton step), ρ = 0; −2 counts as 2.
    r = lr_momentum_from_ritz([2.0, -2.0], [0.5, 0.5], variant="polyak", form="classical")
    assert r.lr == pytest.approx(0.5, rel=1e-15) and (r.momentum, r.kappa) == (0.0, 1.0)


def test_result_is_frozen():
    r = lr_momentum_from_ritz([1.0, 4.0], [0.5, 0.5], variant="nesterov", form="classical")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.lr = 1.0
    with pytest.raises(ValueError):
        r.dropped_values[...] = 0.0  # read-only array


@pytest.mark.parametrize(("values", "weights", "match"), [
    ([], [], "empty"),
    ([1.0, float("nan")], [0.5, 0.5], "ritz_values contains non-finite"),
    ([1.0, 2.0], [0.5, float("inf")], "ritz_weights contains non-finite"),
    ([1.0, 2.0], [0.5, -0.1], "ritz_weights must be >= 0"),
    ([1.0, 2.0], [0.5, 0.3, 0.2], "same length"),
    ([[1.0, 2.0]], [[0.5, 0.5]], "1-D"),
    ([1.0, 2.0], [0.0, 0.0], "all zero"),
    ([1.0], [1.0], "dropped every Ritz value"),
    # 1 is dropped (0.9), then 2 alone has weight 1 > 0.5: nothing is left.
    ([1.0, 2.0], [0.9, 0.1], "dropped every Ritz value"),
    ([0.0, 3.0], [0.5, 0.5], "lam_min = 0"),
])
def test_bad_input_raises(values, weights, match):
    with pytest.raises(ValueError, match=match):
        lr_momentum_from_ritz(values, weights, variant="polyak", form="classical")


def test_bad_variant_form_and_type():
    with pytest.raises(ValueError, match="variant"):
        lr_momentum_from_ritz([1.0, 2.0], [0.5, 0.5], variant="adam", form="classical")
    with pytest.raises(ValueError, match="form"):
        lr_momentum_from_ritz([1.0, 2.0], [0.5, 0.5], variant="polyak", form="paper")
    with pytest.raises(TypeError, match="ritz_values"):
        lr_momentum_from_ritz(["a", "b"], [0.5, 0.5], variant="polyak", form="classical")


# --- quadratics with a known spectrum --------------------------------------------------------

class Quadratic(nn.Module):
    """f(w) = ½ wᵀAw as a 'network' whose output is the loss (A a buffer: not trained)."""

    def __init__(self, eigs, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        Q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
        self.register_buffer("A", torch.from_numpy((Q * np.asarray(eigs)) @ Q.T))
        self.w = nn.Parameter(torch.from_numpy(rng.standard_normal(len(eigs))))

    def forward(self, x):
        return 0.5 * self.w @ self.A @ self.w


def identity_loss(out, y):
    return out


QUAD_DATA = (torch.zeros(1, 1), torch.zeros(1))  # the quadratic ignores its data


def heavy_ball_radius(lr, mom, lam):
    """Largest |root| of z² − (1 + ρ − αλ)z + ρ, the heavy ball's factor per step on λ."""
    return max(abs(np.roots([1.0, -(1 + mom - lr * lam), mom])))


def test_classical_heavy_ball_is_the_optimal_one_on_the_spectrum():
    kappa = 100.0
    eigs = np.linspace(1.0, kappa, 50)
    r = lr_momentum_from_ritz([eigs[0], eigs[-1]], [0.5, 0.5], variant="polyak",
                              form="classical")
    rate = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)

    def worst(lr, mom):
        return max(heavy_ball_radius(lr, mom, lam) for lam in eigs)

    # Every eigen-direction contracts by √ρ = (√κ−1)/(√κ+1) per step (up to the rounding of
    # the double roots at the two ends, ~√eps) ...
    assert worst(r.lr, r.momentum) == pytest.approx(rate, rel=1e-6)
    # ... and moving α or ρ by 1% either way makes the worst direction slower.
    for lr, mom in ((1.01 * r.lr, r.momentum), (0.99 * r.lr, r.momentum),
                    (r.lr, 1.01 * r.momentum), (r.lr, 0.99 * r.momentum)):
        assert worst(lr, mom) > rate + 1e-4


def late_rate(norms: np.ndarray, start: int) -> float:
    """Per-step factor from a least-squares fit of log(‖w_t‖ / t) against t, t ≥ start.

    With the optimal parameters the extreme eigenvalues are double roots of the
    characteristic polynomial (a Jordan block), so ‖w_t‖ ~ t·r^t there; dividing by t
    removes the bias of ln(t₂/t₁)/(t₂ − t₁) ≈ 0.35% a plain fit of log ‖w_t‖ would have.
    """
    t = np.arange(start, len(norms)) + 1.0
    return float(np.exp(np.polyfit(t, np.log(norms[start:]) - np.log(t), 1)[0]))


def run_sgd_on(model, optimizer, steps):
    norms = []
    for _ in range(steps):
        optimizer.zero_grad()
        model(None).backward()
        optimizer.step()
        norms.append(float(model.w.detach().norm()))
    return np.array(norms)


@pytest.mark.parametrize(("variant", "kappa"), [("polyak", 100.0), ("polyak", 400.0),
                                                 ("nesterov", 100.0), ("nesterov", 400.0)])
def test_learner_settings_converge_at_the_optimal_rate_on_a_quadratic(variant, kappa):
    eigs = np.linspace(1.0, kappa, 50)
    model = Quadratic(eigs)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    # m = P Lanczos steps with full re-orthogonalisation recover every eigenvalue; the
    # generic start vector gives every one a weight far below 0.5, so nothing is dropped.
    learner = LanczosLearner(opt, model, identity_loss, QUAD_DATA, num_steps=50,
                             variant=variant, form="classical", seed=1)
    r = learner.records[0].result
    assert r.dropped_values.size == 0
    assert (r.lam_max, r.lam_min) == pytest.approx((kappa, 1.0), rel=1e-10)
    assert opt.param_groups[0]["nesterov"] is (variant == "nesterov")
    # Heavy ball (Polyak 1964): (√κ − 1)/(√κ + 1) per step. Nesterov with α = 1/λ₁,
    # ρ = (√κ−1)/(√κ+1): the characteristic polynomial z² − (1+ρ)(1−αλ)z + ρ(1−αλ) has a
    # double root 1 − 1/√κ at λ = λ_min and smaller roots elsewhere (0 at λ₁), so
    # (1 − 1/√κ) per step; PyTorch's Nesterov form has the same polynomial.
    s = math.sqrt(kappa)
    predicted = (s - 1) / (s + 1) if variant == "polyak" else 1 - 1 / s
    norms = run_sgd_on(model, opt, 400)
    # After the t-correction the fit is within ~3e-4 of the prediction (from the
    # sub-dominant modes, which decay only slightly faster); 1e-3 is tight next to the
    # gap between the two methods' rates (≥ 5%) and plain gradient descent's (κ−1)/(κ+1).
    assert late_rate(norms, 200) == pytest.approx(predicted, rel=1e-3)


def test_printed_heavy_ball_step_is_a_different_number_and_diverges_here():
    eigs = np.linspace(1.0, 100.0, 50)
    classical = lr_momentum_from_ritz([1.0, 100.0], [0.5, 0.5], variant="polyak",
                                      form="classical")
    printed = lr_momentum_from_ritz([1.0, 100.0], [0.5, 0.5], variant="polyak",
                                    form="printed")
    # 4/(√λ₁+√λ_min) = (√λ₁+√λ_min)·4/(√λ₁+√λ_min)²: 11 times the classical step here; they
    # agree only where √λ₁ + √λ_min = 1 (the printed form is not invariant to the scale of
    # the loss). The momentum is the same.
    assert printed.lr == pytest.approx(11 * classical.lr, rel=1e-15) == 4 / 11
    assert printed.momentum == classical.momentum
    # The heavy ball is stable on λ only if αλ < 2(1 + ρ); here αλ₁ = 400/11 ≈ 36 > 2(1+ρ):
    assert printed.lr * 100.0 > 2 * (1 + printed.momentum)
    model = Quadratic(eigs)
    opt = torch.optim.SGD(model.parameters(), lr=printed.lr, momentum=printed.momentum)
    norms = run_sgd_on(model, opt, 60)
    assert norms[-1] > 1e20 * norms[0]  # diverges geometrically


def test_printed_nesterov_step_is_one_over_sqrt_kappa():
    printed = lr_momentum_from_ritz([1.0, 100.0], [0.5, 0.5], variant="nesterov",
                                    form="printed")
    classical = lr_momentum_from_ritz([1.0, 100.0], [0.5, 0.5], variant="nesterov",
                                      form="classical")
    assert (printed.lr, classical.lr) == pytest.approx((0.1, 0.01), rel=1e-15)
    assert printed.momentum == classical.momentum == pytest.approx(9 / 11, rel=1e-15)


# --- a small network ------------------------------------------------------------------------

def small_cnn_setup(seed=0):
    torch.manual_seed(seed)
    model = build("small_cnn", 10, width=4)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(160, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (160,), generator=g)
    return model, x, y


def test_estimate_equals_lanczos_on_the_same_subset():
    model, x, y = small_cnn_setup()
    subset = (x[:64], y[:64])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    learner = LanczosLearner(opt, model, F.cross_entropy, subset, num_steps=20, seed=7,
                             variant="polyak", form="classical", progress=False)
    rec = learner.records[0]
    assert (rec.epoch, rec.seed) == (0, 7)
    ref = lanczos(HessianOperator(model, F.cross_entropy, subset), 20, seed=7)
    np.testing.assert_allclose(rec.ritz_values, ref.ritz_values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(rec.ritz_weights, ref.ritz_weights, rtol=0, atol=1e-10)
    chosen = lr_momentum_from_ritz(ref.ritz_values, ref.ritz_weights, variant="polyak",
                                   form="classical")
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(chosen.lr, rel=1e-9)
        assert group["momentum"] == pytest.approx(chosen.momentum, rel=1e-9)
        assert group["nesterov"] is False
    assert rec.seconds > 0


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        h = self.drop(torch.relu(self.bn(self.conv(x))))
        return self.head(h.mean(dim=(2, 3)))


def snapshot(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            {name: m.training for name, m in model.named_modules()},
            {k: (p.grad, None if p.grad is None else p.grad.clone())
             for k, p in model.named_parameters()})


@pytest.mark.parametrize("bn_mode", ["frozen-train", "eval"])
def test_an_estimate_leaves_model_grads_mode_and_rng_untouched(bn_mode):
    torch.manual_seed(0)
    model = BNNet()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    model.train()
    F.cross_entropy(model(x), y).backward()  # running stats move, .grad is set
    model.head.eval()  # a mixed mode must survive too
    before = snapshot(model)
    rng = torch.get_rng_state()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    LanczosLearner(opt, model, F.cross_entropy, (x, y), num_steps=8, bn_mode=bn_mode)
    state, flags, grads = snapshot(model)
    assert all(torch.equal(state[k], v) for k, v in before[0].items())
    assert flags == before[1]
    for k, (ref, value) in before[2].items():
        assert grads[k][0] is ref and torch.equal(grads[k][1], value)
    assert torch.equal(torch.get_rng_state(), rng)


def test_bn_mode_reaches_the_operator():
    torch.manual_seed(0)
    model = BNNet()
    g = torch.Generator().manual_seed(1)
    data = (torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g))
    values = {}
    for mode in ("frozen-train", "eval"):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        rec = LanczosLearner(opt, model, F.cross_entropy, data, num_steps=8,
                             bn_mode=mode).records[0]
        ref = lanczos(HessianOperator(model, F.cross_entropy, data, bn_mode=mode), 8, seed=0)
        np.testing.assert_allclose(rec.ritz_values, ref.ritz_values, rtol=0, atol=1e-10)
        values[mode] = rec.ritz_values
    # Fresh running statistics (0, 1) are not the data's: the two Hessians differ.
    assert not np.allclose(values["frozen-train"], values["eval"], rtol=1e-3)


def train_epoch(model, opt, x, y, batch=32):
    model.train()
    for i in range(0, len(x), batch):
        opt.zero_grad()
        F.cross_entropy(model(x[i:i + batch]), y[i:i + batch]).backward()
        opt.step()


def test_records_schedule_and_iterate_averaging():
    model, x, y = small_cnn_setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    learner = LanczosLearner(opt, model, F.cross_entropy, (x[:64], y[:64]), every_epochs=2,
                             num_steps=10, seed=3, swa_start=3)
    returned, at_end = [], []
    for epoch in range(5):
        train_epoch(model, opt, x, y)
        if epoch >= 3:
            at_end.append([p.detach().clone() for p in model.parameters()])
        returned.append(learner.epoch_end(epoch))
        assert (learner.averaged_model is None) is (epoch < 3)
    # An estimate before training and after epochs 2 and 4 (0-based 1 and 3), each from
    # its own start vector; lr and momentum are those of the latest.
    assert [r is None for r in returned] == [True, False, True, False, True]
    recs = learner.records
    assert [r.epoch for r in recs] == [0, 2, 4] and [r.seed for r in recs] == [3, 4, 5]
    assert returned[1] is recs[1] and returned[3] is recs[2]
    assert opt.param_groups[0]["lr"] == recs[-1].lr
    assert opt.param_groups[0]["momentum"] == recs[-1].momentum
    for r in recs:
        assert r.lr == r.result.lr and np.isfinite(r.lr) and 0 <= r.momentum < 1
        assert r.ritz_values.shape == r.ritz_weights.shape == (10,)
        assert not r.ritz_values.flags.writeable
        json.dumps(r.as_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        recs[0].epoch = 1
    # The average of the parameters at the ends of epochs 3 and 4 (0-based).
    avg = learner.averaged_model
    assert int(avg.n_averaged) == 2
    for p, a, b in zip(avg.module.parameters(), *at_end):
        torch.testing.assert_close(p, (a + b) / 2)


def test_tensor_learning_rate_is_set_in_place():
    model, x, y = small_cnn_setup()
    lr = torch.tensor(0.1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
    learner = LanczosLearner(opt, model, F.cross_entropy, (x[:64], y[:64]))
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(learner.records[0].lr)


def test_learner_rejects_bad_arguments():
    model, x, y = small_cnn_setup()
    data = (x[:64], y[:64])
    with pytest.raises(TypeError, match="torch.optim.SGD"):
        LanczosLearner(torch.optim.Adam(model.parameters()), model, F.cross_entropy, data)
    with pytest.raises(TypeError, match="model"):
        LanczosLearner(torch.optim.SGD(model.parameters()), lambda x: x, F.cross_entropy, data)
    with pytest.raises(ValueError, match="dampening"):
        LanczosLearner(torch.optim.SGD(model.parameters(), momentum=0.9, dampening=0.1),
                       model, F.cross_entropy, data)
    for kw, match in (({"every_epochs": 0}, "every_epochs"), ({"num_steps": 0}, "num_steps"),
                      ({"variant": "adam"}, "variant"), ({"form": "paper"}, "form"),
                      ({"bn_mode": "train"}, "bn_mode"), ({"swa_start": -1}, "swa_start"),
                      ({"every_epochs": 2.5}, "every_epochs")):
        with pytest.raises(ValueError, match=match):
            LanczosLearner(torch.optim.SGD(model.parameters()), model, F.cross_entropy,
                           data, **kw)
    with pytest.raises(ValueError, match="seed must be an integer"):
        LanczosLearner(torch.optim.SGD(model.parameters()), model, F.cross_entropy, data,
                       seed=1.5)
    with pytest.raises(TypeError, match="seed must be an integer"):
        LanczosLearner(torch.optim.SGD(model.parameters()), model, F.cross_entropy, data,
                       seed="1")
    stranger = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="params"):
        LanczosLearner(torch.optim.SGD([*model.parameters(), stranger]), model,
                       F.cross_entropy, data)
    learner = LanczosLearner(torch.optim.SGD(model.parameters()), model, F.cross_entropy,
                             data)
    with pytest.raises(ValueError, match="epoch"):
        learner.epoch_end(-1)


# --- keep_graphs, the callback for rmtlr.train, checkpoints ---------------------------------

def test_keep_graphs_gives_the_estimate_of_the_plain_operator():
    # float64 so that the two orders of summation agree to 1e-10, not to float32 rounding.
    model, x, y = small_cnn_setup()
    model = model.double()
    batches = [(x[i:i + 32].double(), y[i:i + 32]) for i in range(0, 96, 32)]
    recs = {}
    for keep in (False, True):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        recs[keep] = LanczosLearner(opt, model, F.cross_entropy, batches, num_steps=12,
                                    keep_graphs=keep, progress=False).records[0]
    np.testing.assert_allclose(recs[True].ritz_values, recs[False].ritz_values, rtol=1e-10)
    np.testing.assert_allclose(recs[True].ritz_weights, recs[False].ritz_weights, atol=1e-10)
    ref = lanczos(HessianOperator(model, F.cross_entropy, batches), 12, seed=0)
    np.testing.assert_allclose(recs[True].ritz_values, ref.ritz_values, rtol=1e-10)


def test_record_round_trips_through_its_dict():
    model, x, y = small_cnn_setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = LanczosLearner(opt, model, F.cross_entropy, (x[:64], y[:64]), num_steps=10,
                         progress=False).records[0]
    back = rmtlr.learner.LearnerRecord.from_dict(json.loads(json.dumps(rec.as_dict())))
    assert back.as_dict() == rec.as_dict() and rec.cpu_seconds > 0
    assert not back.ritz_values.flags.writeable


def image_run(epochs=4):
    from rmtlr import data
    from rmtlr.train import TrainConfig
    imgs = data.synthetic_images(n=96, num_classes=4, seed=0)
    cfg = TrainConfig(model="small_cnn", model_kw={"width": 4}, batch_size=32, epochs=epochs,
                      lr=0.1, weight_decay=5e-4, seed=2)
    x, y = imgs.tensors
    return cfg, imgs, [(x[:32], y[:32]), (x[32:64], y[32:64])]


def test_callback_in_train_estimates_as_the_hand_written_loop_and_skips_the_last():
    from rmtlr.train import train
    cfg, imgs, subset = image_run()
    kw = {"every_epochs": 2, "num_steps": 10, "variant": "polyak", "form": "classical",
          "seed": 4, "swa_start": 2, "progress": False}
    cb = rmtlr.learner.LearnerCallback(F.cross_entropy, subset, epochs=4, **kw)
    torch.manual_seed(cfg.seed)
    model = build("small_cnn", 4, width=4)
    rec = train(cfg, train_set=imgs, model=model, device="cpu", callback=cb)
    # Estimates before training and after epoch 2; the one due after the last (4) skipped.
    assert [r["epoch"] for r in rec["callback"]] == [0, 2] and len(cb.records) == 2
    assert [r["seed"] for r in rec["callback"]] == [4, 5]
    assert rec["curves"]["lr"] == [cb.records[0].lr] * 2 + [cb.records[1].lr] * 2
    assert rec["averaged"]["epochs_averaged"] == 2 == int(cb.averaged_model.n_averaged)
    # The same estimate from lanczos on the model as it was after epoch 2: rerun 2 epochs.
    torch.manual_seed(cfg.seed)
    again = build("small_cnn", 4, width=4)
    cb2 = rmtlr.learner.LearnerCallback(F.cross_entropy, subset, epochs=2, **kw)
    train(dataclasses.replace(cfg, epochs=2), train_set=imgs, model=again, device="cpu",
          callback=cb2)
    ref = lanczos(HessianOperator(again, F.cross_entropy, subset, bn_mode="frozen-train"),
                  10, seed=5)
    np.testing.assert_allclose(cb.records[1].ritz_values, ref.ritz_values, rtol=1e-4,
                               atol=1e-6)
    config = cb.config()["lanczos_learner"]
    assert config["epochs"] == 4 and config["subset"]["samples"] == 64
    assert "keep_graphs" not in config and "progress" not in config


class Interrupt(Exception):
    pass


class KilledLearner(rmtlr.learner.LearnerCallback):
    def __init__(self, *a, at=None, **k):
        super().__init__(*a, **k)
        self.at = at

    def on_epoch_end(self, epoch, model, optimizer):
        if epoch == self.at:
            self.at = None
            raise Interrupt
        return super().on_epoch_end(epoch, model, optimizer)


def test_a_learner_run_resumes_from_its_checkpoint_as_if_uninterrupted(tmp_path):
    from rmtlr.train import train
    cfg, imgs, subset = image_run()
    # method fixed: "auto" picks the faster product by timing, per model object, so a
    # resumed run (a new model) could pick the other one, equal only to float32 rounding.
    kw = {"every_epochs": 1, "num_steps": 8, "seed": 1, "swa_start": 2, "progress": False,
          "method": "double-backward"}
    ref = train(cfg, train_set=imgs, device="cpu",
                callback=KilledLearner(F.cross_entropy, subset, **kw))
    ckpt = tmp_path / "c.pt"
    with pytest.raises(Interrupt):
        train(cfg, train_set=imgs, device="cpu", checkpoint=ckpt,
              callback=KilledLearner(F.cross_entropy, subset, at=4, **kw))
    cb = KilledLearner(F.cross_entropy, subset, **kw)
    rec = train(cfg, train_set=imgs, device="cpu", checkpoint=ckpt, callback=cb)
    assert rec["resumed_at_epoch"] == 3
    assert rec["step_loss"] == ref["step_loss"] and rec["averaged"] == ref["averaged"]
    strip = [{k: v for k, v in r.items() if "seconds" not in k} for r in rec["callback"]]
    assert strip == [{k: v for k, v in r.items() if "seconds" not in k}
                     for r in ref["callback"]]
    assert [r.epoch for r in cb.records] == [0, 1, 2, 3, 4]


def test_a_failed_estimate_mid_run_is_recorded_and_keeps_the_previous_rates(monkeypatch):
    from rmtlr.train import train
    cfg, imgs, subset = image_run(epochs=2)
    real = rmtlr.learner.lr_momentum_from_ritz
    calls = []

    def fails_after_the_first(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("the degeneracy rule dropped every Ritz value")
        return real(*a, **k)

    monkeypatch.setattr(rmtlr.learner, "lr_momentum_from_ritz", fails_after_the_first)
    cb = rmtlr.learner.LearnerCallback(F.cross_entropy, subset, every_epochs=1, num_steps=8,
                                       progress=False)
    rec = train(cfg, train_set=imgs, device="cpu", callback=cb)
    assert rec["outcome"] == "ok" and len(cb.records) == 1
    message = "the degeneracy rule dropped every Ritz value"
    assert rec["callback"][1:] == [{"epoch": e, "failed": message} for e in (1, 2)]
    assert rec["curves"]["lr"] == [cb.records[0].lr] * 2
    monkeypatch.setattr(rmtlr.learner, "lr_momentum_from_ritz",
                        lambda *a, **k: (_ for _ in ()).throw(ValueError("first fails")))
    with pytest.raises(ValueError, match="first fails"):
        train(cfg, train_set=imgs, device="cpu",
              callback=rmtlr.learner.LearnerCallback(F.cross_entropy, subset, num_steps=8))


@pytest.mark.parametrize(("kw", "err", "match"), [
    ({"loss_fn": 1}, TypeError, "loss_fn must be callable"),
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
    ({"keep_graphs": "yes"}, TypeError, "keep_graphs must be True or False"),
    ({"every_epochs": 0}, ValueError, "every_epochs must be an integer >= 1"),
    ({"variant": "adam"}, ValueError, "variant must be one of"),
    ({"seed": 1.5}, ValueError, "seed must be an integer"),
    ({"method": "finite-differences"}, ValueError, "method must be one of"),
])
def test_learner_callback_rejects_bad_arguments(kw, err, match):
    args = {"loss_fn": F.cross_entropy, **kw}
    with pytest.raises(err, match=match):
        rmtlr.learner.LearnerCallback(args.pop("loss_fn"), (torch.zeros(2, 3), torch.zeros(2)),
                                      **args)
