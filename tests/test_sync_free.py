"""The training step never makes the host wait for the device between ticks, and the degradation pipeline's
forward traces to one graph (issue 17): measured on a CPU, for what a GPU would do with the same code."""
from __future__ import annotations

import pytest
import torch

from bncr.degradations.settings import get_setting
from bncr.models.pipeline import DegradationPipeline
from bncr.models.registry import get_model
from bncr.train.config import TrainConfig, preset
from bncr.train.loop import Trainer
from bncr.train.steplog import HostReads, adam_host_steps

torch.set_num_threads(1)
TINY = ["width=8", "z_dim=16", "batch=4", "count=32", "tick=3", "image_every=100", "snap_every=100", "threads=1"]


def _trainer(tmp_path, preset_name: str = "default", model: str = "bncr-gan", setting: str = "N", *extra: str):
    cfg = preset(preset_name).override([f"model={model}", f"setting={setting}", "dataset=shapes", *TINY, *extra])
    return Trainer(cfg, tmp_path / "run", progress=False)


def _reads_in_steps(t: Trainer, steps: int = 2) -> HostReads:
    t.step(); t.it += 1             # the first step creates Adam's state and the device log's vectors
    with HostReads(ignore=adam_host_steps(t.opt_D, t.opt_G)) as r:
        for _ in range(steps):
            t.step(); t.it += 1
    return r


@pytest.mark.parametrize("case", [("default", "bncr-gan", "N"), ("paper", "bncr-gan", "N"),
                                  ("default", "ambientgan", "N"), ("default", "gan", "A")],
                         ids=lambda c: "/".join(c))
def test_steps_between_ticks_make_no_host_read(case, tmp_path):
    r = _reads_in_steps(_trainer(tmp_path, *case))
    assert r.count == 0, r.where


def test_the_counter_counts_an_inserted_read(tmp_path, monkeypatch):
    """The assertion above can fail: a .item() in a loss term, a bool() check, a tolist and Adam's host step
    counters are all counted."""
    import bncr.train.loss as loss
    real = loss.g_loss_nonsaturating
    monkeypatch.setattr(loss, "g_loss_nonsaturating", lambda logits: real(logits) + 0 * real(logits).item())
    t = _trainer(tmp_path, "default", "gan", "A")
    r = _reads_in_steps(t)
    assert r.count == 2 and all("_local_scalar_dense" in w for w in r.where), r.where
    with HostReads() as r:
        bool(torch.ones(2).all())
        torch.ones(3).tolist()
        t.step()                         # Adam's CPU step counters, not ignored here
    assert r.count >= 2 + len(adam_host_steps(t.opt_D, t.opt_G)), r.where
    h = HostReads()
    assert h.reads(torch.ops.aten._to_copy.default, (torch.ones(1),), {"device": torch.device("cuda")})
    assert h.reads(torch.ops.aten.nonzero.default, (torch.ones(1),), {})


def test_a_tick_reads_the_device_once(tmp_path):
    t = _trainer(tmp_path)
    for _ in range(2):
        t.step(); t.it += 1
    with HostReads() as r:
        means, diverged = t.log.read()
    assert r.count == 1 and diverged is None
    assert set(means) >= {"D_adv", "G_adv", "q_mean", "kernel_entropy_std"}
    assert means["D_adv"] > 0


def test_the_device_log_names_the_first_non_finite_term(tmp_path):
    from bncr.train.steplog import StepLog
    log = StepLog(torch.device("cpu"))
    it = torch.tensor(0)
    for i, (a, b) in enumerate([(1.0, 2.0), (1.0, float("inf")), (float("nan"), float("nan"))]):
        it.fill_(i)
        log.record({"a": torch.tensor(a), "b": torch.tensor(b)}, {"a": torch.tensor(a), "b": torch.tensor(b)}, it)
        log.count(["a", "b"])
    means, d = log.read()
    assert (d.term, d.iteration) == ("b", 1) and d.value == float("inf")
    log.reset()
    log.record({"a": torch.tensor(4.0)}, {}, it)
    log.count(["a"])
    assert log.read()[0] == {"a": 4.0}


def _explain(fn, *args):
    torch._dynamo.reset()
    return torch._dynamo.explain(fn)(*args)


def test_pipeline_forward_is_one_graph():
    """BNCR-GAN's whole pipeline (G_k, G_n, G_q, blur, noise, differentiable JPEG) in train mode, and G_x."""
    from bncr.nets.resnet import ResNetGenerator
    cfg = TrainConfig(model="bncr-gan", setting="N", width=8, z_dim=16)
    pipe = DegradationPipeline.from_config(cfg, get_model("bncr-gan"), get_setting("N"), 32).train()
    lat = pipe.sample_latents(4, torch.Generator().manual_seed(0), "cpu")
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    e = _explain(pipe, x, lat)
    assert (e.graph_count, e.graph_break_count) == (1, 0), [b.reason for b in e.break_reasons]
    e = _explain(ResNetGenerator(32, 8, 16), torch.randn(4, 16))
    assert e.graph_break_count == 0, [b.reason for b in e.break_reasons]


def test_explain_sees_an_inserted_break(monkeypatch):
    """The assertion above can fail: a value check that reads the device splits the graph."""
    import bncr.models.pipeline as pipeline
    real = pipeline.kernel_entropy

    def reading(k):
        if bool((k < 0).any()):
            raise ValueError("negative")
        return real(k)
    monkeypatch.setattr(pipeline, "kernel_entropy", reading)
    cfg = TrainConfig(model="bncr-gan", setting="N", width=8, z_dim=16)
    pipe = DegradationPipeline.from_config(cfg, get_model("bncr-gan"), get_setting("N"), 32).train()
    e = _explain(pipe, torch.rand(4, 3, 32, 32), pipe.sample_latents(4, torch.Generator().manual_seed(0), "cpu"))
    assert e.graph_break_count >= 1


@pytest.mark.parametrize("value,ok", [("auto", True), ("true", True), ("false", True), ("yes", False)])
def test_cuda_graph_and_compile_options_on_a_cpu(value, ok, tmp_path):
    """On a CPU both options are accepted and change nothing; a wish that cannot be met is said once in the log."""
    from bncr.errors import UserError
    if not ok:
        with pytest.raises(UserError, match="cuda_graph"):
            TrainConfig().override([f"cuda_graph={value}"]).validate()
        return
    t = _trainer(tmp_path, "default", "gan", "A", f"cuda_graph={value}", "compile=true", "iters=3")
    assert t._graph is None and not t._graph_wanted
    t.run()
    log = (tmp_path / "run" / "log.txt").read_text()
    assert ("cuda_graph=true: not used, the training device is cpu" in log) == (value == "true")
    assert "compile=true: not used, the training device is cpu" in log


def test_gpu_speed_benchmark_runs_in_its_reduced_cpu_form(tmp_path):
    """benchmarks/gpu_speed.py stays alive without a GPU: tiny nets, the CPU variants, a table row by row."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "gpu-speed.md"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root / "src"))
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_speed.py"), "--cpu-smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[2:4] for row in rows] == [[m, v] for v in ("eager+read", "sync-free")
                                                      for m in ("gan", "bncr-gan")]
    by = {tuple(row.split(" | ")[2:4]): row for row in rows}
    assert "no host read" in by["bncr-gan", "sync-free"] and "1 host reads" in by["bncr-gan", "eager+read"]
    assert "REDUCED CPU FORM" in out.read_text()


def test_checkpoint_keeps_the_device_generator_and_its_device(tmp_path):
    """The training state stores the run's generator (and the device it draws on); a state from another device type
    resumes with a reseeded generator and says so, since one device's generator state cannot seed another's."""
    t = _trainer(tmp_path, "default", "gan", "A", "iters=2", "snap_every=2")
    t.run()
    path = tmp_path / "run" / "training-state.pt"
    st = torch.load(path, weights_only=True)
    assert st["rng_device"] == "cpu" and torch.equal(st["rng"][0], t.gen.get_state())
    st["rng_device"] = "cuda"
    torch.save(st, path)
    cfg = t.cfg.override(["iters=3"])
    r = Trainer(cfg, tmp_path / "run", resume="auto", progress=False)
    assert not torch.equal(r.gen.get_state(), t.gen.get_state())
    r.run()
    assert "drew its random numbers on cuda, this run on cpu" in (tmp_path / "run" / "log.txt").read_text()


def test_a_replay_is_checked_against_the_eager_step(tmp_path):
    """The check a captured CUDA graph must pass before it is used, run here with eager stand-ins for the replay:
    an equal step is accepted and kept; one that draws differently is refused and the eager step's result kept."""
    ts = [_trainer(tmp_path / str(i), "default", "bncr-gan", "N") for i in range(4)]
    for t in ts:
        t.step(); t.it += 1
    ref = ts[0]
    want = ref.step(); ref.it += 1
    stats, why, diff = ts[1]._checked_replay(ts[1]._step)
    assert why is None and diff == 0.0 and all(torch.equal(stats[k], want[k]) for k in want)

    def wrong():
        torch.rand(1, generator=ts[2].gen)     # one draw more than the eager step
        return ts[2]._step()
    stats, why, _ = ts[2]._checked_replay(wrong)
    assert why is not None and "random draws" in why
    stats, why, _ = ts[3]._checked_replay(lambda: {k: v * (2 if k == "G_adv" else 1)
                                                    for k, v in ts[3]._step().items()})
    assert why is not None and "G_adv" in why
    for t in ts[1:]:
        for a, b in zip(t._state_tensors(), ref._state_tensors()):
            assert torch.equal(a, b)
        assert torch.equal(t.gen.get_state(), ref.gen.get_state())
