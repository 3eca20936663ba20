"""Profiles: selection by RMTLR_PROFILE, the CUDA-dependent default, pick(), errors."""

import pytest
import torch

from rmtlr import profiles
from rmtlr.profiles import get_profile


def test_env_selects_profile(monkeypatch):
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    assert get_profile().name == "full"
    monkeypatch.setenv("RMTLR_PROFILE", "Quick ")
    assert get_profile().name == "quick"


def test_default_is_full_only_with_cuda(monkeypatch):
    monkeypatch.delenv("RMTLR_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "full"


def test_quick_runs_on_cpu_offline():
    prof = get_profile("quick")
    assert prof.device.type == "cpu" and prof.offline
    assert prof.pick(quick=1, full=2) == 1
    assert get_profile("full").pick(quick=1, full=2) == 2
    assert min(prof.batch_sizes) == 8 and max(prof.batch_sizes) == 1024


def test_describe_names_profile_and_device():
    line = get_profile("quick").describe()
    assert line.startswith("rmtlr profile: quick | device: cpu")
    assert torch.__version__ in line


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="quick.*full"):
        get_profile("medium")


def test_device_override():
    assert get_profile("quick", device="cpu").device == torch.device("cpu")
    assert profiles.default_device().type in {"cpu", "cuda", "mps"}
