"""Restoration (bncr.restore): UNIR's losses, the nets, a few iterations of each method, and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from bncr.cli import main
from bncr.degradations.settings import decisions, get_setting
from bncr.errors import UserError
from bncr.restore import RestoreConfig, load_restorer, train_restorer
from bncr.restore.cyclegan import ImagePool, domains
from bncr.restore.nets import RestorationGenerator
from bncr.restore.unir import back_measurement, known_measurement, measure, unir_d_terms, unir_g_terms

TINY = ["--set", "bank_size=64", "--set", "width=4", "--set", "d_width=4", "--set", "blocks=1", "--set", "batch=4", "--set", "tick=1"]


class Const(nn.Module):
    """A 'restorer' whose output does not depend on its input."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.x = nn.Parameter(x.clone())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.x


class Spy(nn.Module):
    """Records what a module is called with."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, *args):
        self.calls.append(args)
        return self.inner(*args)

    def sample_latents(self, *a, **k):
        return self.inner.sample_latents(*a, **k)


@pytest.fixture(scope="module")
def F_N():
    return known_measurement(get_setting("N"), 32, bank_size=64)


def _images(n=4, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


# ---------------------------------------------------------------- losses
def test_back_measurement_reuses_theta_and_stops_gradient_into_the_target(F_N):
    g = torch.Generator().manual_seed(0)
    x = _images()
    theta = F_N.sample_latents(4, g, "cpu")
    y_hat = F_N(x, theta).y
    # a restorer that returns the image that made y^: zero with the same theta', not with fresh parameters
    assert back_measurement(Const(x), F_N, y_hat, theta).item() == 0.0
    fresh = F_N.sample_latents(4, g, "cpu")
    assert back_measurement(Const(x), F_N, y_hat, fresh).item() > 1e-4
    # the target sg(y^) takes no gradient: with a restorer that ignores its input, y^ gets none at all
    y_leaf = y_hat.detach().requires_grad_(True)
    G = Const(_images(seed=1))
    loss = back_measurement(G, F_N, y_leaf, theta)
    assert loss.item() > 0
    loss.backward()
    assert y_leaf.grad is None and G.x.grad is not None and G.x.grad.abs().sum() > 0


def test_unir_terms_degrade_before_D_and_reuse_theta(F_N):
    G, D = RestorationGenerator(8, 1, False), Spy(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1)))
    F = Spy(F_N)
    y = _images()
    x_hat, y_hat, theta = measure(G, F, y, torch.Generator().manual_seed(0))
    terms = unir_g_terms(G, D, F, y_hat, theta, lambda_back=2.0)
    assert set(terms) == {"G_adv", "G_back"}
    assert len(F.calls) == 2 and all(call[1] is theta for call in F.calls)     # the same theta' both times
    assert D.calls[0][0] is y_hat and not torch.equal(y_hat, x_hat)           # D sees F(G(y)), not G(y)
    d = unir_d_terms(D, y, y_hat)["D_adv"]
    assert not D.calls[-1][0].requires_grad and d.requires_grad


def test_gradient_flows_through_the_measurement_to_the_restoration(F_N):
    x_hat = _images().requires_grad_(True)
    y_hat = F_N(x_hat, F_N.sample_latents(4, torch.Generator().manual_seed(0), "cpu")).y   # blur, noise, diff. JPEG
    y_hat.square().sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0


def test_known_measurement_needs_a_degradation():
    with pytest.raises(UserError, match="degrades nothing"):
        known_measurement(get_setting("A"), 32)


# ---------------------------------------------------------------- nets and data
@pytest.mark.parametrize("attention", [False, True])
def test_restorer_keeps_the_size_and_starts_as_the_identity(attention):
    G = RestorationGenerator(8, 2, attention)
    for shape in ((2, 3, 32, 32), (1, 3, 40, 56)):       # convolutional: any size
        y = torch.rand(shape) * 2 - 1
        assert torch.equal(G(y), y)
    with torch.no_grad():
        G.out_conv.weight.normal_()
        if attention:
            G.blocks[1].gamma.fill_(1.0)
    y = torch.rand(2, 3, 40, 56) * 2 - 1
    out = G(y)
    assert out.shape == y.shape and not torch.equal(out, y) and out.abs().max() <= 1


def test_attention_in_query_chunks_equals_the_whole_product(monkeypatch):
    from bncr.restore import nets
    att = nets.SelfAttention(8)
    with torch.no_grad():
        att.gamma.fill_(1.0)
    h = torch.randn(2, 8, 20, 24)
    whole = att(h)
    monkeypatch.setattr(nets, "Q_CHUNK", 7)
    assert torch.allclose(att(h), whole, atol=1e-6) and not torch.allclose(whole, h)


def test_cyclegan_domains_are_the_manifest_labels():
    a, b = domains(get_setting("O"), 0, 40)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(40)) and len(a) and len(b)
    assert all(any(decisions(get_setting("O"), 0, int(i))) for i in a)
    assert not any(any(decisions(get_setting("O"), 0, int(i))) for i in b)
    with pytest.raises(UserError, match="none of the 40 training images is clean.*leaves it out on N"):
        domains(get_setting("N"), 0, 40)


def test_image_pool_returns_old_fakes_of_the_right_shape():
    pool = ImagePool(3, torch.Generator().manual_seed(0))
    seen = [pool(torch.full((2, 3, 4, 4), float(i))) for i in range(6)]
    assert all(s.shape == (2, 3, 4, 4) for s in seen)
    assert any(s.min() < i for i, s in enumerate(seen))        # sometimes an older image
    assert torch.equal(ImagePool(0, torch.Generator())(seen[0]), seen[0])


def test_restore_options_one_source():
    import inspect

    from bncr.restore.config import GROUPS, PRESETS, restore_preset
    names = list(RestoreConfig().to_dict())
    assert sorted(k for keys in GROUPS.values() for k in keys) == sorted(names)
    params = inspect.signature(RestorationGenerator.__init__).parameters
    cfg = RestoreConfig()
    assert (params["width"].default, params["blocks"].default, params["attention"].default,
            params["residual_factor"].default) == (cfg.width, cfg.blocks, cfg.attention, cfg.residual)
    assert inspect.signature(known_measurement).parameters["bank_size"].default == cfg.bank_size
    for name in PRESETS:
        c = restore_preset(name)
        c.known_setting = "N"
        assert RestoreConfig.from_dict(c.validate().to_dict()) == c
    with pytest.raises(UserError, match="unknown restoration option"):
        RestoreConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_config_errors_name_the_option():
    with pytest.raises(UserError, match="--run BNCR_RUN.*--known-setting"):
        RestoreConfig().validate()
    with pytest.raises(UserError, match="lambda_back"):
        RestoreConfig(known_setting="N", lambda_back=-1).validate()
    with pytest.raises(UserError, match="method"):
        RestoreConfig(method="pix2pix").validate()
    with pytest.raises(UserError, match="--known-setting is for UNIR"):
        RestoreConfig(method="cyclegan", known_setting="N").validate()


# ---------------------------------------------------------------- a few iterations of each method
def _tiny(**kw) -> RestoreConfig:
    base = dict(bank_size=64, width=4, d_width=4, blocks=1, batch=4, count=16, iters=2, tick=1, image_every=2, snap_every=2,
                threads=1)
    return RestoreConfig(**{**base, **kw})


def test_unir_dagger_trains_saves_resumes_and_loads(tmp_path):
    out = train_restorer(_tiny(known_setting="N"), tmp_path / "u", progress=False)
    c = json.loads((out / "config.json").read_text())
    assert c["measurement"] == {"kind": "known", "setting": "N"} and c["config"]["setting"] == "N"
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert {"D_adv", "G_adv", "G_back"} <= set(rows[-1]) and all(np.isfinite(v) for v in rows[-1].values())
    assert (out / "final.png").is_file() and (out / "restorer-000002.pt").is_file()
    with pytest.raises(UserError, match="already holds a run"):
        train_restorer(_tiny(known_setting="N"), out, progress=False)
    train_restorer(_tiny(known_setting="N", iters=3), out, resume="auto", progress=False)
    G, info = load_restorer(out)
    assert info["iteration"] == 3 and not G.training
    assert G(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_restore_steps_make_no_host_read_between_ticks(tmp_path):
    """The loss terms stay on the device (StepLog): a step reads nothing back (on a GPU it would wait)."""
    from bncr.restore.train import RestoreTrainer
    from bncr.train.steplog import HostReads, adam_host_steps
    t = RestoreTrainer(_tiny(known_setting="N"), tmp_path / "u", progress=False)
    t.step()                                   # Adam's state and the log's vectors are created here
    with HostReads(ignore=adam_host_steps(t.opt_D, t.opt_G)) as r:
        t.step()
        t.step()
    assert r.count == 0, r.where
    means, diverged = t.log.read()
    assert diverged is None and {"D_adv", "G_adv", "G_back"} <= set(means)


def test_a_non_finite_loss_stops_before_the_next_checkpoint(tmp_path, monkeypatch):
    import bncr.restore.train as rt
    from bncr.train.loop import TrainingDiverged
    real = rt.unir_g_terms
    calls = []

    def poisoned(*a, **k):
        terms = real(*a, **k)
        calls.append(1)
        if len(calls) == 3:                    # iteration 2 (0-based)
            terms["G_back"] = terms["G_back"] * float("nan")
        return terms
    monkeypatch.setattr(rt, "unir_g_terms", poisoned)
    out = tmp_path / "u"
    with pytest.raises(TrainingDiverged, match="G_back became nan at iteration 2"):
        train_restorer(_tiny(known_setting="N", iters=4, tick=4, image_every=4, snap_every=2), out, progress=False)
    assert (out / "restorer-000002.pt").is_file() and not (out / "restorer-000004.pt").exists()


def test_bncr_gan_unir_uses_the_runs_frozen_generators(tmp_path):
    from bncr.api import load_pipeline
    from bncr.train.config import TrainConfig
    from bncr.train.loop import train
    run = train(TrainConfig(model="bncr-gan", setting="N", iters=2, width=8, z_dim=16, batch=4, count=16, tick=1,
                            image_every=2, snap_every=2, threads=1, dataset="shapes"), tmp_path / "bncr",
                progress=False)
    before = {k: v.clone() for k, v in load_pipeline(run)[1].state_dict().items()}
    out = train_restorer(_tiny(run=str(run), count=None), tmp_path / "b", progress=False)
    c = json.loads((out / "config.json").read_text())
    assert c["measurement"]["kind"] == "learned" and c["measurement"]["stages"] == {
        "blur": "generator", "noise": "generator", "jpeg": "generator"}
    assert (c["config"]["dataset"], c["config"]["count"], c["config"]["setting"]) == ("shapes", 16, "N")
    after = load_pipeline(run)[1].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)               # F stays frozen
    assert "G_back" in json.loads((out / "stats.jsonl").read_text().splitlines()[-1])


def test_cyclegan_trains_on_a_partially_degraded_setting(tmp_path):
    out = train_restorer(_tiny(method="cyclegan", setting="O", pool=2), tmp_path / "c", progress=False)
    c = json.loads((out / "config.json").read_text())
    assert c["clean_images"] + c["training_images"] == 16 and c["clean_images"] > 0
    row = json.loads((out / "stats.jsonl").read_text().splitlines()[-1])
    assert {"D_a", "D_b", "G_adv", "G_cycle", "G_idt"} <= set(row)
    with pytest.raises(UserError, match="no clean domain"):
        train_restorer(_tiny(method="cyclegan", setting="N"), tmp_path / "c2", progress=False)
    assert not (tmp_path / "c2").exists()


# ---------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def restorer(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "r"
    assert main(["restore", "train", "--known-setting", "N", "--count", "8", "--iters", "2", "--out", str(out),
                 "--no-progress", *TINY]) == 0
    return out


def _folder(path, names=("a.png", "sub/b.jpg"), size=32):
    for i, n in enumerate(names):
        (path / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size + 8 * i, 3), 40 * (i + 1), np.uint8)).save(path / n)
    return path


def test_cli_restore_apply_writes_the_same_names_or_nothing(restorer, tmp_path, capsys):
    src = _folder(tmp_path / "in")
    assert main(["restore", "apply", str(restorer), "--in", str(src), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == \
        ["a.png", "sub/b.jpg"]
    assert Image.open(tmp_path / "out" / "sub" / "b.jpg").size == (40, 32)    # each image at its own size
    capsys.readouterr()
    assert main(["restore", "apply", str(restorer), "--in", str(src), "--out", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    (src / "broken.png").write_bytes(b"not an image")
    assert main(["restore", "apply", str(restorer), "--in", str(src), "--out", str(tmp_path / "o2"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.png" in err[0] and "nothing was written" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]      # no partial folder left
    assert main(["restore", "apply", str(restorer), "--in", str(src), "--out", str(tmp_path / "o3"), "--png",
                 "--skip-bad", "--no-progress"]) == 0
    assert "skipped 1 unreadable" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "o3").rglob("*.*")) == ["a.png", "b.png"]


def test_cli_restore_eval_and_dry_run(restorer, capsys):
    assert main(["restore", "eval", str(restorer), "--num", "4", "--metric", "psnr", "--no-progress"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| images | PSNR") and len(lines) == 3
    assert lines[1].startswith("| degraded input") and "UNIR-dagger" in lines[2]
    # stats: image statistics of every set and a last row for the clean images (whose noise is the smallest)
    from bncr.metrics.imagestats import image_stats
    from bncr.restore.evaluate import evaluate_restorers, test_images
    rows = evaluate_restorers([restorer], num=6, metrics=["stats"], progress=False)
    assert [r["images"] for r in rows][0] == "degraded input" and rows[-1]["images"] == "clean (reference)"
    y, x = test_images("shapes", "N", 6, progress=False)
    assert rows[0]["noise"] == pytest.approx(image_stats(y)["noise"]) and rows[-1]["hf"] == pytest.approx(image_stats(x)["hf"])
    assert rows[-1]["noise"] < rows[0]["noise"]
    assert main(["restore", "eval", str(restorer), "--num", "6", "--metric", "stats", "--no-progress"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    assert "sharpness" in lines[0] and "blocks" in lines[0] and "frame" in lines[0] and lines[-1].startswith("| clean (reference)")
    assert main(["restore", "train", "--run", "x", "--method", "cyclegan", "--setting", "O", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "cyclegan"


def test_cli_lpips_of_two_folders(tmp_path, monkeypatch, capsys):
    from bncr.metrics import lpips as L

    class MSE(nn.Module):
        def forward(self, a, b):
            return ((a - b) ** 2).mean(dim=(1, 2, 3), keepdim=True)

    monkeypatch.setattr(L, "lpips_model", lambda net="alex", **kw: MSE())
    monkeypatch.setattr(L, "lpips_distance", lambda x, y, model, batch=64: model(x, y).flatten())
    a, b = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(b / "a.png")
    assert main(["lpips", str(a), str(b), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    want = ((40 / 127.5) ** 2)
    assert out[0].split()[0] == "a.png" and float(out[0].split()[1]) == pytest.approx(want, rel=1e-5)
    assert float(out[1].split()[1]) == 0.0 and out[2].startswith("mean LPIPS (alex) over 2 images")
    assert float(out[2].split()[-1]) == pytest.approx(want / 2, rel=1e-5)
    (b / "extra.png").write_bytes((b / "a.png").read_bytes())
    assert main(["lpips", str(a), str(b), "--no-progress"]) == 2
    assert "extra.png has no counterpart" in capsys.readouterr().err
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(a / "extra.png")
    assert main(["lpips", str(a), str(b), "--no-progress"]) == 2
    assert "same size" in capsys.readouterr().err


# ---------------------------------------------------------------- Table 4 as a grid
def test_table4_grid_is_the_papers_table(capsys, tmp_path):
    from bncr.bench import GRIDS
    from bncr.bench.paper import PAPER_TABLES
    grid, table = GRIDS["table4"], PAPER_TABLES["table4"]
    assert set(grid.pairs()) == {(s, m) for m in table.models for s in table.settings if table.has_cell(m, s)}
    assert ("N", "cyclegan") not in grid.pairs() and grid.test_setting == "N" and grid.seeds == (0, 1, 2)
    assert main(["benchmark", "--grid", "table4", "--root", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 11 * 3 + 1
    assert "uses table2 cell cifar10/N/bncr-gan/seed2 (todo)" in next(ln for ln in out if "N/bncr-gan+unir/seed2" in ln)


def test_restoration_cell_runs_evaluates_and_collects(tmp_path, capsys):
    args = ["benchmark", "--grid", "table4-cpu", "--root", str(tmp_path), "--iters", "2", "--metric", "psnr",
            "--num", "4", "--no-progress", *TINY, "--set", "count=8"]
    assert main([*args, "--only", "shapes/Q/unir-dagger/seed0"]) == 0
    run = tmp_path / "table4-cpu" / "shapes" / "Q" / "unir-dagger" / "seed0"
    line = json.loads((run / "metric-psnr4_testN.jsonl").read_text())
    assert line["snapshot"] == "restorer-000002.pt" and line["value"] > 0 and line["input_value"] > 0
    assert json.loads((run / "result.json").read_text())["commands"]["train"].startswith("bncr restore train")
    capsys.readouterr()
    assert main([*args, "--collect"]) == 0
    table = capsys.readouterr().out
    assert f"| UNIR† (`unir-dagger`) | … | {line['value']:.2f} |" in table
    assert main([*args, "--only", "shapes/N/bncr-gan+unir/seed0"]) == 1
    assert "needs the trained BNCR-GAN of cell shapes/N/bncr-gan/seed0 of grid cpu-shapes" in capsys.readouterr().out
