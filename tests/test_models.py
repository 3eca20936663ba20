"""Parameter counts against published figures, shapes, and bad-name errors."""

import pytest
import torch

from rmtlr.models import MODEL_NAMES, build, count_parameters


def test_vgg16_no_bn_cifar100_matches_paper():
    # Granziol et al. (2022) quote P = 15,291,300 for VGG-16 without BN on CIFAR-100.
    assert count_parameters(build("vgg16", 100)) == 15_291_300


def test_vgg16_bn_adds_two_params_per_channel():
    # BatchNorm adds a scale and a shift per channel of the 13 convolutions.
    channels = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512
    assert count_parameters(build("vgg16_bn", 100)) == 15_291_300 + 2 * channels


def test_wrn28_10_matches_published_36_5M():
    # Zagoruyko & Komodakis (2016) report 36.5M for WRN-28-10; the figure is rounded to 0.1M.
    p = count_parameters(build("wrn28_10", 100))
    assert round(p / 1e6, 1) == 36.5


def test_preresnet110_matches_published_1_7M():
    # He et al. (2016) report 1.7M for the 110-layer (pre-activation) CIFAR ResNet.
    p = count_parameters(build("preresnet110", 10))
    assert round(p / 1e6, 1) == 1.7


def test_wrn_depth_width_arguments_scale_as_k_squared():
    # Convolution weights dominate and scale with width²: WRN-16-2 vs WRN-16-4 ≈ 4×.
    p2 = count_parameters(build("wrn", 10, depth=16, width=2))
    p4 = count_parameters(build("wrn", 10, depth=16, width=4))
    assert 3.8 < p4 / p2 < 4.0


@pytest.mark.parametrize("name,kw", [("vgg16", {}), ("vgg16_bn", {}),
                                     ("wrn", {"depth": 10, "width": 1}),
                                     ("preresnet", {"depth": 8}), ("small_cnn", {}),
                                     ("mlp", {"in_dim": 3 * 32 * 32})])
def test_forward_shape(name, kw):
    torch.manual_seed(0)
    out = build(name, 7, **kw)(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: .*vgg16"):
        build("resnet9000", 10)


@pytest.mark.parametrize("name,kw", [("wrn", {"depth": 27}), ("preresnet", {"depth": 111}),
                                     ("mlp", {"hidden": 0})])
def test_bad_architecture_arguments(name, kw):
    with pytest.raises(ValueError):
        build(name, 10, **kw)


def test_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        build("mlp", 0)


def test_names_are_all_buildable_at_small_size():
    assert {"vgg16", "vgg16_bn", "wrn28_10", "preresnet110", "mlp", "small_cnn"} <= set(MODEL_NAMES)
