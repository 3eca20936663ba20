"""Double-backward HVPs on the book's networks against forward-over-reverse (float64).

The double-backward product evaluates the network with rewrites (BatchNorm folded into
convolutions, data convolutions without an input gradient, ReLU and max-pooling patterns
as constants); forward-over-reverse uses none of them and is itself checked against dense
Hessians in test_curvature_operators.py. On the real architectures — residual shortcuts,
pre-activation blocks, dropout, BatchNorm after convolutions and after sums — the two must
agree to rounding.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rmtlr.curvature import HessianOperator
from rmtlr.models import build

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")


@pytest.mark.parametrize("name,kw", [("vgg16", {}), ("vgg16_bn", {}),
                                     ("wrn", {"depth": 10, "width": 1}),
                                     ("preresnet", {"depth": 8}), ("small_cnn", {})])
def test_double_backward_equals_forward_over_reverse_on_book_models(name, kw):
    torch.manual_seed(0)
    model = build(name, 5, **kw).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 32, 32, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (3,), generator=g)
    with torch.no_grad():  # running statistics away from (0, 1), as after training
        model.train()(x * 1.5 + 0.3)
    model.eval()
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    for bn_mode in ("eval", "frozen-train") if has_bn else ("eval",):
        ops = {m: HessianOperator(model, nn.CrossEntropyLoss(), (x, y), method=m,
                                  bn_mode=bn_mode)
               for m in ("forward-over-reverse", "double-backward")}
        v = torch.randn(ops["double-backward"].shape[0], generator=g, dtype=torch.float64)
        ref = ops["forward-over-reverse"] @ v
        got = ops["double-backward"] @ v
        assert float((got - ref).norm() / ref.norm()) < 1e-10, bn_mode
