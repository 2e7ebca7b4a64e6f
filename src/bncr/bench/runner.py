"""Running a grid: each cell trains (resume=auto) and then evaluates; finished cells are skipped.

A cell is finished when its final snapshot ``snapshot-<iters>.pt`` exists and every metric file of the
grid (``metric-<name>.jsonl``) holds a line for that snapshot. Interrupting a grid and running it again
therefore redoes nothing that was finished: training continues from ``training-state.pt`` and
evaluation reuses metric lines of the same snapshot and protocol. Each finished cell gets a
``result.json`` (metrics best/last, iterations, wall times, exact commands, machine); grids with
``commit_results`` (cpu-mini) also copy it, the metric files and a small sample grid to
``<results>/<grid>/<dataset>/<setting>/<model>/``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shlex
import shutil
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import UserError
from ..io import atomic_path, atomic_write_text, ensure_writable_dir
from .grids import Cell, Grid, select

RESULT_FILE = "result.json"
SAMPLES_N = 64


@dataclass
class BenchOptions:
    """Options of `bncr benchmark` that shape the cells (None: the grid's default)."""

    root: Path = Path("runs")
    preset: Optional[str] = None
    iters: Optional[int] = None
    seeds: Optional[tuple[int, ...]] = None
    only: Optional[str] = None
    data_root: Optional[str] = None
    ffhq: Optional[str] = None
    metrics: Optional[tuple[str, ...]] = None
    num: Optional[int] = None
    snapshots: Optional[str] = None
    inception: Optional[str] = None
    batch: int = 64
    sets: tuple[str, ...] = ()
    progress: bool = True
    results_dir: Path = Path("benchmarks/results")
    device: Optional[str] = None

    # resolved values
    def metric_kinds(self, grid: Grid) -> tuple[str, ...]:
        return tuple(self.metrics or grid.metrics)

    def eval_num(self, grid: Grid) -> int:
        return int(self.num or grid.num)

    def eval_snapshots(self, grid: Grid) -> str:
        return self.snapshots or grid.snapshots

    def preset_name(self, grid: Grid) -> str:
        return self.preset or grid.preset


# ---------------------------------------------------------------------------------------------- configs
def dataset_spec(dataset: str, opts: BenchOptions) -> str:
    """What `open_dataset` gets for a grid's dataset label (FFHQ is an image folder)."""
    if dataset == "ffhq":
        if opts.ffhq:
            return str(Path(opts.ffhq).expanduser())
        from ..data import data_root
        return str(data_root() / "ffhq")
    return dataset


def source_cell(cell: Cell, grid: Grid) -> Optional[tuple[Cell, Grid]]:
    """The BNCR-GAN cell whose learned degradation a bncr-gan+unir cell uses (same dataset, setting, seed)."""
    from .grids import get_grid
    if grid.kind != "restoration" or cell.model != "bncr-gan+unir":
        return None
    src = get_grid(grid.source_grid)
    return Cell(src.name, cell.dataset, cell.setting, "bncr-gan", cell.seed), src


def source_status(cell: Cell, grid: Grid, opts: BenchOptions) -> Optional[CellStatus]:
    """The status of a bncr-gan+unir cell's BNCR-GAN cell, under its own grid's options (the restoration grid's
    --iters, --set, --metric and --num are not the BNCR-GAN's); None for other cells."""
    src = source_cell(cell, grid)
    if src is None:
        return None
    own = dataclasses.replace(opts, preset=None, iters=None, seeds=None, only=None, metrics=None, num=None,
                              snapshots=None, sets=())
    return cell_status(src[0], src[1], own)


def restore_cell_config(cell: Cell, grid: Grid, opts: BenchOptions):
    """The RestoreConfig of a restoration cell: restoration preset, then method / F / data / seed, --iters, --set."""
    from ..restore.config import restore_preset
    from .grids import RESTORERS, get_grid
    if cell.model not in RESTORERS:
        raise UserError(f"[{cell.id}] unknown restorer {cell.model!r}: one of {', '.join(RESTORERS)}")
    method, measurement = RESTORERS[cell.model]
    cfg = restore_preset(opts.preset_name(grid))
    cfg.method, cfg.setting, cfg.seed = method, cell.setting, int(cell.seed)
    cfg.dataset = dataset_spec(cell.dataset, opts)
    cfg.data_root = opts.data_root if cell.dataset != "ffhq" else None
    cfg.resolution = grid.resolution
    if measurement == "learned":
        cfg.run = str(source_cell(cell, grid)[0].run_dir(opts.root))     # the data default to the run's
    else:   # the same training images as the source grid's BNCR-GAN cells (e.g. laptop: 5,000)
        from ..train.config import preset
        cfg.count = preset(get_grid(grid.source_grid).preset).count
        cfg.known_setting = cell.setting if measurement == "known" else None
    if opts.iters is not None:
        cfg.iters = int(opts.iters)
    return cfg.override(list(opts.sets))


def cell_config(cell: Cell, grid: Grid, opts: BenchOptions):
    """The TrainConfig of a cell: preset, then model/setting/dataset/seed, then --iters, then --set (a restoration
    grid's cells: their RestoreConfig)."""
    from ..train.config import preset
    if grid.kind == "restoration":
        return restore_cell_config(cell, grid, opts)
    cfg = preset(opts.preset_name(grid))
    cfg.model, cfg.setting, cfg.seed = cell.model, cell.setting, int(cell.seed)
    cfg.dataset = dataset_spec(cell.dataset, opts)
    cfg.data_root = opts.data_root if cell.dataset != "ffhq" else None
    cfg.resolution = grid.resolution
    if opts.iters is not None:
        cfg.iters = int(opts.iters)
    return cfg.override(list(opts.sets))


def grid_cells(grid: Grid, opts: BenchOptions) -> list[Cell]:
    return select(grid.expand(opts.seeds), opts.only)


# ---------------------------------------------------------------------------------------------- commands
def _common_flags(grid: Grid, opts: BenchOptions) -> list[str]:
    a: list[str] = []
    for flag, val in (("--preset", opts.preset), ("--iters", opts.iters), ("--data-root", opts.data_root),
                      ("--ffhq", opts.ffhq), ("--num", opts.num), ("--snapshots", opts.snapshots),
                      ("--inception", opts.inception), ("--device", opts.device)):
        if val is not None:
            a += [flag, str(val)]
    for m in opts.metrics or ():
        a += ["--metric", m]
    if opts.batch != 64:
        a += ["--batch", str(opts.batch)]
    for s in opts.sets:
        a += ["--set", s]
    return a


def benchmark_command(cell: Cell, grid: Grid, opts: BenchOptions) -> str:
    """`bncr benchmark --grid G --root R --only <cell id> ...`: runs (or resumes) exactly this cell."""
    a = ["bncr", "benchmark", "--grid", grid.name, "--root", str(opts.root), "--only", cell.id]
    if grid.commit_results and str(opts.results_dir) != "benchmarks/results":
        a += ["--results", str(opts.results_dir)]
    return shlex.join(a + _common_flags(grid, opts))


def train_eval_commands(cell: Cell, grid: Grid, opts: BenchOptions) -> tuple[str, str]:
    """The equivalent `bncr train ... --resume auto` and `bncr eval ...` of a cell (same config and metrics)."""
    run = cell.run_dir(opts.root)
    if grid.kind == "restoration":
        cfg = restore_cell_config(cell, grid, opts)
        t = ["bncr", "restore", "train", "--method", cfg.method, "--setting", cell.setting, "--dataset", cfg.dataset,
             "--preset", opts.preset_name(grid), "--seed", str(cell.seed), "--out", str(run), "--resume", "auto",
             "--no-progress"]
        t += ["--known-setting", cfg.known_setting] if cfg.known_setting else []
        t += ["--run", cfg.run] if cfg.run else []
        t += ["--data-root", cfg.data_root] if cfg.data_root else []
        t += ["--count", str(cfg.count)] if cfg.count is not None and not cfg.run else []
        t += ["--iters", str(opts.iters)] if opts.iters is not None else []
        for s in opts.sets:
            t += ["--set", s]
        e = ["bncr", "restore", "eval", str(run), "--setting", grid.test_setting, "--num", str(opts.eval_num(grid))]
        for m in opts.metric_kinds(grid):
            e += ["--metric", m]
        return shlex.join(t), shlex.join(e)
    t = ["bncr", "train", "--model", cell.model, "--setting", cell.setting,
         "--dataset", dataset_spec(cell.dataset, opts), "--preset", opts.preset_name(grid),
         "--seed", str(cell.seed), "--out", str(run), "--resume", "auto", "--no-progress"]
    if opts.data_root and cell.dataset != "ffhq":
        t += ["--data-root", opts.data_root]
    if grid.resolution:
        t += ["--resolution", str(grid.resolution)]
    if opts.iters is not None:
        t += ["--iters", str(opts.iters)]
    for s in opts.sets:
        t += ["--set", s]
    e = ["bncr", "eval", str(run), "--num", str(opts.eval_num(grid)), "--snapshots", opts.eval_snapshots(grid)]
    for m in opts.metric_kinds(grid):
        e += ["--metric", m]
    if opts.inception:
        e += ["--inception", opts.inception]
    if opts.batch != 64:
        e += ["--batch", str(opts.batch)]
    return shlex.join(t), shlex.join(e)


# ---------------------------------------------------------------------------------------------- status
@dataclass
class CellStatus:
    state: str      # done | trained | partial | todo
    detail: str
    iteration: int = 0


def _last_iteration(run: Path, grid: Grid) -> int:
    from ..metrics.evaluate import list_snapshots, snapshot_iteration
    snaps = sorted(run.glob("restorer-*.pt"), key=snapshot_iteration) if grid.kind == "restoration" \
        else list_snapshots(run)
    return snapshot_iteration(snaps[-1]) if snaps else 0


def final_snapshot(run: Path, iters: int, grid: Optional[Grid] = None) -> Path:
    """The file a finished cell has: its final G_x snapshot (a restoration cell: its final restorer)."""
    prefix = "restorer" if grid is not None and grid.kind == "restoration" else "snapshot"
    return run / f"{prefix}-{int(iters):06d}.pt"


def metrics_done(run: Path, snapshot_name: str, names: Sequence[str]) -> list[str]:
    """The metric names (of `names`) whose file has a line for `snapshot_name`."""
    from ..metrics.evaluate import metric_file, read_metric_lines
    return [n for n in names if any(r.get("snapshot") == snapshot_name for r in read_metric_lines(metric_file(run, n)))]


def cell_status(cell: Cell, grid: Grid, opts: BenchOptions) -> CellStatus:
    run = cell.run_dir(opts.root)
    iters = cell_config(cell, grid, opts).iters
    final = final_snapshot(run, iters, grid)
    names = grid.metric_names(opts.metric_kinds(grid), opts.eval_num(grid))
    if final.is_file():
        done = metrics_done(run, final.name, names)
        if len(done) == len(names):
            return CellStatus("done", f"{iters} it, {', '.join(names)}", iters)
        missing = [n for n in names if n not in done]
        return CellStatus("trained", f"{iters} it, evaluation pending ({', '.join(missing)})", iters)
    last = _last_iteration(run, grid) if run.is_dir() else 0
    if last or (run / "config.json").is_file():
        return CellStatus("partial", f"snapshot at {last} of {iters} it", last)
    src = source_cell(cell, grid)
    if src is not None:
        st = source_status(cell, grid, opts)
        return CellStatus("todo", f"0 of {iters} it; uses {src[1].name} cell {src[0].id} ({st.state})", 0)
    return CellStatus("todo", f"0 of {iters} it", 0)


# ---------------------------------------------------------------------------------------------- results
def training_times(run: Path, tick: int = 100) -> dict[str, Any]:
    """Training wall time from stats.jsonl: sum over ticks of (iterations in the tick) / it_per_s.

    Counts every segment of a resumed run (a tick that restarts below the previous one covers `tick`
    iterations); excludes start-up (opening and degrading the data, building the nets).
    """
    p = run / "stats.jsonl"
    total, prev, rates = 0.0, 0, []
    if p.is_file():
        for line in p.read_text().splitlines():
            try:
                r = json.loads(line)
                it, rate = int(r["iteration"]), float(r["it_per_s"])
            except (ValueError, KeyError, TypeError):
                continue
            if it <= prev:  # resumed from an earlier training state: this tick covers `tick` iterations
                prev = max(0, it - int(tick))
            if rate > 0 and math.isfinite(rate):
                total += (it - prev) / rate
                rates.append(rate)
            prev = it
    rates.sort()
    med = rates[len(rates) // 2] if rates else None
    return {"train_seconds": round(total, 1), "it_per_s_median": None if med is None else round(med, 3)}


def summarise_metrics(run: Path, names: Sequence[str]) -> dict[str, dict]:
    """Per metric: best (lowest) and last snapshot values from the metric files (latest line per snapshot)."""
    from ..metrics.evaluate import metric_file, read_metric_lines
    out: dict[str, dict] = {}
    for n in names:
        by_snap: dict[str, dict] = {}
        for r in read_metric_lines(metric_file(run, n)):
            if "snapshot" in r and isinstance(r.get("value"), (int, float)):
                by_snap[r["snapshot"]] = r
        if not by_snap:
            continue
        recs = sorted(by_snap.values(), key=lambda r: int(r.get("iteration", -1)))
        best = min(recs, key=lambda r: (float(r["value"]), int(r.get("iteration", -1))))
        last = recs[-1]
        secs = sum(float((r.get("seconds") or {}).get("metric", 0.0)) if isinstance(r.get("seconds"), dict) else 0.0
                   for r in recs)
        out[n] = {"kind": last.get("kind"), "best": best["value"], "best_iteration": best.get("iteration"),
                  "best_std": best.get("std"), "last": last["value"], "last_iteration": last.get("iteration"),
                  "last_std": last.get("std"), "snapshots": len(recs), "metric_seconds": round(secs, 2),
                  "feature_seconds": {r["snapshot"]: (r.get("seconds") or {}).get("generate_and_features")
                                      for r in recs if isinstance(r.get("seconds"), dict)},
                  "protocol": last.get("protocol")}
    return out


def machine_info(device: Optional[str] = None) -> dict[str, Any]:
    import torch
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def training_machine(run: Path) -> dict[str, Any]:
    """Where a run was trained (it may differ from where it is evaluated): torch and device from its
    config.json; runs written before config.json held the device fall back to the first line of log.txt."""
    out: dict[str, Any] = {}
    try:
        c = json.loads((run / "config.json").read_text())
        out = {"torch": c.get("torch"), "device": c.get("device")}
    except (OSError, ValueError):
        pass
    if not out.get("device"):
        try:
            first = (run / "log.txt").read_text().splitlines()[0]
            out["device"] = first.rsplit("device ", 1)[1].strip() if "device " in first else None
        except (OSError, IndexError):
            pass
    return out


def trained_config(run: Path, cfg: Any, grid: Grid) -> dict[str, Any]:
    """The options a GAN `run` was trained with (its config.json), else `cfg`'s: a run trained before a preset
    changed, or by hand with other options, keeps its own record, so that collect can mark it (option_differences)."""
    if grid.kind == "restoration" or not (run / "config.json").is_file():
        return cfg.to_dict()
    from ..metrics.evaluate import run_config
    return run_config(run)["config"]


def build_result(cell: Cell, grid: Grid, opts: BenchOptions, cfg: Any, *, train_seconds_invocation: Optional[float],
                 eval_seconds_invocation: Optional[float]) -> dict[str, Any]:
    from .. import __version__
    run = cell.run_dir(opts.root)
    names = grid.metric_names(opts.metric_kinds(grid), opts.eval_num(grid))
    metrics = summarise_metrics(run, names)
    feat = {}
    for m in metrics.values():
        feat.update({k: v for k, v in m["feature_seconds"].items() if v is not None})
    bench_cmd = benchmark_command(cell, grid, opts)
    train_cmd, eval_cmd = train_eval_commands(cell, grid, opts)
    return {
        "cell": cell.id, "grid": grid.name, "dataset": cell.dataset, "setting": cell.setting, "model": cell.model,
        "seed": cell.seed, "status": "finished", "iterations": int(cfg.iters),
        **training_times(run, cfg.tick),
        "train_seconds_invocation": None if train_seconds_invocation is None else round(train_seconds_invocation, 1),
        "eval_seconds": round(sum(feat.values()) + sum(m["metric_seconds"] for m in metrics.values()), 1),
        "eval_seconds_invocation": None if eval_seconds_invocation is None else round(eval_seconds_invocation, 1),
        "metrics": {n: {k: v for k, v in m.items() if k != "feature_seconds"} for n, m in metrics.items()},
        "config": trained_config(run, cfg, grid),
        "commands": {"benchmark": bench_cmd, "train": train_cmd, "eval": eval_cmd},
        "machine": machine_info(opts.device), "train_machine": training_machine(run), "bncr_version": __version__,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def results_dir(cell: Cell, opts: BenchOptions) -> Path:
    return Path(opts.results_dir) / cell.grid / cell.dataset / cell.setting / cell.model


def write_sample_grid(snapshot: Path, path: Path, n: int = SAMPLES_N, seed: int = 0) -> None:
    """An 8x8 PNG grid of clean samples x^g of G_x (EMA) from `snapshot` (latents from `seed`)."""
    from PIL import Image

    from ..api import load_generator, sample_images
    from ..train.visual import grid as make_grid
    imgs = sample_images(load_generator(snapshot), n, seed=seed).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(make_grid(imgs, nrow=int(math.ceil(math.sqrt(n))))).save(tmp, format="PNG", optimize=True)


def copy_results(cell: Cell, grid: Grid, opts: BenchOptions, result: dict, iters: int) -> Path:
    """Copy a finished cell's small files to <results>/<grid>/<dataset>/<setting>/<model>/ (suffix -seed<k>)."""
    run = cell.run_dir(opts.root)
    dest = ensure_writable_dir(results_dir(cell, opts))
    sfx = f"seed{cell.seed}"
    for n in grid.metric_names(opts.metric_kinds(grid), opts.eval_num(grid)):
        src = run / f"metric-{n}.jsonl"
        if src.is_file():
            with atomic_path(dest / f"metric-{n}-{sfx}.jsonl") as tmp:
                shutil.copyfile(src, tmp)
    snap = final_snapshot(run, iters, grid)
    if grid.kind == "restoration" and (run / "final.png").is_file():   # the before | after picture
        with atomic_path(dest / f"samples-{sfx}.png") as tmp:
            shutil.copyfile(run / "final.png", tmp)
    elif snap.is_file():
        write_sample_grid(snap, dest / f"samples-{sfx}.png")
    atomic_write_text(dest / f"result-{sfx}.json", json.dumps(result, indent=1, sort_keys=True) + "\n")
    return dest


# ---------------------------------------------------------------------------------------------- running
TrainFn = Callable[..., Any]
EvalFn = Callable[..., Any]


def _default_train(cfg: Any, out: Path, resume: str, progress: bool) -> Any:
    from ..train.loop import train
    return train(cfg, out, resume=resume, progress=progress)


def _default_eval(run: Path, **kw: Any) -> Any:
    from ..metrics.evaluate import evaluate_run
    return evaluate_run(run, **kw)


def _restore_train(cfg: Any, out: Path, resume: str, progress: bool) -> Any:
    from ..restore.train import train_restorer
    return train_restorer(cfg, out, resume=resume, progress=progress)


def run_cell(cell: Cell, grid: Grid, opts: BenchOptions, *, train_fn: Optional[TrainFn] = None,
             eval_fn: Optional[EvalFn] = None, extractor: Any = None,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (resume=auto) and evaluate one cell unless it is finished; returns its result.json content.

    `train_fn(cfg, run_dir, resume="auto", progress=...)` and `eval_fn(run_dir, metrics=..., num=...,
    snapshots=..., ...)` default to bncr.train.loop.train and bncr.metrics.evaluate.evaluate_run (restoration
    grids: bncr.restore.train.train_restorer and bncr.restore.evaluate.evaluate_restoration_run).
    """
    if grid.kind == "restoration":
        import functools

        from ..restore.evaluate import evaluate_restoration_run
        train_fn = train_fn or _restore_train
        eval_fn = eval_fn or functools.partial(evaluate_restoration_run, test_setting=grid.test_setting,
                                               data_root=opts.data_root)
        src = source_cell(cell, grid)
        if src is not None and source_status(cell, grid, opts).state not in ("done", "trained"):
            raise UserError(f"[{cell.id}] needs the trained BNCR-GAN of cell {src[0].id} of grid {src[1].name}: "
                            f"run `bncr benchmark --grid {src[1].name} --root {opts.root} --only {src[0].id}` first")
    train_fn = train_fn or _default_train
    eval_fn = eval_fn or _default_eval
    cfg = cell_config(cell, grid, opts)
    run = cell.run_dir(opts.root)
    st = cell_status(cell, grid, opts)
    t_train = t_eval = None
    if st.state == "done":
        log(f"[{cell.id}] finished ({st.detail}); skipped")
        old = run / RESULT_FILE
        if old.is_file():
            result = json.loads(old.read_text())
        else:  # finished by `bncr train && bncr eval` jobs: write the result now
            result = build_result(cell, grid, opts, cfg, train_seconds_invocation=None, eval_seconds_invocation=None)
            atomic_write_text(old, json.dumps(result, indent=1, sort_keys=True) + "\n")
        if grid.commit_results and not (results_dir(cell, opts) / f"result-seed{cell.seed}.json").is_file():
            log(f"[{cell.id}] results copied to {copy_results(cell, grid, opts, result, cfg.iters)}")
        return result
    ensure_writable_dir(run)
    if st.state != "trained":
        log(f"[{cell.id}] training {cell.model} on {cell.dataset} setting {cell.setting}, seed {cell.seed}, "
            f"{cfg.iters} it ({st.detail}) -> {run}")
        t0 = time.time()
        train_fn(cfg, run, resume="auto", progress=opts.progress)
        t_train = time.time() - t0
        if not final_snapshot(run, cfg.iters, grid).is_file():
            raise UserError(f"[{cell.id}] training returned without {final_snapshot(run, cfg.iters, grid).name}")
    log(f"[{cell.id}] evaluating {', '.join(opts.metric_kinds(grid))} on {opts.eval_num(grid)} samples "
        f"({opts.eval_snapshots(grid)} snapshots)")
    t0 = time.time()
    eval_fn(run, metrics=opts.metric_kinds(grid), num=opts.eval_num(grid), snapshots=opts.eval_snapshots(grid),
            inception=opts.inception, batch=opts.batch, progress=opts.progress, extractor=extractor,
            device=opts.device, log=lambda s: log(f"[{cell.id}] {s}"))
    t_eval = time.time() - t0
    names = grid.metric_names(opts.metric_kinds(grid), opts.eval_num(grid))
    missing = [n for n in names if n not in metrics_done(run, final_snapshot(run, cfg.iters, grid).name, names)]
    if missing:
        raise UserError(f"[{cell.id}] evaluation wrote no line for the final snapshot in {', '.join(missing)}")
    result = build_result(cell, grid, opts, cfg, train_seconds_invocation=t_train, eval_seconds_invocation=t_eval)
    atomic_write_text(run / RESULT_FILE, json.dumps(result, indent=1, sort_keys=True) + "\n")
    (run / "cell-error.txt").unlink(missing_ok=True)  # from an earlier failed attempt
    if grid.commit_results:
        log(f"[{cell.id}] results copied to {copy_results(cell, grid, opts, result, cfg.iters)}")
    summary = ", ".join(f"{n} best {m['best']:.4g} @{m['best_iteration']}, last {m['last']:.4g}"
                        for n, m in result["metrics"].items())
    log(f"[{cell.id}] done: {summary}")
    return result


@dataclass
class GridRun:
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_grid(grid: Grid, opts: BenchOptions, *, train_fn: Optional[TrainFn] = None, eval_fn: Optional[EvalFn] = None,
             extractor: Any = None, log: Callable[[str], None] = print, keep_going: bool = True) -> GridRun:
    """Run every selected cell in order; a failing cell is reported and (keep_going) the next one runs."""
    cells = grid_cells(grid, opts)
    out = GridRun()
    if extractor is None and eval_fn is None and {"fid", "kid"} & set(opts.metric_kinds(grid)):
        todo = [c for c in cells if cell_status(c, grid, opts).state != "done"]
        if todo:  # one feature network for all cells; missing weights fail here, before any training
            from ..metrics.evaluate import resolve_device
            from ..metrics.inception import InceptionFeatures
            extractor = InceptionFeatures(opts.inception, device=resolve_device(opts.device),
                                          batch_size=opts.batch, progress=opts.progress)
    for i, cell in enumerate(cells, 1):
        log(f"== cell {i}/{len(cells)}: {cell.id}")
        try:
            before = cell_status(cell, grid, opts).state
            run_cell(cell, grid, opts, train_fn=train_fn, eval_fn=eval_fn, extractor=extractor, log=log)
            (out.skipped if before == "done" else out.finished).append(cell.id)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one cell's failure must not lose the others
            msg = f"{type(e).__name__}: {e}" if not isinstance(e, UserError) else str(e)
            out.failed.append((cell.id, msg))
            run = cell.run_dir(opts.root)
            if run.is_dir():
                atomic_write_text(run / "cell-error.txt", traceback.format_exc())
            log(f"[{cell.id}] FAILED: {msg}")
            if not keep_going:
                break
    return out

