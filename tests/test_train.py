import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bncr.cli import main
from bncr.models.registry import MODELS
from bncr.errors import UserError
from bncr.train.config import TrainConfig
from bncr.train.loop import TrainingDiverged, Trainer, train

TINY = ["width=8", "z_dim=16", "batch=4", "count=32", "tick=1", "image_every=5", "snap_every=5", "threads=1"]


def tiny_cfg(model="bncr-gan", setting="N", iters=5, **kw) -> TrainConfig:
    cfg = TrainConfig(model=model, setting=setting, iters=iters).override(TINY)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.mark.parametrize("model", ["cr-gan", "p-ambientgan"])
def test_clamp_quality_parametrisation_trains_and_reloads(model, tmp_path):
    from bncr.api import load_pipeline
    out = train(tiny_cfg(model, setting="J", q_param="clamp"), tmp_path / model, progress=False)
    _, pipe, _ = load_pipeline(out / "snapshot-000005.pt")
    q, _ = pipe.G_q(pipe.G_q.sample_z(16) if pipe.G_q.z_dim else 16)
    assert pipe.G_q.q_param == "clamp" and bool(((q >= 1) & (q <= 100)).all())


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_trains_five_iterations(model, tmp_path):
    out = train(tiny_cfg(model), tmp_path / model, progress=False)
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["it_per_s"] > 0 and "G_adv" in r and "D_r1" in r for r in rows)
    snap = torch.load(out / "snapshot-000005.pt", weights_only=True)
    assert snap["iteration"] == 5
    assert (out / "final.png").stat().st_size > 0 and (out / "config.json").is_file()
    assert json.loads((out / "config.json").read_text())["device"] == "cpu"  # where it trained, for results
    if model.startswith(("br-gan", "bncr")):
        assert "kernel_entropy_mean" in rows[-1] and (out / "images" / "kernels-000005.png").is_file()
    if model.startswith(("cr-gan", "bncr")):
        assert 0 < rows[-1]["q_mean"] < 100 and (out / "images" / "quality-000005.png").is_file()
    if model in ("bncr-gan", "cr-gan-ac"):
        assert "AC_comp" in rows[-1]
    if model in ("bncr-gan", "br-gan-ac"):
        assert "AC_blur" in rows[-1]


def test_sample_and_load_generator(tmp_path):
    import bncr
    out = train(tiny_cfg("gan", "A", iters=2, snap_every=2), tmp_path / "run", progress=False)
    G = bncr.load_generator(out)
    x = G(G.sample_z(3))
    assert x.shape == (3, 3, 32, 32) and x.abs().max() <= 1
    assert main(["sample", str(out), "--n", "5", "--out", str(tmp_path / "grid.png")]) == 0
    assert main(["sample", str(out), "--n", "3", "--out", str(tmp_path / "imgs")]) == 0
    assert len(list((tmp_path / "imgs").glob("*.png"))) == 3


def _states_equal(a: Path, b: Path) -> None:
    sa = torch.load(a, weights_only=True)
    sb = torch.load(b, weights_only=True)
    assert sa["iteration"] == sb["iteration"]
    for key in ("G_x", "D_y", "pipe", "G_x_ema", "pipe_ema"):
        for name, t in sa[key].items():
            assert torch.equal(t, sb[key][name]), (key, name)
    for key in ("opt_G", "opt_D"):
        for pid, st in sa[key]["state"].items():
            for name, t in st.items():
                assert torch.equal(t, sb[key]["state"][pid][name]), (key, pid, name)
    assert torch.equal(sa["rng"][0], sb["rng"][0])


def _cli(out: Path, iters: int, *extra: str) -> list[str]:
    sets = [a for s in TINY[:-3] + ["tick=1", "image_every=1000", "snap_every=3", "threads=1"] for a in ("--set", s)]
    return [sys.executable, "-m", "bncr", "train", "--model", "bncr-gan", "--setting", "N", "--out", str(out),
            "--iters", str(iters), "--no-progress", *sets, *extra]


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    iters = 24
    ref = tmp_path / "ref"
    subprocess.run(_cli(ref, iters), check=True, env=env, capture_output=True)
    run = tmp_path / "killed"
    p = subprocess.Popen(_cli(run, iters), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "training-state.pt"
    t0 = time.time()
    while not state.exists() and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = torch.load(state, weights_only=True)["iteration"]
    assert killed_at < iters, "the run finished before it could be killed; the test proves nothing"
    subprocess.run(_cli(run, iters, "--resume", "auto"), check=True, env=env, capture_output=True)
    _states_equal(ref / "training-state.pt", state)
    assert "resumed at iteration" in (run / "log.txt").read_text()


def test_nan_stops_with_clear_message_and_keeps_checkpoint(tmp_path, monkeypatch):
    import bncr.train.loss as loss
    real = loss.g_loss_nonsaturating
    calls = {"n": 0}

    def poisoned(logits):
        calls["n"] += 1
        v = real(logits)
        return v * float("nan") if calls["n"] == 4 else v

    monkeypatch.setattr(loss, "g_loss_nonsaturating", poisoned)
    cfg = tiny_cfg("gan", "A", iters=6, snap_every=2)
    with pytest.raises(TrainingDiverged, match="G_adv .* at iteration 3"):
        Trainer(cfg, tmp_path / "r", progress=False).run()
    assert torch.load(tmp_path / "r" / "training-state.pt", weights_only=True)["iteration"] == 2


def test_torchrun_two_ranks_gloo(tmp_path):
    out = tmp_path / "ddp"
    sets = [a for s in TINY[:-3] + ["tick=1", "image_every=1000", "snap_every=3", "threads=1"] for a in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "bncr",
           "train", "--model", "bncr-gan", "--setting", "N", "--out", str(out), "--iters", "3", "--no-progress", *sets]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world_size"] == 2
    st = torch.load(out / "training-state.pt", weights_only=True)
    assert st["iteration"] == 3 and len(st["rng"]) == 2 and not torch.equal(st["rng"][0], st["rng"][1])


@pytest.mark.parametrize("args,needle", [
    (["--model", "nope", "--setting", "N"], "unknown model 'nope'"),
    (["--model", "gan", "--setting", "Z"], "unknown setting 'Z'"),
    (["--model", "gan", "--setting", "A", "--width", "2"], "width"),
    (["--model", "gan", "--setting", "A", "--set", "bogus=1"], "bogus=1"),
])
def test_bad_train_inputs_one_line(args, needle, tmp_path, capsys):
    rc = main(["train", *args, "--out", str(tmp_path / "o"), "--iters", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err


def test_unwritable_out_and_config_mismatch(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["train", "--model", "gan", "--setting", "A", "--out", str(blocker / "run"), "--iters", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "not writable" in err and len(err.splitlines()) == 1
    out = tmp_path / "run"
    train(tiny_cfg("gan", "A", iters=2, snap_every=2), out, progress=False)
    args = ["train", "--model", "gan", "--setting", "A", "--out", str(out), "--iters", "4", "--no-progress",
            *[a for s in TINY for a in ("--set", s)]]
    rc = main(args + ["--set", "lr=0.001", "--resume", "auto"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "option lr was" in err and len(err.splitlines()) == 1, err
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "already holds a run" in err
    assert main(args + ["--resume", "auto"]) == 0


def test_d_lr_and_cpu_preset(tmp_path):
    from bncr.train.config import preset
    t = Trainer(tiny_cfg("gan", "A", iters=1, d_lr=1e-3), tmp_path / "r", progress=False)
    assert t.opt_D.param_groups[0]["lr"] == 1e-3 and t.opt_G.param_groups[0]["lr"] == 2e-4
    t2 = Trainer(tiny_cfg("gan", "A", iters=1), tmp_path / "r2", progress=False)
    assert t2.opt_D.param_groups[0]["lr"] == 2e-4
    t3 = Trainer(tiny_cfg("cr-gan", "J", iters=2, deg_lr=1e-5), tmp_path / "r3", progress=False)
    g_x, deg = t3.opt_G.param_groups
    assert g_x["lr"] == 2e-4 and deg["lr"] == 1e-5
    assert {id(p) for p in deg["params"]} == {id(p) for p in t3.nets.pipe.parameters()}
    t3.run()                                     # trains and checkpoints with two parameter groups
    # the CPU preset uses the faster-learning D (residual scale 1, R1 1; NR-GAN: 0.1 and 10)
    cpu, paper = preset("cpu"), preset("paper")
    assert (cpu.residual, cpu.r1) == (1.0, 1.0) and (paper.residual, paper.r1) == (0.1, 10.0)


def test_deg_warmup_holds_degradation_generators(tmp_path):
    cfg = tiny_cfg("bncr-gan", "N", iters=3, deg_warmup=2, snap_every=100, image_every=100)
    t = Trainer(cfg, tmp_path / "r", progress=False)
    pipe0 = {k: v.clone() for k, v in t.nets.pipe.state_dict().items()}
    gx0 = {k: v.clone() for k, v in t.nets.G_x.state_dict().items()}
    for _ in range(2):
        t.step(); t.it += 1
    assert all(torch.equal(v, t.nets.pipe.state_dict()[k]) for k, v in pipe0.items())
    assert any(not torch.equal(v, t.nets.G_x.state_dict()[k]) for k, v in gx0.items())
    t.step(); t.it += 1                          # iteration 2 >= deg_warmup: the generators move
    assert any(not torch.equal(v, t.nets.pipe.state_dict()[k]) for k, v in pipe0.items())


def test_deg_hold_holds_only_the_named_generators(tmp_path):
    """deg_hold="k": during the warm-up G_k stays at its initialisation while G_n and G_q learn."""
    cfg = tiny_cfg("bncr-gan", "N", iters=2, deg_warmup=2, deg_hold="k", snap_every=100, image_every=100)
    t = Trainer(cfg, tmp_path / "r", progress=False)
    before = {k: v.clone() for k, v in t.nets.pipe.state_dict().items()}
    for _ in range(2):
        t.step(); t.it += 1
    moved = {k.split(".")[0] for k, v in before.items() if not torch.equal(v, t.nets.pipe.state_dict()[k])}
    assert moved == {"G_n", "G_q"}
    with pytest.raises(UserError, match="deg_hold"):
        tiny_cfg("bncr-gan", "N", deg_hold="kx").validate()


def test_lazy_r1_every_kth_step_with_scaled_weight(tmp_path):
    """r1_every=k: R1 (weighted r1 * k) on iterations 0, k, 2k, ...; the off-steps log 0 and skip the double
    backward; r1_every=1 is the every-step R1 of before."""
    from bncr.models.losses import r1_penalty
    t = Trainer(tiny_cfg("gan", "A", iters=4, r1=2.0, r1_every=3), tmp_path / "lazy", progress=False)
    logged = []
    for _ in range(4):
        st = t.step()
        logged.append(float(st["D_r1"]))
        t.it += 1
    assert logged[0] > 0 and logged[3] > 0 and logged[1] == 0 and logged[2] == 0
    # the weight on an R1 step: r1 * r1_every times the penalty of the batch D saw
    t2 = Trainer(tiny_cfg("gan", "A", iters=1, r1=2.0, r1_every=3), tmp_path / "w", progress=False)
    x = t2._real_batch(4).requires_grad_(True)
    terms, _, _ = t2.loss.d_terms(x, x.detach(), with_r1=True)
    expect = 2.0 * 3 * r1_penalty(t2.nets.D_y(x), x)
    assert terms["D_r1"].item() == pytest.approx(expect.item(), rel=1e-5)
    assert TrainConfig().r1_every == 1
    with pytest.raises(UserError, match="r1_every"):
        TrainConfig(r1_every=0).validate()


def test_q_fd_surrogate_gives_each_q_the_finite_difference_slope(tmp_path):
    """q_grad="fd": no gradient reaches q through the differentiable JPEG; the surrogate term's gradient on each
    q_i is (G_adv_i(q + h) - G_adv_i(q - h)) / (2h) / N, computed here independently with the real forward."""
    import torch.nn.functional as F
    from bncr.train.loop import Trainer
    from bncr.nets.degradation_generators import Q_MIN
    t = Trainer(tiny_cfg("cr-gan", setting="J", q_param="clamp", q_grad="fd", q_fd_sides=2), tmp_path / "fd",
                progress=False)
    n = t.nets
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    lat = n.pipe.sample_latents(6, torch.Generator().manual_seed(0), "cpu")
    out = n.pipe(x, lat)
    (g_adv,) = torch.autograd.grad(F.softplus(-n.D_y(out.y)).mean(), out.q, allow_unused=True)
    assert g_adv is None or bool((g_adv == 0).all())          # the diff JPEG's q-gradient is cut
    per = lambda qq: F.softplus(-n.D_y(n.pipe.degrade_at_quality(out, qq, lat))).flatten()
    with torch.no_grad():
        l0 = per(out.q.detach())
    (g_fd,) = torch.autograd.grad(t.loss.q_fd_surrogate(out, lat, l0), out.q)
    h, q = t.cfg.q_fd_step, out.q.detach()
    hi, lo = (q + h).clamp(max=100), (q - h).clamp(min=Q_MIN)
    with torch.no_grad():
        expect = (per(hi) - per(lo)) / (hi - lo) / 6
    torch.testing.assert_close(g_fd, expect)
    # and the recomputed fake at the same q is the forward's fake
    torch.testing.assert_close(n.pipe.degrade_at_quality(out, q, lat), out.y.detach())


def test_q_fd_one_sided_uses_the_main_forward_and_one_random_step(tmp_path):
    """q_fd_sides=1: each q_i gets (G_adv_i(q + s_i h) - G_adv_i(q)) / (s_i h) / N, s_i = +-1 drawn from the
    trainer's generator (flipped where q + s_i h leaves [Q_MIN, 100]); G_adv_i(q) is the main forward's."""
    import torch.nn.functional as F
    from bncr.nets.degradation_generators import Q_MIN
    from bncr.train.loop import Trainer
    t = Trainer(tiny_cfg("cr-gan", setting="J", q_fd_sides=1), tmp_path / "fd1", progress=False)
    n = t.nets
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    lat = n.pipe.sample_latents(8, torch.Generator().manual_seed(0), "cpu")
    out = n.pipe(x, lat)
    with torch.no_grad():
        out.q[:2] = torch.tensor([99.0, 3.0])               # near the bounds: the step must point inside
    per = lambda qq: F.softplus(-n.D_y(n.pipe.degrade_at_quality(out, qq, lat))).flatten()
    with torch.no_grad():
        l0 = per(out.q.detach())
    state = t.gen.get_state()
    (g_fd,) = torch.autograd.grad(t.loss.q_fd_surrogate(out, lat, l0), out.q)
    t.gen.set_state(state)
    q, h = out.q.detach(), t.cfg.q_fd_step
    step = (torch.randint(0, 2, q.shape, generator=t.gen).float() * 2 - 1) * h
    step = torch.where((q + step > 100) | (q + step < Q_MIN), -step, step)
    assert step[0] < 0 and step[1] > 0
    with torch.no_grad():
        expect = (per(q + step) - l0) / step / 8
    torch.testing.assert_close(g_fd, expect)
    with pytest.raises(UserError, match="q_fd_sides"):
        Trainer(tiny_cfg("cr-gan", setting="J", q_fd_sides=3), tmp_path / "bad", progress=False)


def test_per_generator_ds_weights(tmp_path):
    """ds_k / ds_n / ds_q override ds for one degradation generator; 0 drops its DS term."""
    out = train(tiny_cfg("bncr-gan", iters=2, ds_q=0.0, ds_k=0.5), tmp_path / "run", progress=False)
    row = json.loads((out / "stats.jsonl").read_text().splitlines()[-1])
    assert "G_q_ds" not in row and "G_k_ds" in row and "G_n_ds" in row
    with pytest.raises(UserError, match="ds_n"):
        Trainer(tiny_cfg("bncr-gan", ds_n=-1.0), tmp_path / "bad", progress=False)


def test_per_generator_ds_bound(tmp_path):
    """ds_q_tau bounds G_q's DS reward alone (None: ds_tau): with a tiny bound G_q's term is -ds * tau
    exactly, while G_k's stays unbounded."""
    out = train(tiny_cfg("bncr-gan", iters=2, ds_q_tau=1e-6), tmp_path / "run", progress=False)
    row = json.loads((out / "stats.jsonl").read_text().splitlines()[-1])
    assert row["G_q_ds"] == pytest.approx(-0.02 * 1e-6, rel=1e-4)
    assert row["G_k_ds"] < -1e-6
    with pytest.raises(UserError, match="ds_q_tau"):
        Trainer(tiny_cfg("bncr-gan", ds_q_tau=-1.0), tmp_path / "bad", progress=False)


def _state_tensors(run: Path) -> list[torch.Tensor]:
    snap = torch.load(run / "snapshot-000002.pt", weights_only=True)
    out = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            out.append(x)
        elif isinstance(x, dict):
            for k in sorted(x):
                walk(x[k])
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
    walk(snap)
    return out


@pytest.mark.parametrize("model", ["gan", "ambientgan", "br-gan-ac", "cr-gan-ac", "nr-gan"])
def test_options_a_model_never_reads_do_not_change_its_training(model, tmp_path):
    """ModelSpec.unused_options is what the benchmark's stale-cell check ignores: changing those options must leave
    the trained weights bit-identical."""
    from bncr.models.registry import get_model
    unused = get_model(model).unused_options()
    assert unused and unused <= set(UNREAD_CHANGED)
    base = train(tiny_cfg(model, iters=2, snap_every=2), tmp_path / "a", progress=False)
    other = train(tiny_cfg(model, iters=2, snap_every=2, **{k: UNREAD_CHANGED[k] for k in unused}), tmp_path / "b",
                  progress=False)
    a, b = _state_tensors(base), _state_tensors(other)
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


UNREAD_CHANGED = {"ac": 7.0, "ac_comp": 0.5, "ac_comp_on": "u", "ac_norm": "sum", "mu_k": 3.0, "mu_q": 2.0,
                  "q_mask": "hard", "ds": 0.5, "ds_tau": 0.3, "ds_k": 0.7, "ds_k_tau": 0.2, "ds_n": 0.4,
                  "ds_n_tau": 0.1, "ds_n_target": "params", "ds_ab": "logvar", "ds_q": 0.3, "ds_q_tau": 0.2,
                  "ds_q_target": "both"}


def test_bncr_gan_reads_every_ac_option(tmp_path):
    """The counterpart: BNCR-GAN has both AC terms, so no option is unused and changing one changes its weights."""
    from bncr.models.registry import get_model
    assert get_model("bncr-gan").unused_options() == frozenset()
    b1 = train(tiny_cfg("bncr-gan", iters=2, snap_every=2), tmp_path / "c", progress=False)
    b2 = train(tiny_cfg("bncr-gan", iters=2, snap_every=2, mu_q=2.0), tmp_path / "d", progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(_state_tensors(b1), _state_tensors(b2)))
    b3 = train(tiny_cfg("bncr-gan", iters=2, snap_every=2, ac_comp_on="u"), tmp_path / "e", progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(_state_tensors(b1), _state_tensors(b3)))


def test_cr_gan_reads_q_mask_and_its_hard_masks_decide(tmp_path):
    """q_mask="hard" changes CR-GAN's training, and the masks a run's G_q draws are decisions (0 or 1), so the
    recovery report's fraction compressed counts images, not blends."""
    from bncr.degradations.settings import get_setting
    from bncr.models.pipeline import DegradationPipeline
    from bncr.models.registry import get_model
    from bncr.report.samples import sample_generated
    assert "q_mask" not in get_model("cr-gan").unused_options()
    assert "q_mask" in get_model("cr-gan-nomask").unused_options()
    c1 = train(tiny_cfg("cr-gan", iters=2, snap_every=2), tmp_path / "e", progress=False)
    c2 = train(tiny_cfg("cr-gan", iters=2, snap_every=2, q_mask="hard"), tmp_path / "f", progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(_state_tensors(c1), _state_tensors(c2)))
    for mode, is_binary in (("soft", False), ("hard", True)):
        torch.manual_seed(0)
        pipe = DegradationPipeline.from_config(TrainConfig(q_mask=mode), get_model("cr-gan"), get_setting("J"), 32)
        m_q = sample_generated(pipe, 256).m_q
        assert bool(((m_q == 0) | (m_q == 1)).all()) == is_binary
        assert 0 < (m_q > 0.5).mean() < 1


def test_oracle_blur_softens_the_oracles_clean_images_and_needs_the_oracle(tmp_path):
    """oracle_blur (diagnosis): the oracle's clean images blurred by a Gaussian, mean kept, edges softer; refused
    without oracle_clean; a run with it trains."""
    from bncr.data import open_dataset
    from bncr.errors import UserError
    from bncr.metrics.imagestats import sharpness
    from bncr.train.loop import soften
    ds = open_dataset("shapes", count=64)
    x = torch.from_numpy(np.stack([ds[i] for i in range(64)]))
    soft = soften(x, 0.6)
    assert soft.dtype == torch.uint8 and soft.shape == x.shape
    assert abs(soft.float().mean() - x.float().mean()) < 0.5
    assert sharpness(soft.numpy()) < 0.7 * sharpness(x.numpy())
    assert torch.equal(soften(x, 0.2), x)                      # a negligible sigma changes no level
    with pytest.raises(UserError, match="oracle_blur"):
        tiny_cfg(oracle_blur=0.5).validate()
    out = train(tiny_cfg(oracle_clean=True, oracle_blur=0.5, iters=2, snap_every=2), tmp_path / "o", progress=False)
    assert (out / "snapshot-000002.pt").is_file()
