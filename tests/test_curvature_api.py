"""The operator API beyond single products: flat vectors ↔ named parameters, mapping
(Hugging Face-style) inputs with ``batch_size_fn``, blocks of vectors (``matmat``), SciPy's
conventions (``T``, ``__call__``), and arguments refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from rmtlr.curvature import (
    GGNOperator,
    HessianOperator,
    MatrixOperator,
    hessian_variance,
    params_to_vector,
    top_eigenpairs,
    vector_to_params,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")

CE = nn.CrossEntropyLoss()


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def batch(n=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 4, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (n,), generator=g))


def densify(op):
    return op @ torch.eye(op.shape[0], dtype=op.dtype)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_params_vector_round_trip_and_layer_map():
    model = mlp()
    w = params_to_vector(model)
    assert w.shape == (sum(p.numel() for p in model.parameters()),) and not w.requires_grad
    back = vector_to_params(w, model)
    assert list(back) == [k for k, _ in model.named_parameters()]
    for k, p in model.named_parameters():
        assert torch.equal(back[k], p.detach())
    assert torch.equal(params_to_vector(back), w)
    # Mapping of names to shapes, and to tensors, give the same split; a P×k block keeps
    # its columns.
    shapes = {k: tuple(p.shape) for k, p in model.named_parameters()}
    V = torch.stack([w, 2 * w], dim=1)
    blocks = vector_to_params(V, shapes)
    assert blocks["2.weight"].shape == (3, 5, 2)
    assert torch.equal(blocks["2.weight"][..., 1], 2 * model[2].weight.detach())
    # A frozen parameter is not part of the model's vector (as for the operators).
    model[0].bias.requires_grad_(False)
    assert "0.bias" not in vector_to_params(params_to_vector(model), model)
    with pytest.raises(ValueError, match="length"):
        vector_to_params(w, model)
    with pytest.raises(ValueError, match="at least one"):
        params_to_vector([])


def test_operator_eigenvector_maps_to_its_layer():
    """Curvature in the last layer only (params=...): the operator's own map names it."""
    model = mlp()
    x, y = batch()
    op = HessianOperator(model, CE, (x, y), params=["2.weight", "2.bias"])
    res = top_eigenpairs(op, k=1, num_steps=op.shape[0], seed=0)
    parts = op.vector_to_params(res.vectors[:, 0])
    assert {k: tuple(t.shape) for k, t in parts.items()} == {"2.weight": (3, 5), "2.bias": (3,)}
    assert abs(sum(float(t.square().sum()) for t in parts.values()) - 1) < 1e-10
    # Full model: the top eigenvector of the whole Hessian, split by layer, is the same
    # vector (the split is only a reshaping).
    full = HessianOperator(model, CE, (x, y))
    top = top_eigenpairs(full, k=1, num_steps=full.shape[0], seed=0).vectors[:, 0]
    assert torch.equal(params_to_vector(full.vector_to_params(top)), top)


class DictNet(nn.Module):
    """Takes a mapping, as a Hugging Face model wrapped to return its logits would."""

    def __init__(self, bn=False):
        super().__init__()
        self.a, self.b = nn.Linear(4, 5), nn.Linear(2, 5)
        self.bn = nn.BatchNorm1d(5) if bn else nn.Identity()
        self.head = nn.Linear(5, 3)

    def forward(self, inputs):
        if inputs["mask"].is_floating_point():
            raise TypeError("integer inputs must stay integers")
        h = torch.tanh(self.bn(self.a(inputs["features"]) + self.b(inputs["extra"])))
        return self.head(h * inputs["mask"][:, None])


class Packed(nn.Module):
    """The same network taking one tensor [features, extra, mask]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, t):
        return self.net({"features": t[:, :4], "extra": t[:, 4:6], "mask": t[:, 6].long()})


def dict_data(n=10, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = {"features": torch.randn(n, 4, generator=g, dtype=torch.float64),
         "extra": torch.randn(n, 2, generator=g, dtype=torch.float64),
         "mask": torch.randint(1, 3, (n,), generator=g)}  # integer: must stay integer
    return x, torch.randint(0, 3, (n,), generator=g)


class _DictDataset(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {k: t[i] for k, t in self.x.items()}, self.y[i]


def test_mapping_inputs_with_batch_size_fn():
    torch.manual_seed(4)
    model = DictNet().double()
    x, y = dict_data()
    size = lambda inputs: inputs["features"].shape[0]
    w = params_to_vector(model)

    def loss(w):
        return CE(functional_call(model, vector_to_params(w, model), (x,)), y)

    H = hessian(loss)(w)
    one = HessianOperator(model, CE, (x, y), batch_size_fn=size)
    assert rel(densify(one), H) < 1e-10
    # Uneven batches from a DataLoader collating mappings: weighted by batch_size_fn.
    loader = torch.utils.data.DataLoader(_DictDataset(x, y), batch_size=4)
    many = HessianOperator(model, CE, loader, batch_size_fn=size, method="double-backward")
    assert rel(densify(many), H) < 1e-10
    assert rel(densify(GGNOperator(model, CE, loader, batch_size_fn=size)),
               densify(GGNOperator(model, CE, (x, y), batch_size_fn=size))) < 1e-10
    # Per-sample units slice every tensor of the mapping.
    var = hessian_variance(one, 2, seed=0)
    assert var.num_units == 10 and var.num_samples == 10
    with pytest.raises(ValueError, match="batch_size_fn"):
        HessianOperator(model, CE, (x, y))
    # BatchNorm with each batch's own statistics: the same operator as for one packed tensor.
    torch.manual_seed(6)
    bn_model = DictNet(bn=True).double()
    packed = torch.cat([x["features"], x["extra"], x["mask"][:, None].double()], dim=1)
    ref = HessianOperator(Packed(bn_model), CE,
                          torch.utils.data.DataLoader(torch.utils.data.TensorDataset(packed, y),
                                                      batch_size=4), bn_mode="frozen-train")
    got = HessianOperator(bn_model, CE, loader, batch_size_fn=size, bn_mode="frozen-train")
    assert rel(densify(got), densify(ref)) < 1e-10
    with pytest.raises(ValueError, match="non-negative int"):
        HessianOperator(model, CE, (x, y), batch_size_fn=lambda inputs: 2.5)


@pytest.mark.parametrize("kind", ["forward-over-reverse", "double-backward", "ggn"])
def test_matmat_equals_column_products(kind):
    model = mlp()
    x, y = batch()
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    for data in ((x, y), batches):  # one batch uses the cached graph, two do not
        op = (GGNOperator(model, CE, data) if kind == "ggn"
              else HessianOperator(model, CE, data, method=kind))
        V = torch.randn(op.shape[0], 3, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(5))
        cols = torch.stack([op @ V[:, i] for i in range(3)], dim=1)
        assert rel(op.matmat(V), cols) < 1e-12
        assert rel(op @ V, cols) < 1e-12 and rel(op(V), cols) < 1e-12
        eps = op - 0.5 * op
        assert rel(eps @ V, 0.5 * cols) < 1e-12


def test_scipy_conventions_and_numpy_blocks():
    A = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    op = MatrixOperator(A)
    eps = op - op
    assert op.T is op and eps.T is eps
    v = torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert torch.equal(op(v), A @ v) and torch.equal(op.T @ v, A @ v)
    Vn = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(op(Vn), A.numpy())
    lin = op.to_scipy()
    np.testing.assert_array_equal(lin.matmat(Vn), A.numpy())
    np.testing.assert_array_equal(lin.T @ Vn[:, 0], A.numpy()[:, 0])
    with pytest.raises(ValueError, match=r"shape \(2, k\)"):
        op.matmat(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        op.matvec(np.zeros((2, 1)))  # a column vector is a block: use matmat


def test_arguments_refused_by_name():
    model = mlp()
    x, y = batch()
    with pytest.raises(TypeError, match="data must be"):
        HessianOperator(model, CE, "abc")
    with pytest.raises(TypeError, match="data must be"):
        HessianOperator(model, CE, {"x": x, "y": y})
    for device in ("bogus", "meta"):
        with pytest.raises(ValueError, match="device"):
            HessianOperator(model, CE, (x, y), device=device)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            HessianOperator(model, CE, (x, y), device="cuda")
    with pytest.raises(TypeError, match="keyword|positional"):
        HessianOperator(model, CE, (x, y), None, "double-backward")  # params, method
    with pytest.raises(TypeError, match="floating"):
        HessianOperator(model, CE, (x, y), dtype=torch.int64)
    with pytest.raises(TypeError, match="single one"):
        HessianOperator(model, CE, (x, y), params="0.weight")
