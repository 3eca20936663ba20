"""Parameter counts against published figures, shapes, and bad-name errors."""

import pytest
import torch

from rmtlr.models import MODEL_NAMES, build, count_parameters


def test_vgg16_no_bn_cifar100_matches_paper():
    # Granziol et al. (2022) quote P = 15,291,300 for VGG-16 without BN on CIFAR-100.
    assert count_parameters(build("vgg16", 100)) == 15_291_300


def test_reduced_vgg16_keeps_the_topology():
    full, small = build("vgg16", 10), build("vgg16", 10, width=1 / 8)
    assert count_parameters(small) == 239_538
    kinds = [type(m).__name__ for m in full.modules()]
    assert kinds == [type(m).__name__ for m in small.modules()]  # 13 convs, 5 pools, 3 linears
    convs = [m.out_channels for m in small.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64]
    assert small(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


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


# Small settings for the names that take architecture arguments; the others are built at
# the paper's size.
_SMALL = {"wrn": {"depth": 10, "width": 1}, "preresnet": {"depth": 8},
          "mlp": {"in_dim": 3 * 32 * 32, "hidden": 8}, "small_cnn": {"width": 4}}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_advertised_name_builds_and_runs(name):
    # Before, this test only checked that some names were in MODEL_NAMES, so a name whose
    # builder was broken would have passed.
    torch.manual_seed(0)
    model = build(name, 3, **_SMALL.get(name, {})).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 3) and torch.isfinite(out).all()
    assert count_parameters(model) > 0


def test_paper_names_are_offered():
    assert {"vgg16", "vgg16_bn", "wrn28_10", "preresnet110", "mlp", "small_cnn"} <= set(MODEL_NAMES)


@pytest.mark.parametrize(
    "args, kw, error, match",
    [
        (("mlp", 10.7), {}, ValueError, "num_classes must be an integer >= 1, got 10.7"),
        (("mlp", "10"), {}, TypeError, "num_classes must be an integer"),
        (("mlp", True), {}, TypeError, "num_classes must be an integer"),
        ((3, 10), {}, TypeError, "name must be a string"),
        (("mlp", 10), {"hidden": 2.5}, ValueError, "hidden must be an integer >= 1"),
        (("mlp", 10), {"depth": 0}, ValueError, "depth must be an integer >= 1"),
        (("small_cnn", 10), {"width": "8"}, TypeError, "width must be an integer"),
        (("wrn", 10), {"width": 1.5}, ValueError, "width must be an integer >= 1"),
        (("vgg16", 10), {"dropout": 1.5}, ValueError, "dropout must be a finite number in \\[0, 1\\)"),
        (("vgg16", 10), {"dropout": "0.5"}, TypeError, "dropout"),
        (("vgg16", 10), {"width": 0}, ValueError, "width must be a finite number in \\(0, 1\\]"),
        (("vgg16", 10), {"width": 1 / 128}, ValueError, "64·width >= 1"),
        (("vgg16", 10), {"width": "1/8"}, TypeError, "width must be a real number"),
        (("wrn28_10", 10), {"depth": 16}, TypeError, "wrn28_10 does not take depth.*fixes"),
        (("mlp", 10), {"widht": 4}, TypeError, "mlp does not take widht; it takes in_dim"),
    ],
)
def test_bad_build_arguments_are_named(args, kw, error, match):
    # Before, build('mlp', 10.7) silently built a 10-class network (int() truncated).
    with pytest.raises(error, match=match):
        build(*args, **kw)


def test_whole_number_floats_are_accepted_as_counts():
    # Configurations round-trip through JSON, where 10 may come back as 10.0.
    assert build("mlp", 10.0, hidden=8.0).net[-1].out_features == 10


def test_count_parameters_needs_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        count_parameters([torch.zeros(3)])
