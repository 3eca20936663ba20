"""Profiles: selection by RMTLR_PROFILE, the CUDA-dependent default, pick(), errors."""

import warnings

import pytest
import torch

from rmtlr import profiles
from rmtlr.profiles import Profile, ProfileWarning, get_profile


@pytest.fixture
def cpu_only(monkeypatch):
    """A machine with neither CUDA nor MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine that reports one CUDA device (nothing is run on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_env_selects_profile(monkeypatch, fake_cuda):
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    assert get_profile().name == "full"
    monkeypatch.setenv("RMTLR_PROFILE", "Quick ")
    assert get_profile().name == "quick"


def test_default_is_gpu_only_with_cuda_and_full_is_opt_in(monkeypatch, cpu_only):
    # Before, a Colab GPU runtime defaulted to 'full' (GPU-days per heavy chapter).
    monkeypatch.delenv("RMTLR_PROFILE", raising=False)
    assert get_profile().name == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "gpu"
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    assert get_profile().name == "full"


def test_full_on_a_cpu_only_host_warns(monkeypatch, cpu_only):
    # Before, RMTLR_PROFILE=full on a laptop silently started paper-scale runs on the CPU.
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    with pytest.warns(ProfileWarning, match="RMTLR_PROFILE=full .*no GPU.*RMTLR_PROFILE=quick"):
        prof = get_profile()
    assert prof.name == "full" and prof.device.type == "cpu"
    with pytest.warns(ProfileWarning, match="profile 'full'"):
        get_profile("full")
    with pytest.warns(ProfileWarning, match="profile 'gpu' .*30 GPU-minutes.*no GPU"):
        get_profile("gpu")


def test_full_with_a_gpu_or_an_explicit_device_does_not_warn(monkeypatch, cpu_only):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_profile("full", device="cpu").device == torch.device("cpu")
        assert get_profile("quick").name == "quick"
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert get_profile("full").device == torch.device("cuda")


def test_quick_runs_on_cpu_offline(fake_cuda):
    prof = get_profile("quick")
    assert prof.device.type == "cpu" and prof.offline  # CPU even where CUDA is present
    assert prof.pick(quick=1, full=2) == 1
    assert get_profile("full").pick(quick=1, gpu=3, full=2) == 2
    assert min(prof.batch_sizes) == 8 and max(prof.batch_sizes) == 1024


def test_pick_gives_the_gpu_value_or_falls_back_to_full(fake_cuda):
    gpu = get_profile("gpu")
    assert gpu.name == "gpu" and gpu.device.type == "cuda"
    assert gpu.pick(quick=1, gpu=3, full=2) == 3
    assert gpu.pick(quick=1, full=2) == 2  # light chapters: the paper's setting
    assert gpu.pick(quick=1, gpu=None, full=2) is None  # None is a value, not "omitted"


def test_describe_names_profile_and_device():
    line = get_profile("quick").describe()
    assert line.startswith("rmtlr profile: quick | device: cpu")
    assert torch.__version__ in line


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="quick.*gpu.*full"):
        get_profile("medium")
    with pytest.raises(TypeError, match="profile name must be a string"):
        get_profile(1)


def test_device_override(fake_cuda):
    # Before, this test compared get_profile("quick", device="cpu") with the CPU, which is
    # also the quick profile's default, and checked that default_device() returned one of
    # the three device types it can return at all: neither could fail. Here the override
    # must beat a default that differs from it.
    assert profiles.default_device() == torch.device("cuda")
    assert get_profile("full").device == torch.device("cuda")
    assert get_profile("full", device="cpu").device == torch.device("cpu")
    assert get_profile("quick", device="cuda:0").device == torch.device("cuda:0")


def test_default_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cpu_only):
    assert profiles.default_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert profiles.default_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.default_device() == torch.device("cuda")


@pytest.mark.parametrize(
    "device, match",
    [("bogus", "not a device name torch knows"), ("cuda", "CUDA is not available"),
     ("cuda:0", "CUDA is not available"), ("mps", "needs Apple MPS"),
     ("meta", "cannot run")],
)
def test_unusable_devices_are_refused(cpu_only, device, match):
    # Before: 'bogus' raised torch's RuntimeError, 'cuda' without CUDA and 'meta' were
    # accepted and failed later, deep inside a computation.
    for name in ("quick", "gpu", "full"):
        with pytest.raises(ValueError, match=match):
            get_profile(name, device=device)
    with pytest.raises(ValueError, match=f"device '{device}' is not usable here: .*{match}"):
        profiles.resolve_device(device)


def test_missing_gpu_index_is_refused(fake_cuda):
    with pytest.raises(ValueError, match="1 CUDA device"):
        get_profile("quick", device="cuda:3")
    with pytest.raises(TypeError, match="device"):
        get_profile("quick", device=0)


@pytest.mark.parametrize(
    "kw, error",
    [({"name": "medium"}, ValueError), ({"lanczos_steps": 2.5}, ValueError),
     ({"slq_vectors": 0}, ValueError), ({"batch_sizes": (8, 16.5)}, ValueError),
     ({"batch_sizes": ()}, TypeError), ({"seeds": "1"}, TypeError),
     ({"offline": "yes"}, TypeError), ({"device": "cpu"}, TypeError)],
)
def test_hand_made_profiles_are_checked(kw, error):
    with pytest.raises(error):
        Profile(**{"name": "quick", "device": torch.device("cpu"), **kw})


def test_resolve_device_names_the_argument_and_defaults_to_the_profile(cpu_only, monkeypatch):
    assert profiles.resolve_device("cpu") == torch.device("cpu")
    assert profiles.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert profiles.resolve_device(None, profile="quick") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device 'bogus' is not usable here"):
        profiles.resolve_device("bogus", argument="--device")
    with pytest.raises(TypeError, match="device must be a string .* got 0 \\(int\\)"):
        profiles.resolve_device(0)
    # A device the active profile would pick but this machine cannot use, named as such.
    monkeypatch.setattr(profiles, "default_device", lambda: torch.device("meta"))
    with pytest.raises(ValueError, match="the full profile's device 'meta' is not usable"):
        profiles.resolve_device(None, profile="full")


def test_resolve_device_warns_only_when_a_gpu_profile_picks_the_cpu(cpu_only, monkeypatch):
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    with pytest.warns(ProfileWarning, match="profile 'full' .*RMTLR_PROFILE=full.*hours to days.*on the CPU"):
        assert profiles.resolve_device(None) == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert profiles.resolve_device("cpu", profile="full") == torch.device("cpu")
        # A profile object already warned when it was made: not again.
        prof = Profile(name="full", device=torch.device("cpu"))
        assert profiles.resolve_device(None, profile=prof) == torch.device("cpu")


def test_hand_made_profile_stores_whole_floats_as_ints():
    prof = Profile(name="quick", device=torch.device("cpu"), lanczos_steps=40.0,
                   batch_sizes=(8.0, 16))
    assert prof.lanczos_steps == 40 and type(prof.lanczos_steps) is int
    assert prof.batch_sizes == (8, 16) and all(type(b) is int for b in prof.batch_sizes)
