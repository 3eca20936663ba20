"""HessianOperator / GGNOperator against dense torch.func matrices (float64).

Tolerance 1e-10 relative (Frobenius): both sides are exact derivatives of the same
function computed in float64 by different routes, so they differ only by rounding,
~1e-16·(depth of the graph); 1e-10 leaves room for accumulation without hiding a wrong term
(a missing BatchNorm or weighting term changes the matrices at O(1)).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from rmtlr.curvature import GGNOperator, HessianOperator, MatrixOperator, batch_norm_statistics

RTOL = 1e-10
CE = nn.CrossEntropyLoss()

# torch.func.hessian (the dense reference) triggers a deprecation warning inside torch.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")


class TinyCNN(nn.Module):
    """conv → BatchNorm → tanh → conv → BatchNorm → ReLU → linear; small enough to densify."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.c2 = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        h = torch.tanh(self.bn1(self.c1(x)))
        h = torch.relu(self.bn2(self.c2(h)))
        return self.fc(h.flatten(1))


def mlp():
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(5, 3))


def make_cnn(seed=0):
    torch.manual_seed(seed)
    m = TinyCNN().double()
    with torch.no_grad():  # non-trivial running statistics so eval mode is a real test
        for bn in (m.bn1, m.bn2):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return m


def cnn_data(n=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 2, 4, 4, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (n,), generator=g))


def mlp_data(n=9, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def unflatten(model, w):
    out, i = {}, 0
    for k, p in model.named_parameters():
        out[k] = w[i:i + p.numel()].view_as(p)
        i += p.numel()
    return out


def forward_eval(model, w, x):
    """Reference eval-mode forward (running statistics, dropout off) via functional_call."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        return functional_call(model, {**unflatten(model, w), **dict(model.named_buffers())}, (x,))
    finally:
        for m, f in flags.items():
            m.training = f


def forward_frozen_cnn(model, w, x):
    """Reference frozen-train forward written out by hand: batch statistics of each BN
    input computed from the same weights but detached (treated as constants)."""
    p = unflatten(model, w)

    def bn(h, name, eps):
        mean = h.mean(dim=(0, 2, 3)).detach()
        var = h.var(dim=(0, 2, 3), unbiased=False).detach()
        hn = (h - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps)
        return hn * p[f"{name}.weight"][None, :, None, None] + p[f"{name}.bias"][None, :, None, None]

    h = torch.nn.functional.conv2d(x, p["c1.weight"], p["c1.bias"], padding=1)
    h = torch.tanh(bn(h, "bn1", model.bn1.eps))
    h = torch.nn.functional.conv2d(h, p["c2.weight"], None, padding=1)
    h = torch.relu(bn(h, "bn2", model.bn2.eps))
    return torch.nn.functional.linear(h.flatten(1), p["fc.weight"], p["fc.bias"])


def dense_hessian(model, forward, x, y, loss=CE):
    return hessian(lambda w: loss(forward(model, w, x), y))(flat_params(model))


def dense_ggn(model, forward, x, y, loss=CE):
    w = flat_params(model)
    out = forward(model, w, x)
    J = jacrev(lambda w: forward(model, w, x))(w).reshape(out.numel(), -1)
    H_out = hessian(lambda o: loss(o, y))(out.detach()).reshape(out.numel(), out.numel())
    return J.T @ H_out @ J


def densify(op):
    P = op.shape[0]
    return torch.stack([op @ e for e in torch.eye(P, dtype=op.dtype)], dim=1)


def rel(a, b):
    return float((a - b).norm() / b.norm())


class PoolNet(nn.Module):
    """ReLU and max pooling in every form the double-backward product rewrites:
    ``nn.ReLU(inplace=True)``, ``F.relu``, ``torch.relu``, ``Tensor.relu``, non-overlapping pooling and
    overlapping, padded, ceil-mode pooling (an input can be the maximum of two windows)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 3 * 3, 3)

    def forward(self, x):
        h = self.c1(x)
        self.act(h)  # relies on the in-place side effect: h itself must change
        h = self.pool(h)
        h = torch.nn.functional.relu(self.c2(h))
        h = torch.nn.functional.max_pool2d(h, 3, stride=2, padding=1, ceil_mode=True)
        h = torch.relu(h - 0.1) + (h + 0.1).relu()
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("method", ["forward-over-reverse", "double-backward"])
def test_hvp_relu_maxpool_matches_dense_hessian(method):
    torch.manual_seed(3)
    model = PoolNet().double()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 2, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=g)
    H = dense_hessian(model, forward_eval, x, y)
    # The ReLU/pooling patterns must matter: with every unit off the test would be vacuous.
    assert H.abs().max() > 1e-3
    assert rel(densify(HessianOperator(model, CE, (x, y), method=method)), H) < RTOL


class ConvNet(nn.Module):
    """Every convolution form the HVPs rewrite (a convolution of data; BatchNorm folded into
    the convolution before it) and the forms they must leave alone."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, stride=2, padding=1, padding_mode="reflect")  # of data
        self.bn1 = nn.BatchNorm2d(4)  # folded, into a convolution with a bias
        self.c2 = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, bias=False)
        self.bn2 = nn.BatchNorm2d(4)  # folded; its input is also used elsewhere
        self.c3 = nn.Conv2d(4, 3, 1)
        self.bn3 = nn.BatchNorm2d(3)  # not folded: its input is changed in place first
        self.c4 = nn.Conv2d(3, 3, 3, padding="same")
        self.bn4 = nn.BatchNorm2d(3, affine=False)  # string padding: not rewritten
        self.d1 = nn.Conv1d(2, 3, 3, stride=2, bias=False)  # 1-d, of data
        self.bn5 = nn.BatchNorm1d(3)
        self.fc = nn.Linear(3 * 4 + 3 * 3, 3)

    def forward(self, x):
        h = torch.tanh(self.bn1(self.c1(x)))
        h2 = self.c2(h)
        h = torch.tanh(self.bn2(h2) + 0.5 * h2)
        h3 = self.c3(h)
        h3.mul_(1.5)
        h = torch.tanh(self.bn3(h3))
        h = torch.relu(self.bn4(self.c4(h)))
        s = torch.tanh(self.bn5(self.d1(x[:, :, 0, :])))
        return self.fc(torch.cat([h.mean(dim=3).flatten(1), s.flatten(1)], dim=1))


@pytest.mark.parametrize("bn_mode", ["eval", "frozen-train"])
@pytest.mark.parametrize("method", ["forward-over-reverse", "double-backward"])
def test_hvp_convolution_forms_match_dense_hessian(method, bn_mode):
    torch.manual_seed(5)
    model = ConvNet().double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(5, 2, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=g)
    reference = copy.deepcopy(model)
    if bn_mode == "frozen-train":
        # The batch's own statistics, measured by hooks, become constant running statistics.
        def record(m, args):
            h = args[0]
            dims = [0] + list(range(2, h.ndim))
            m.running_mean.copy_(h.mean(dim=dims))
            m.running_var.copy_(h.var(dim=dims, unbiased=False))
        hooks = [m.register_forward_pre_hook(record) for m in reference.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        with torch.no_grad():
            reference.eval()(x)
        for h in hooks:
            h.remove()
    H = dense_hessian(reference, forward_eval, x, y)
    op = HessianOperator(model, CE, (x, y), method=method, bn_mode=bn_mode)
    assert rel(densify(op), H) < RTOL
    # Subsets: the rewrites must hold when only the BatchNorm parameters, only the
    # convolution weights, or a mix of them carry derivatives (the rest are constants).
    offsets, i = {}, 0
    for k, p in model.named_parameters():
        offsets[k] = range(i, i + p.numel())
        i += p.numel()
    for subset in (["bn1.weight", "bn2.bias", "bn5.weight"], ["c1.weight", "c2.weight", "d1.weight"],
                   ["c1.bias", "bn1.bias", "c3.weight", "bn3.weight", "fc.weight"]):
        idx = torch.tensor([j for k in subset for j in offsets[k]])
        sub = HessianOperator(model, CE, (x, y), params=subset, method=method, bn_mode=bn_mode)
        assert rel(densify(sub), H[idx][:, idx]) < RTOL, subset


@pytest.mark.parametrize("method", ["forward-over-reverse", "double-backward"])
def test_hvp_mlp_matches_dense_hessian(method):
    torch.manual_seed(0)
    model = mlp().double()
    x, y = mlp_data()
    H = dense_hessian(model, forward_eval, x, y)
    assert rel(densify(HessianOperator(model, nn.CrossEntropyLoss(), (x, y), method=method)), H) < RTOL


def test_ggn_mlp_matches_jacobian_ggn_and_is_psd():
    torch.manual_seed(0)
    model = mlp().double()
    x, y = mlp_data()
    G_ref = dense_ggn(model, forward_eval, x, y)
    G = densify(GGNOperator(model, nn.CrossEntropyLoss(), (x, y)))
    assert rel(G, G_ref) < RTOL
    # Cross-entropy is convex in the logits, so G is PSD up to rounding (relative 1e-12).
    assert torch.linalg.eigvalsh(G).min() > -1e-12 * torch.linalg.eigvalsh(G).max()


@pytest.mark.parametrize("method", ["forward-over-reverse", "double-backward"])
def test_hvp_cnn_batchnorm_eval_mode(method):
    model = make_cnn()
    x, y = cnn_data()
    H = dense_hessian(model, forward_eval, x, y)
    assert rel(densify(HessianOperator(model, nn.CrossEntropyLoss(), (x, y), method=method)), H) < RTOL


@pytest.mark.parametrize("method", ["forward-over-reverse", "double-backward"])
def test_hvp_cnn_batchnorm_frozen_train_mode(method):
    model = make_cnn()
    x, y = cnn_data()
    H = dense_hessian(model, forward_frozen_cnn, x, y)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), method=method, bn_mode="frozen-train")
    assert rel(densify(op), H) < RTOL
    # The frozen and eval Hessians genuinely differ here (different normalisations).
    assert rel(dense_hessian(model, forward_eval, x, y), H) > 1e-3


@pytest.mark.parametrize("bn_mode, forward", [("eval", forward_eval),
                                              ("frozen-train", forward_frozen_cnn)])
def test_ggn_cnn_batchnorm(bn_mode, forward):
    model = make_cnn()
    x, y = cnn_data()
    op = GGNOperator(model, nn.CrossEntropyLoss(), (x, y), bn_mode=bn_mode)
    assert rel(densify(op), dense_ggn(model, forward, x, y)) < RTOL


def test_batch_norm_statistics_are_train_mode_statistics():
    model = make_cnn()
    x, _ = cnn_data()
    tensors = {**{k: p.detach() for k, p in model.named_parameters()},
               **dict(model.named_buffers())}
    stats = batch_norm_statistics(model, tensors, x)
    h = model.c1(x)
    assert torch.allclose(stats["bn1.running_mean"], h.mean(dim=(0, 2, 3)), rtol=1e-12)
    assert torch.allclose(stats["bn1.running_var"], h.var(dim=(0, 2, 3), unbiased=False), rtol=1e-12)


def test_full_data_operator_weights_uneven_batches_by_size():
    model = make_cnn()
    x, y = cnn_data(n=12)
    loss = nn.CrossEntropyLoss()
    H_full = dense_hessian(model, forward_eval, x, y)  # mean over all 12 samples
    batches = [(x[:5], y[:5]), (x[5:10], y[5:10]), (x[10:], y[10:])]
    assert rel(densify(HessianOperator(model, loss, batches)), H_full) < RTOL
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    assert rel(densify(HessianOperator(model, loss, loader)), H_full) < RTOL
    G_full = dense_ggn(model, forward_eval, x, y)
    assert rel(densify(GGNOperator(model, loss, batches)), G_full) < RTOL
    # Equal weighting of the three batch Hessians (the bias this rule avoids) is wrong.
    equal = sum(dense_hessian(model, forward_eval, xb, yb) for xb, yb in batches) / 3
    assert rel(equal, H_full) > 1e-3


def test_difference_and_scalar_combinations():
    model = make_cnn()
    x, y = cnn_data(n=12)
    loss = nn.CrossEntropyLoss()
    full = HessianOperator(model, loss, (x, y))
    batch = HessianOperator(model, loss, (x[:4], y[:4]))
    eps = batch - full
    ref = dense_hessian(model, forward_eval, x[:4], y[:4]) - dense_hessian(model, forward_eval, x, y)
    assert rel(densify(eps), ref) < RTOL
    assert rel(densify(2.5 * full + (-full)), 1.5 * densify(full)) < RTOL
    with pytest.raises(ValueError, match="share shape"):
        full + MatrixOperator(torch.eye(3, dtype=torch.float64))


def test_to_scipy_and_numpy_vectors():
    torch.manual_seed(0)
    model = mlp().double()
    x, y = mlp_data()
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    v = np.random.default_rng(0).standard_normal(op.shape[0])
    ref = (op @ torch.from_numpy(v)).numpy()
    lin = op.to_scipy()
    assert lin.shape == op.shape and lin.dtype == np.float64
    np.testing.assert_allclose(lin @ v, ref, rtol=1e-13)
    np.testing.assert_allclose(op.matvec(v), ref, rtol=1e-13)
    np.testing.assert_allclose(op(v), ref, rtol=1e-13)
    # Blocks: SciPy's matmat, and the operator's own, column by column.
    V = np.random.default_rng(1).standard_normal((op.shape[0], 3))
    ref_block = np.stack([(op @ torch.from_numpy(c)).numpy() for c in V.T], axis=1)
    np.testing.assert_allclose(lin.matmat(V), ref_block, rtol=1e-13)
    np.testing.assert_allclose(lin @ V, ref_block, rtol=1e-13)
    np.testing.assert_allclose(op @ V, ref_block, rtol=1e-13)
    np.testing.assert_allclose(lin.T @ v, ref, rtol=1e-13)


def test_params_selection_gives_the_sub_block():
    torch.manual_seed(0)
    model = mlp().double()
    x, y = mlp_data()
    H = dense_hessian(model, forward_eval, x, y)
    last = [model[5].weight, model[5].bias]
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), params=last)
    k = sum(p.numel() for p in last)
    assert op.shape == (k, k)
    assert rel(densify(op), H[-k:, -k:]) < RTOL
    by_name = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), params=["5.weight", "5.bias"])
    assert rel(densify(by_name), H[-k:, -k:]) < RTOL


def test_float32_operator_of_a_float64_model_and_auto_method():
    model = make_cnn()
    x, y = cnn_data()
    H = dense_hessian(model, forward_eval, x, y)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), dtype=torch.float32)
    assert op.dtype == torch.float32 and op.method == "auto" and op.method_used is None
    # float32 rounding: ~1e-7 per operation through a few layers → 1e-4 is generous but
    # still 4 orders below an O(1) error.
    assert rel(densify(op).double(), H) < 1e-4
    assert op.method == "auto" and op.method_used in ("forward-over-reverse", "double-backward")


def test_model_state_unchanged_after_every_public_call():
    from rmtlr.curvature import (
        hessian_variance,
        hutchinson_trace,
        lanczos,
        slq_density,
        top_eigenpairs,
    )

    model = make_cnn()
    x, y = cnn_data(n=8)
    model.train()
    model.bn2.eval()  # a mixed state must survive too
    model(x.requires_grad_(False)).sum().backward()
    x = x.detach()
    before_flags = {n: m.training for n, m in model.named_modules()}
    before_buf = {k: b.clone() for k, b in model.named_buffers()}
    before_grad = {k: p.grad.clone() for k, p in model.named_parameters()}
    grad_objects = {k: p.grad for k, p in model.named_parameters()}
    before_par = {k: p.detach().clone() for k, p in model.named_parameters()}
    loss = nn.CrossEntropyLoss()
    ops = [HessianOperator(model, loss, (x, y), method=m, bn_mode=b)
           for m in ("forward-over-reverse", "double-backward") for b in ("eval", "frozen-train")]
    ops += [GGNOperator(model, loss, [(x[:5], y[:5]), (x[5:], y[5:])], bn_mode="frozen-train")]
    v = torch.randn(ops[0].shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    calls = [lambda op=op: op @ v for op in ops]
    calls += [lambda: ops[0].gradient(), lambda: lanczos(ops[1], 5, seed=0),
              lambda: top_eigenpairs(ops[2], 2, num_steps=6), lambda: slq_density(ops[3], 4, 2),
              lambda: hutchinson_trace(ops[4], 2), lambda: hessian_variance(ops[0], 2),
              lambda: hessian_variance(ops[4], 2, per_sample=False)]
    for call in calls:
        call()
        assert {n: m.training for n, m in model.named_modules()} == before_flags
        for k, b in model.named_buffers():
            assert torch.equal(b, before_buf[k]), k
        for k, p in model.named_parameters():
            assert torch.equal(p.grad, before_grad[k]), k
            # the same tensor object: a view into a flat gradient buffer must stay one
            assert p.grad is grad_objects[k], k
            assert torch.equal(p.detach(), before_par[k]), k


def test_bad_input_raises_clear_errors():
    torch.manual_seed(0)
    model = mlp().double()
    x, y = mlp_data()
    loss = nn.CrossEntropyLoss()
    op = HessianOperator(model, loss, (x, y))
    P = op.shape[0]
    with pytest.raises(ValueError, match="shape"):
        op @ torch.zeros(P + 1, dtype=torch.float64)
    with pytest.raises(TypeError, match="dtype"):
        op @ torch.zeros(P, dtype=torch.float32)
    with pytest.raises(ValueError, match="device"):
        op @ torch.zeros(P, dtype=torch.float64, device="meta")
    with pytest.raises(TypeError, match="torch.Tensor"):
        op @ [0.0] * P
    bad = torch.zeros(P, dtype=torch.float64)
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        op @ bad
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, loss, [(x[:0], y[:0])]) @ bad.nan_to_num()
    with pytest.raises(TypeError, match="re-iterable"):
        HessianOperator(model, loss, ((x[i:i + 3], y[i:i + 3]) for i in (0, 3, 6)))
    triples = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y, torch.arange(len(y))), batch_size=4)
    with pytest.raises(ValueError, match=r"\(x, y\) pair"):
        HessianOperator(model, loss, triples) @ bad.nan_to_num()
    with pytest.raises(ValueError, match="scalar"):
        HessianOperator(model, nn.CrossEntropyLoss(reduction="none"), (x, y)) @ bad.nan_to_num()
    frozen = mlp().double().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        HessianOperator(frozen, loss, (x, y))
    with pytest.raises(ValueError, match="bn_mode"):
        HessianOperator(model, loss, (x, y), bn_mode="train")
    with pytest.raises(ValueError, match="method"):
        HessianOperator(model, loss, (x, y), method="finite-differences")
    with pytest.raises(TypeError, match="data"):
        HessianOperator(model, loss, 3)
    with pytest.raises(ValueError, match="params"):
        HessianOperator(model, loss, (x, y), params=["nope"])
    nan_model = mlp().double()
    with torch.no_grad():
        nan_model[0].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        HessianOperator(nan_model, loss, (x, y))
    x_inf = x.clone()
    x_inf[0, 0] = float("inf")
    with pytest.raises(ValueError, match="not finite"):
        HessianOperator(model, loss, (x_inf, y)) @ torch.ones(P, dtype=torch.float64)
    with pytest.raises(ValueError, match="at least 2 samples"):
        HessianOperator(make_cnn(), loss, cnn_data(n=1), bn_mode="frozen-train") @ torch.zeros(
            HessianOperator(make_cnn(), loss, cnn_data(n=1)).shape[0], dtype=torch.float64)


def test_operator_is_a_snapshot_and_cached_graph_matches_uncached():
    model = make_cnn()
    x, y = cnn_data()
    loss = nn.CrossEntropyLoss()
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(3))
    cached = HessianOperator(model, loss, (x, y), method="double-backward")
    plain = HessianOperator(model, loss, (x, y), method="double-backward", cache_graph=False)
    first = cached @ v
    assert cached.products._graph is not None and plain.products._graph is None
    with torch.no_grad():  # training the model afterwards must not change either operator
        for p in model.parameters():
            p.mul_(1.5)
    assert torch.allclose(cached @ v, first, rtol=1e-13, atol=0)
    assert torch.allclose(plain @ v, first, rtol=1e-12, atol=1e-15)


def test_one_batch_convenience_functions():
    from rmtlr.curvature import ggn_vector_product, hessian_vector_product

    model = make_cnn()
    x, y = cnn_data()
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(5))
    H = dense_hessian(model, forward_frozen_cnn, x, y)
    hv = hessian_vector_product(model, CE, x, y, v, method="double-backward",
                                bn_mode="frozen-train")
    assert rel(hv, H @ v) < RTOL
    G = dense_ggn(model, forward_eval, x, y)
    assert rel(ggn_vector_product(model, CE, x, y, v), G @ v) < RTOL



@pytest.mark.parametrize("method", ["auto", "double-backward"])
def test_per_sample_products_do_not_leak_into_the_cached_graph(method):
    """hessian_variance's per-sample products come first here; with the default graph
    cache the operator must still multiply by the whole-batch Hessian afterwards."""
    from rmtlr.curvature import hessian_variance

    torch.manual_seed(0)  # a new model object: 'auto' measures here
    model = mlp().double()
    x, y = mlp_data()
    op = HessianOperator(model, CE, (x, y), method=method)
    hessian_variance(op, num_vectors=2)
    H = dense_hessian(model, forward_eval, x, y)
    assert rel(densify(op), H) < RTOL


def mse_model():
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()


@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.HuberLoss(delta=0.5)], ids=["mse", "huber"])
def test_regression_losses_hessian_auto_and_ggn(loss):
    """torch 2.14 has no forward-mode derivative of mse_loss's/huber_loss's backward:
    'auto' must fall back to double-backward, and the GGN must not need it."""
    model = mse_model()
    g = torch.Generator().manual_seed(6)
    x = torch.randn(9, 4, generator=g, dtype=torch.float64)
    y = torch.randn(9, 2, generator=g, dtype=torch.float64)
    H = dense_hessian(model, forward_eval, x, y, loss=loss)
    assert rel(densify(HessianOperator(model, loss, (x, y))), H) < RTOL
    G = dense_ggn(model, forward_eval, x, y, loss=loss)
    assert rel(densify(GGNOperator(model, loss, (x, y))), G) < RTOL


def test_frozen_train_statistics_are_measured_with_dropout_off():
    """The products run with dropout off, so the frozen batch statistics must be the
    dropout-off ones: the operator is a fixed matrix, equal to the one of the same network
    without the dropout layer."""
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(4, 5), nn.Dropout(0.5), nn.BatchNorm1d(5), nn.Tanh(),
                          nn.Linear(5, 3)).double()
    x, y = mlp_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    plain = copy.deepcopy(model)
    plain[1] = nn.Identity()
    kw = {"method": "double-backward", "bn_mode": "frozen-train"}
    A = densify(HessianOperator(model, CE, loader, **kw))
    assert rel(A, densify(HessianOperator(model, CE, loader, **kw))) == 0.0
    assert rel(A, densify(HessianOperator(plain, CE, loader, **kw))) < RTOL


def test_frozen_train_rejects_a_batchnorm_applied_twice():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bn, self.b = nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)

        def forward(self, x):
            return self.b(self.bn(self.a(torch.tanh(self.bn(self.a(x))))))

    model = Shared().double()
    x, y = mlp_data()
    op = HessianOperator(model, CE, (x, y), bn_mode="frozen-train")
    with pytest.raises(ValueError, match="'bn' is applied more than once"):
        op @ torch.ones(op.shape[0], dtype=torch.float64)


def test_duplicate_params_count_once():
    torch.manual_seed(0)
    model = mlp().double()
    x, y = mlp_data()
    once = HessianOperator(model, CE, (x, y), params=["0.weight"], method="double-backward")
    twice = HessianOperator(model, CE, (x, y), params=["0.weight", model[0].weight],
                            method="double-backward")
    assert twice.shape == once.shape == (24, 24)
    assert rel(densify(twice), densify(once)) == 0.0


def test_loss_module_tensors_follow_the_operator_dtype():
    """A float32 model and CrossEntropyLoss(weight=float32) with dtype=float64: the loss's
    class weights are converted on a copy (the caller's loss module is unchanged)."""
    torch.manual_seed(0)
    model = mlp()
    x, y = mlp_data()
    loss = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]))
    x = x.float()
    op = HessianOperator(model, loss, (x, y), dtype=torch.float64)
    ref = dense_hessian(model.double(), forward_eval, x.double(), y,
                        loss=nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]).double()))
    assert rel(densify(op), ref) < RTOL
    assert loss.weight.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_fast_path_agrees_with_elementwise_test(dtype):
    from rmtlr.curvature.base import all_finite
    big = torch.finfo(dtype).max / 4
    cases = [torch.ones(7, dtype=dtype), torch.zeros(0, dtype=dtype),
             torch.full((10,), big, dtype=dtype)]  # finite entries whose sum overflows
    for bad in (float("nan"), float("inf"), -float("inf")):
        t = torch.ones(7, dtype=dtype)
        t[3] = bad
        cases.append(t)
    cases.append(torch.tensor([float("inf"), -float("inf"), 1.0], dtype=dtype))
    for t in cases:
        assert all_finite(t) == bool(torch.isfinite(t).all()), t


class _Images(torch.utils.data.Dataset):
    """Six float64 images; ``augment`` adds a random flip, as a training transform would."""

    def __init__(self, augment=False):
        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
        self.y = torch.randint(0, 3, (6,), generator=g)
        self.augment = augment

    def __len__(self):
        return 6

    def __getitem__(self, i):
        x = self.x[i]
        if self.augment and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def test_loader_that_changes_between_products_is_refused():
    from torch.utils.data import DataLoader
    model = make_cnn()
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    fixed = HessianOperator(model, CE, DataLoader(_Images(), batch_size=4))
    ref = fixed @ v
    assert torch.equal(fixed @ v, ref)  # a deterministic loader passes every time
    # Eval mode: shuffling changes only the order of the samples, not the matrix.
    torch.manual_seed(0)
    shuffled = HessianOperator(model, CE, DataLoader(_Images(), batch_size=4, shuffle=True))
    for _ in range(3):
        assert rel(shuffled @ v, ref) < 1e-12
    # Random augmentation changes the matrix: refused at the first product that differs
    # (a flip keeps each image's sum, so the check must see more than sums).
    torch.manual_seed(0)
    augmented = HessianOperator(model, CE, DataLoader(_Images(augment=True), batch_size=4))
    with pytest.raises(ValueError, match="data changed between two passes.*augmentation"):
        for _ in range(10):
            augmented @ v
    # Shuffling with drop_last leaves out other samples each pass: another matrix.
    torch.manual_seed(0)
    dropping = HessianOperator(model, CE, DataLoader(_Images(), batch_size=4, shuffle=True,
                                                     drop_last=True))
    with pytest.raises(ValueError, match="drop_last=True"):
        for _ in range(10):
            dropping @ v
    # frozen-train: each batch's statistics are part of the function, so shuffling is refused.
    torch.manual_seed(0)
    frozen = HessianOperator(model, CE, DataLoader(_Images(), batch_size=4, shuffle=True),
                             bn_mode="frozen-train")
    with pytest.raises(ValueError, match="shuffling loader.*shuffle=False"):
        for _ in range(10):
            frozen @ v
    torch.manual_seed(0)
    frozen_fixed = HessianOperator(model, CE, DataLoader(_Images(), batch_size=4),
                                   bn_mode="frozen-train")
    first = frozen_fixed @ v
    assert torch.equal(frozen_fixed @ v, first)
