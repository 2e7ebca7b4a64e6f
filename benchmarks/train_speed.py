"""Training speed: seconds per iteration of `gan` and `bncr-gan` (and others) at the same nets and batch.

Measured in one process, models interleaved round by round (these machines are shared and noisy),
reported as medians and as the ratio to `gan`. Usage:

    python benchmarks/train_speed.py                       # paper nets (width 128, batch 64) + CPU widths
    python benchmarks/train_speed.py --configs 32:32 --models gan,bncr-gan --steps 20
    python benchmarks/train_speed.py --count-ops              # tensor operations per step instead of time
    python benchmarks/train_speed.py --models gan,bncr-gan,bncr-gan@q_grad=ste   # per-model options after "@"
    python benchmarks/train_speed.py --preset laptop --threads 1   # a preset's nets, batch and options

--count-ops counts the tensor operations one training step dispatches (forward, backward, optimiser;
views and other metadata-only operations excluded). Each one is at least one kernel launch on a GPU,
where at 32x32 the step is launch-bound (docs/research/train-speed.md), so their ratio to `gan` is a
deterministic stand-in for the GPU time ratio that any machine can measure. Adam is counted with
foreach=True, as it runs on a GPU.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bncr.train.config import preset
from bncr.train.loop import Trainer


def make_trainer(model: str, width: int, batch: int, setting: str, out: str, threads: int,
                 overrides: tuple[str, ...] = (), preset_name: str = "default") -> Trainer:
    """`model` may carry its own options: "bncr-gan@q_grad=ste@ds=0" (after the common `overrides`)."""
    name, *own = model.split("@")
    cfg = preset(preset_name).override([f"model={name}", f"setting={setting}", f"width={width}", f"batch={batch}",
                                        "count=256", f"iters={10**9}", f"tick={10**9}", f"image_every={10**9}",
                                        f"snap_every={10**9}", f"threads={threads}"])
    cfg = cfg.override(list(overrides) + own)
    tag = "".join(c if c.isalnum() or c in "-_" else "_" for c in model)
    return Trainer(cfg, os.path.join(out, f"{tag}-{width}-{batch}"), progress=False)


# Operations that only make a new view of a tensor (no kernel on a GPU).
_META_OPS = {"detach", "view", "t", "transpose", "expand", "unsqueeze", "select", "_unsafe_view", "as_strided",
             "slice", "permute", "squeeze", "alias", "reshape", "unbind", "split", "split_with_sizes",
             "lift_fresh", "unfold", "_reshape_alias"}


class OpCounter(TorchDispatchMode):
    """Counts dispatched tensor operations by name (metadata-only ones excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in _META_OPS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def count_ops(trainer: Trainer) -> int:
    """Tensor operations of one training step (after a warm-up step that builds cached constants).

    Adam runs with foreach=True, its default on GPUs (a few multi-tensor operations instead of a loop
    over parameters), whatever the machine.
    """
    for opt in (trainer.opt_G, trainer.opt_D):
        for group in opt.param_groups:
            group["foreach"] = True
    trainer.step()
    with OpCounter() as c:
        trainer.step()
    return sum(c.ops.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=None,
                    help="width:batch pairs (default 128:64,32:32,16:32; with --preset: the preset's own)")
    ap.add_argument("--preset", default="default", help="option set the models start from (`bncr presets`)")
    ap.add_argument("--models", default="gan,bncr-gan")
    ap.add_argument("--setting", default="N")
    ap.add_argument("--steps", type=int, default=10, help="timed rounds per model (after 2 warm-up steps)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--count-ops", action="store_true", help="count tensor operations per step instead of timing")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="TrainConfig override for every model (e.g. q_grad=ste)")
    args = ap.parse_args()
    if args.configs is None:
        p = preset(args.preset)
        args.configs = f"{p.width}:{p.batch}" if args.preset != "default" else "128:64,32:32,16:32"
    models = args.models.split(",")
    if args.count_ops:
        print(f"torch {torch.__version__}; setting {args.setting}; options {args.set}; tensor operations per step\n")
        print("| width | D batch | model | ops per step | ratio to gan |")
        print("|---|---|---|---|---|")
        for width, batch, trainers in _trainers_per_config(args, models):
            counts = {m: count_ops(t) for m, t in trainers.items()}
            for m in models:
                print(f"| {width} | {batch} | {m} | {counts[m]} | {counts[m] / counts[models[0]]:.2f} |", flush=True)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.threads} threads, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"preset {args.preset}; setting {args.setting}; options {args.set}; G batch = 2 x D batch; R1 every r1_every steps (1: every step)\n")
    print("| width | D width | D batch | model | s/iter (median) | it/s | ratio to gan |")
    print("|---|---|---|---|---|---|---|")
    for width, batch, trainers in _trainers_per_config(args, models):
        times = time_steps(trainers, args.steps)
        base = statistics.median(times[models[0]])
        for m in models:
            med = statistics.median(times[m])
            dw = trainers[m].cfg.d_width or width
            print(f"| {width} | {dw} | {batch} | {m} | {med:.3f} | {1 / med:.2f} | {med / base:.2f} |", flush=True)


def _trainers_per_config(args, models):
    """(width, batch, {model: Trainer}) for each width:batch pair of --configs."""
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.configs.split(","):
            width, batch = map(int, pair.split(":"))
            yield width, batch, {m: make_trainer(m, width, batch, args.setting, tmp, args.threads, args.set,
                                                 args.preset) for m in models}


def time_steps(trainers: dict[str, Trainer], steps: int) -> dict[str, list[float]]:
    """Seconds per step of each trainer, rounds interleaved (after 2 warm-up steps each).

    A round runs a block of as many steps as the largest r1_every (lazy R1 makes every r1_every-th step dearer),
    so each entry is the mean step time over a whole R1 cycle; the iteration counter advances as in training."""
    block = max(t.cfg.r1_every for t in trainers.values())
    for t in trainers.values():
        for _ in range(2):
            t.step()
            t.it += 1
    times: dict[str, list[float]] = {m: [] for m in trainers}
    for _ in range(steps):
        for m, t in trainers.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(block):
                t.step()
                t.it += 1
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[m].append((time.perf_counter() - t0) / block)
    return times


if __name__ == "__main__":
    main()
