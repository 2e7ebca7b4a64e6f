"""GPU speed of the training step: gan and bncr-gan at the paper's nets, each way the step can run (issue 17).

Variants (TrainConfig options; the same Trainer.step every time):

    eager+read   the step followed by a read of the device log every iteration (a host wait per step, what a
                 run with tick=1 pays; the step before issue 17 waited ~44 times: docs/research/train-speed.md)
    sync-free    eager steps, nothing read between ticks (cuda_graph=false)
    captured     the whole step captured once as a CUDA graph and replayed (cuda_graph=true)
    compiled     torch.compile of G_x and the pipeline, eager steps (compile=true, cuda_graph=false)
    captured+compiled   both

For each: ms per step and it/s (CUDA-synchronised around the timed block only), CUDA kernels per step and
GPU-busy ms per step from torch.profiler, whether one step passes torch.cuda.set_sync_debug_mode("error"), and
the largest parameter difference from the eager step after the same steps (the captured step must equal it).
Header lines: the machine, and whether the compiled differentiable JPEG equals the eager one bit for bit.
The Markdown table is rewritten (atomically) after every row, so a run cut short keeps what it measured.

    python benchmarks/gpu_speed.py --out docs/research/tables/gpu-speed.md        # ~5 min on one GPU
    python benchmarks/gpu_speed.py --cpu-smoke --out /tmp/gpu-speed.md           # tiny nets, CPU, seconds

Without a CUDA device it runs the reduced form (--cpu-smoke): tiny nets, 2 timed steps, the variants that exist
on a CPU (eager+read, sync-free), operations per step instead of kernels, host reads counted by
bncr.train.steplog.HostReads instead of the sync debug mode; tests/test_sync_free.py keeps it alive.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import OpCounter, make_trainer  # noqa: E402

from bncr.io import atomic_write_text  # noqa: E402
from bncr.train.loop import GRAPH_WARMUP, Trainer  # noqa: E402
from bncr.train.steplog import HostReads, adam_host_steps  # noqa: E402

VARIANTS = {"eager+read": ["cuda_graph=false"], "sync-free": ["cuda_graph=false"], "captured": ["cuda_graph=true"],
            "compiled": ["cuda_graph=false", "compile=true"], "captured+compiled": ["cuda_graph=true", "compile=true"]}
CPU_VARIANTS = ("eager+read", "sync-free")
HEADER = ["width", "D batch", "model", "variant", "ms/step", "it/s", "ratio to gan", "kernels/step",
          "GPU busy ms/step", "sync check", "max |Δθ| vs eager"]


class Table:
    """A Markdown table written whole after each row (temp file + rename)."""

    def __init__(self, path: Path, head: list[str]):
        self.path, self.head, self.rows = path, head, []

    def add(self, row: list) -> None:
        self.rows.append([str(c) for c in row])
        cols = [HEADER, ["---"] * len(HEADER), *self.rows]
        lines = ["| " + " | ".join(r) + " |" for r in cols]
        atomic_write_text(self.path, "\n".join(self.head) + "\n\n" + "\n".join(lines) + "\n")
        print("| " + " | ".join(self.rows[-1]) + " |", flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_steps(t: Trainer, n: int, read_each: bool) -> None:
    for _ in range(n):
        t.step()
        t.it += 1
        if read_each:
            t.log.read()


def timed(t: Trainer, steps: int, read_each: bool) -> float:
    """Seconds per step over `steps` steps (one synchronisation before and after the block)."""
    sync()
    t0 = time.perf_counter()
    run_steps(t, steps, read_each)
    sync()
    return (time.perf_counter() - t0) / steps


def kernels_and_busy(t: Trainer, steps: int, read_each: bool) -> tuple[float, float]:
    """(CUDA kernels per step, GPU-busy ms per step) from torch.profiler; on a CPU (operations per step, nan)."""
    if not torch.cuda.is_available():
        with OpCounter() as c:
            run_steps(t, steps, read_each)
        return sum(c.ops.values()) / steps, float("nan")
    from torch.profiler import ProfilerActivity, profile
    sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run_steps(t, steps, read_each)
        sync()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in kernels)
    return len(kernels) / steps, busy_us / 1000 / steps


def sync_check(t: Trainer, read_each: bool) -> str:
    """One step under torch.cuda.set_sync_debug_mode("error") (on a CPU: HostReads' count)."""
    if not torch.cuda.is_available():
        with HostReads(ignore=adam_host_steps(t.opt_D, t.opt_G)) as r:
            run_steps(t, 1, read_each)
        return "no host read" if r.count == 0 else f"{r.count} host reads ({r.where[0]})"
    torch.cuda.set_sync_debug_mode("error")
    try:
        run_steps(t, 1, read_each)
        return "no sync"
    except RuntimeError as e:
        return "syncs: " + str(e).splitlines()[0][:80].replace("|", "/")
    finally:
        torch.cuda.set_sync_debug_mode(0)


def params(t: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for m in ("G_x", "D_y", "pipe") for p in getattr(t.nets, m).parameters()]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max([(p - q).abs().max().item() for p, q in zip(a, b)], default=0.0)


def jpeg_compile_check() -> str:
    """Whether the compiled differentiable JPEG equals the eager one bit for bit on this device."""
    from bncr.degradations.diff_jpeg import diff_jpeg
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(16, 3, 32, 32, generator=g, device=dev)
    q = torch.rand(16, generator=g, device=dev) * 98 + 2
    try:
        same = torch.equal(torch.compile(diff_jpeg, fullgraph=True, dynamic=False)(x, q), diff_jpeg(x, q))
    except Exception as e:  # noqa: BLE001 - report, do not stop the benchmark
        return f"compile failed ({type(e).__name__}: {str(e).splitlines()[0][:100]})"
    return "bit-identical" if same else "DIFFERENT (compile must stay off for exactness)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu-speed.md", help="Markdown table to write (rewritten after each row)")
    ap.add_argument("--configs", default="128:64", help="width:batch pairs (default: the paper's nets)")
    ap.add_argument("--models", default="gan,bncr-gan")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--setting", default="N")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per row (after warm-up and capture)")
    ap.add_argument("--profile-steps", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=290, help="rows not started by then are left out")
    ap.add_argument("--cpu-smoke", action="store_true", help="the reduced CPU form (automatic without CUDA)")
    args = ap.parse_args()
    smoke = args.cpu_smoke or not torch.cuda.is_available()
    variants = args.variants.split(",")
    if smoke:
        args.configs, args.steps, args.profile_steps = "8:4", 2, 1
        variants = [v for v in variants if v in CPU_VARIANTS]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"--variants: unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    t_start = time.time()
    dev = (f"{torch.cuda.get_device_name()} ({torch.version.cuda})" if torch.cuda.is_available()
           else f"CPU ({platform.machine()}, {os.cpu_count()} cores)")
    head = [f"Machine: {dev}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}; setting {args.setting}; "
            f"{args.steps} timed steps per row after {GRAPH_WARMUP + 2} warm-up steps"
            + ("; REDUCED CPU FORM (tiny nets, not a speed measurement; kernels = tensor operations)" if smoke else ""),
            f"Compiled differentiable JPEG vs eager: {jpeg_compile_check() if not smoke else 'not checked (CPU form)'}"]
    table = Table(Path(args.out), head)
    models = args.models.split(",")
    extra = ["width=8", "d_width=8", "z_dim=16", "count=32"] if smoke else []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.configs.split(","):
            width, batch = map(int, pair.split(":"))
            gan_sec: dict[str, float] = {}    # the first model's seconds per step, by variant
            reference: dict[str, list] = {}   # per model: parameters of the first variant after the warm-up steps
            for v in variants:                # variants outside: a cut budget still leaves both models per variant
                for model in models:
                    if time.time() - t_start > args.budget_s:
                        table.add([width, batch, model, v, "skipped (time budget)", *[""] * 6])
                        continue
                    t = make_trainer(model, width, batch, args.setting, os.path.join(tmp, v),
                                     torch.get_num_threads(), tuple(extra + VARIANTS[v]), "default")
                    read_each = v == "eager+read"
                    run_steps(t, GRAPH_WARMUP + 2, read_each)   # warm-up; a captured variant captures here
                    if model not in reference:
                        reference[model], diff = params(t), f"(reference: {v})"
                    else:
                        diff = f"{max_diff(reference[model], params(t)):.2g}"
                    sec = timed(t, args.steps, read_each)
                    if model == models[0]:
                        gan_sec[v] = sec
                    kern, busy = kernels_and_busy(t, args.profile_steps, read_each)
                    check = sync_check(t, read_each)
                    ratio = f"{sec / gan_sec[v]:.2f}" if v in gan_sec else "–"
                    table.add([width, batch, model, v, f"{sec * 1000:.1f}", f"{1 / sec:.1f}", ratio,
                               f"{kern:.0f}", "–" if busy != busy else f"{busy:.2f}", check, diff])
                    if any("cuda_graph" in n or "compile" in n for n in t.notes):
                        print(f"  {model} {v}: " + "; ".join(t.notes), flush=True)
                    del t
                    gc.collect()
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
    print(f"wrote {args.out} in {time.time() - t_start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
