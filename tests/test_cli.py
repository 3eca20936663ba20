"""The ``rmtlr`` command line: help texts, lr-rule tables, a tiny sweep, errors."""

import json

import pytest
import torch

from rmtlr.cli import main


@pytest.mark.parametrize("cmd,options", [
    ("sweep", ["--batch-sizes", "--lr-rule", "--optimizer", "--eps", "--schedule", "--results",
               "--seeds", "--momentum", "--weight-decay", "--model-kw", "--data-kw"]),
    ("spectrum", ["--batch-sizes", "--n-full", "--lanczos-steps", "--top-k", "--checkpoint"]),
    ("lr-rule", ["--alpha0", "--b0", "--lam1", "--params", "--sigma", "--delta"]),
])
def test_help_explains_every_option(cmd, options, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in options:
        assert opt in text


def test_lr_rule_table(capsys):
    assert main(["lr-rule", "sqrt", "--alpha0", "0.0004", "--b0", "128",
                 "--batch-sizes", "32,128,512"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()[1:]]
    assert [(int(b), float(v)) for b, v in rows] == [(32, 0.0002), (128, 0.0004), (512, 0.0008)]


def test_lr_rule_with_theory_columns_saturates_at_2_over_lambda1(capsys):
    # B = N: no batch noise, so Theorem 4's SGD bound is exactly 2/λ1 = 0.2.
    assert main(["lr-rule", "linear", "--alpha0", "0.1", "--batch-sizes", "1000", "--n", "1000",
                 "--lam1", "10", "--params", "1e6", "--sigma", "1e-3"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert float(row[2]) == pytest.approx(0.2)


def test_sweep_command_writes_and_resumes(tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    args = ["sweep", "--batch-sizes", "16,32", "--lr-rule", "linear:0.05:16", "--steps", "3",
            "--model-kw", '{"hidden": 8}', "--data-kw", '{"n": 256}', "--results", str(out),
            "--device", "cpu", "--profile", "quick"]
    assert main(args) == 0
    assert main(args) == 0  # second call finds both runs and trains nothing
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["config"]["batch_size"] for r in recs] == [16, 32]
    assert "offline stand-in" in capsys.readouterr().out


@pytest.mark.parametrize("args,msg", [
    (["sweep", "--batch-sizes", "512", "--lr-rule", "const:0.1", "--data-kw", '{"n": 256}',
      "--results", "R"], "batch sizes must be <= N = 256"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "cosine", "--data-kw", '{"n": 256}',
      "--results", "R"], "lr rule must be"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--model-kw", '{"bogus": 1}',
      "--results", "R"], "--model-kw {\"bogus\": 1} does not fit --model mlp"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--data-kw", '{"bogus": 1}',
      "--results", "R"], "--data-kw {\"bogus\": 1} does not fit --dataset gaussian_mixture"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--model", "small_cnn",
      "--results", "R"], "--model small_cnn does not take --dataset gaussian_mixture inputs"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--device", "bogus",
      "--results", "R"], "--device 'bogus' is not usable here"),
    (["spectrum", "--model-kw", '{"bogus": 1}'], "--model-kw {\"bogus\": 1} does not fit"),
    (["spectrum", "--model", "small_cnn"], "--model small_cnn does not take"),
    (["spectrum", "--device", "bogus"], "--device 'bogus' is not usable here"),
])
def test_bad_input_exits_2_with_message(args, msg, capsys, tmp_path):
    args = [str(tmp_path / a) if a == "R" else a for a in args]
    assert main(args) == 2
    assert msg in capsys.readouterr().err


@pytest.mark.parametrize("args", [["lr-rule", "linear", "--alpha0", "0"],
                                  ["sweep", "--batch-sizes", "0", "--lr-rule", "const:1",
                                   "--results", "x"],
                                  ["sweep", "--model", "resnet9000", "--batch-sizes", "8",
                                   "--lr-rule", "const:1", "--results", "x"],
                                  ["spectrum", "--n-full", "0"], ["spectrum", "--n-full", "-3"],
                                  ["spectrum", "--top-k", "0"],
                                  ["lr-rule", "linear", "--alpha0", "0.1", "--eta", "inf"],
                                  ["lr-rule", "linear", "--alpha0", "0.1", "--eta", "-1"]])
def test_argument_errors(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_cuda_device_without_cuda_exits_2_with_message(capsys):
    assert main(["spectrum", "--device", "cuda"]) == 2
    assert "--device 'cuda' is not usable here" in capsys.readouterr().err


def test_spectrum_matches_dense_hessian(tmp_path, capsys):
    import torch
    from torch.func import functional_call

    from rmtlr import data, models

    out = tmp_path / "spec.json"
    assert main(["spectrum", "--model", "mlp", "--model-kw", '{"hidden": 4}', "--data-kw",
                 '{"n": 256}', "--batch-sizes", "16", "--n-full", "256", "--lanczos-steps", "40",
                 "--top-k", "2", "--device", "cpu", "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    # Independent reference: the dense P×P Hessian of the mean loss (P = 202) by autograd.
    ds = data.load("gaussian_mixture", "train", n=256)
    torch.manual_seed(0)  # the command's --seed default: same initial weights
    net = models.build("mlp", 10, hidden=4).double()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    x, y = ds.tensors[0].double(), ds.tensors[1]

    def loss(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = flat[i:i + s.numel()].reshape(s)
            i += s.numel()
        return torch.nn.functional.cross_entropy(functional_call(net, parts, (x,)), y)

    H = torch.autograd.functional.hessian(loss, flat0)
    top = torch.linalg.eigvalsh(H).flip(0)[:2].numpy()
    assert res["P"] == 202
    # 40 Lanczos steps with full re-orthogonalisation on P = 202 resolve the two extreme,
    # well-separated eigenvalues to far below 1e-4 relative; the model runs in float32,
    # whose HVP rounding (~1e-6 relative) sets the floor.
    assert res["full"]["top"] == pytest.approx(top, rel=1e-4)
    assert len(res["batch"]["16"]) == 2 and res["batch"]["16"][0] > 0
