"""The ``rmtlr`` command line: help texts, lr-rule tables, a tiny sweep, errors."""

import json

import pytest
import torch

import rmtlr.profiles
from rmtlr import models
from rmtlr.cli import main


@pytest.mark.parametrize("cmd,options", [
    ("sweep", ["--batch-sizes", "--lr-rule", "--optimizer", "--eps", "--schedule", "--results",
               "--seeds", "--momentum", "--weight-decay", "--model-kw", "--data-kw", "--augment",
               "--profile", "--shard"]),
    ("spectrum", ["--batch-sizes", "--n-full", "--lanczos-steps", "--top-k", "--checkpoint"]),
    ("lr-rule", ["--alpha0", "--b0", "--lam1", "--params", "--sigma-eps", "--delta"]),
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
                 "--lam1", "10", "--params", "1e6", "--sigma-eps", "1e-3"]) == 0
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
    (["spectrum", "--device", "meta"], "--device 'meta' is not usable here: 'meta' tensors"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--device", "meta",
      "--results", "R"], "--device 'meta' is not usable here"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "const:inf", "--results", "R"],
     "alpha0 must be a finite number in (0, inf)"),
    (["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--results", "D"],
     "is a directory"),
    (["spectrum", "--output", "D"], "--output '"),
    (["spectrum", "--checkpoint", "D"], "is a directory, not a checkpoint file"),
    (["spectrum", "--checkpoint", "R"], "does not exist"),
])
def test_bad_input_exits_2_with_message(args, msg, capsys, tmp_path):
    args = [str(tmp_path / a) if a == "R" else str(tmp_path) if a == "D" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and "error:" in err and "Traceback" not in err


SPEC = ["spectrum", "--model", "mlp", "--model-kw", '{"hidden": 4}', "--data-kw", '{"n": 64}',
        "--batch-sizes", "16", "--n-full", "64", "--lanczos-steps", "8", "--top-k", "1",
        "--device", "cpu"]


@pytest.mark.parametrize("content,msg", [
    ("text", "is not a PyTorch checkpoint"),
    ({"a": 1}, "holds no state_dict"),
    ({"state_dict": {"w": "x"}}, "holds no state_dict"),
    ([torch.ones(2)], "holds no state_dict"),
    ("other_model", "does not fit --model mlp"),
])
def test_checkpoints_that_are_not_this_models_weights_exit_2(content, msg, tmp_path, capsys):
    path = tmp_path / "ckpt.pt"
    if content == "text":
        path.write_text("not a checkpoint\n")
    elif content == "other_model":
        torch.save(models.build("mlp", 10, hidden=8).state_dict(), path)  # hidden 8, not 4
    else:
        torch.save(content, path)
    assert main(SPEC + ["--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"rmtlr spectrum: error: --checkpoint '{path}'" in err and msg in err


def test_a_wrapped_checkpoint_loads_like_its_state_dict(tmp_path, capsys):
    torch.manual_seed(5)
    state = models.build("mlp", 10, hidden=4).state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"epoch": 3, "state_dict": state, "history": {"outcome": "ok"}},
               tmp_path / "wrapped.pt")  # the form rmtlr.experiments writes
    tops = []
    for name in ("plain.pt", "wrapped.pt", None):
        out = tmp_path / f"{name}.json"
        ckpt = ["--checkpoint", str(tmp_path / name)] if name else []
        assert main(SPEC + ckpt + ["--output", str(out)]) == 0
        tops.append(json.loads(out.read_text())["full"]["top"])
    capsys.readouterr()
    assert tops[0] == tops[1] != tops[2]  # the weights were loaded, and loaded the same


@pytest.mark.parametrize("line,msg", [("[1, 2]", "line 1: a JSON list, not a record"),
                                      ("null", "line 1: a JSON NoneType, not a record"),
                                      ("{bad", "line 1: not valid JSON")])
def test_results_files_with_lines_that_are_not_records_exit_2(line, msg, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    out.write_text(line + "\n")
    assert main(["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--steps", "1",
                 "--data-kw", '{"n": 64}', "--results", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert msg in err and str(out) in err and "Traceback" not in err


def test_an_empty_record_in_the_results_file_is_left_alone(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    out.write_text("{}\n")
    assert main(["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.1", "--steps", "1",
                 "--data-kw", '{"n": 64}', "--results", str(out), "--device", "cpu"]) == 0
    assert out.read_text().startswith("{}\n") and len(out.read_text().splitlines()) == 2


def test_profile_quick_selects_its_device_and_batch_sizes(tmp_path, monkeypatch, capsys):
    # A host whose default device cannot train (the full profile's): --profile quick must
    # run on its own device (the CPU) and default to its own grid, not only label records.
    monkeypatch.setattr(rmtlr.profiles, "default_device", lambda: torch.device("meta"))
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    out = tmp_path / "r.jsonl"
    assert main(["sweep", "--profile", "quick", "--lr-rule", "const:0.01", "--steps", "1",
                 "--model-kw", '{"hidden": 4}', "--data-kw", '{"n": 100}',
                 "--results", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    quick = rmtlr.profiles.get_profile("quick")
    assert [r["config"]["batch_size"] for r in recs] == [b for b in quick.batch_sizes if b <= 100]
    assert {r["device"] for r in recs} == {"cpu"} and {r["profile"] for r in recs} == {"quick"}
    assert "profile: quick, device: cpu" in capsys.readouterr().out
    assert main(["sweep", "--lr-rule", "const:0.01", "--steps", "1", "--batch-sizes", "16",
                 "--data-kw", '{"n": 100}', "--results", str(out)]) == 2  # the full profile's
    assert "the full profile's device 'meta' is not usable here" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_full_profile_on_a_cpu_host_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RMTLR_PROFILE", "full")
    assert main(["sweep", "--batch-sizes", "16", "--lr-rule", "const:0.01", "--steps", "1",
                 "--data-kw", '{"n": 64}', "--results", str(tmp_path / "r.jsonl")]) == 0
    err = capsys.readouterr().err
    assert err.count("rmtlr sweep: warning: profile 'full'") == 1  # once, not per run
    assert main(["sweep", "--profile", "quick", "--batch-sizes", "16", "--lr-rule",
                 "const:0.01", "--steps", "1", "--data-kw", '{"n": 64}', "--results",
                 str(tmp_path / "r.jsonl")]) == 0
    assert "warning" not in capsys.readouterr().err


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


ENTRY = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset


def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(96, 4, generator=g), torch.randint(0, 3, (96,), generator=g)
    return model, nn.CrossEntropyLoss(), TensorDataset(x, y)


def wrong():
    return 1, 2
'''
PREDICT_FAST = ["--batches-per-size", "2", "--lanczos-steps", "10", "--num-vectors", "2",
                "--variance-samples", "32", "--calibration-batch-sizes", "8,32"]


def test_predict_help_documents_the_entry_and_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for opt in ("--entry", "MODULE:FUNCTION", "(model, loss_fn, dataset)", "--checkpoint",
                "--batch-sizes", "--optimizer", "--momentum", "--delta", "--noise-model",
                "--calibration-batch-sizes", "--lanczos-steps", "--output", "torchrun",
                "--recalibrate-bn", "--full-samples"):
        assert opt in text, opt


def test_predict_end_to_end_with_a_module_in_tmp_path(tmp_path, monkeypatch, capsys):
    from rmtlr.predict import predict_lr

    (tmp_path / "mynet.py").write_text(ENTRY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])
    out = tmp_path / "pred.json"
    assert main(["predict", "--entry", "mynet:make", "--batch-sizes", "8,32,96",
                 "--momentum", "0.5", "--output", str(out), *PREDICT_FAST]) == 0
    printed = capsys.readouterr().out
    assert "lam1_batch" in printed and f"written to {out}" in printed
    d = json.loads(out.read_text())
    lr = d["lr"]
    assert d["batch_sizes"] == [8, 32, 96] and d["momentum"] == 0.5
    assert all(v > 0 for v in lr) and lr == sorted(lr)
    # The same numbers as the library call with the same settings.
    import mynet

    model, loss, ds = mynet.make()
    ref = predict_lr(model, loss, ds, [8, 32, 96], momentum=0.5, batches_per_size=2,
                     num_steps=10, num_vectors=2, variance_samples=32,
                     calibration_batch_sizes=[8, 32], progress=False)
    assert lr == pytest.approx(ref.lr.tolist(), rel=1e-6)
    # A file path works too, and a checkpoint of other weights changes the answer.
    model.load_state_dict({k: v * 1.5 for k, v in model.state_dict().items()})
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    out2 = tmp_path / "pred2.json"
    assert main(["predict", "--entry", f"{tmp_path / 'mynet.py'}:make", "--batch-sizes", "8,32,96",
                 "--checkpoint", str(tmp_path / "ckpt.pt"), "--output", str(out2),
                 *PREDICT_FAST]) == 0
    d2 = json.loads(out2.read_text())
    assert d2["inputs"]["lam1"] != pytest.approx(d["inputs"]["lam1"], rel=1e-3)


@pytest.mark.parametrize(("args", "msg"), [
    (["--entry", "mynet"], "--entry must be MODULE:FUNCTION"),
    (["--entry", "nosuchmodule_xyz:make"], "cannot import module 'nosuchmodule_xyz'"),
    (["--entry", "mynet:missing"], "has no function 'missing'"),
    (["--entry", "mynet:wrong"], "must return (model, loss_fn, dataset)"),
    (["--entry", "nofile.py:make"], "no file 'nofile.py'"),
    (["--entry", "mynet:make", "--checkpoint", "ckpt_bad.pt"], "does not fit the model of --entry"),
    (["--entry", "mynet:make", "--batch-sizes", "8,500"], "batch_sizes"),
])
def test_predict_bad_input_exits_2_naming_it(args, msg, tmp_path, monkeypatch, capsys):
    (tmp_path / "mynet.py").write_text(ENTRY)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "ckpt_bad.pt")
    monkeypatch.chdir(tmp_path)
    if "--batch-sizes" not in args:
        args = [*args, "--batch-sizes", "8"]
    assert main(["predict", *args, *PREDICT_FAST]) == 2
    assert msg in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["2/2", "1", "a/b", "-1/2", "0/0"])
def test_sweep_shard_must_be_i_of_n(shard, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--lr-rule", "const:0.1", "--results", "x.jsonl", "--shard", shard])
    assert exc.value.code == 2
    assert "I/N" in capsys.readouterr().err


def test_sweep_shards_of_the_cli_cover_the_grid_once(tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    common = ["sweep", "--batch-sizes", "16,32,64", "--seeds", "0,1", "--lr-rule",
              "linear:0.05:16", "--steps", "2", "--model-kw", '{"hidden": 8}', "--data-kw",
              '{"n": 256}', "--results", str(out), "--device", "cpu", "--profile", "quick"]
    assert main([*common, "--shard", "0/2"]) == 0
    first = capsys.readouterr().out
    assert "shard 0/2" in first and "3 runs" in first
    assert main([*common, "--shard", "1/2"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["config"]["batch_size"], r["config"]["seed"]) for r in recs) == sorted(
        (b, s) for b in (16, 32, 64) for s in (0, 1))
