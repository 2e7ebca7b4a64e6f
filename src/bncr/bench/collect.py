"""Collecting a grid's metrics into markdown tables (median over seeds), next to the paper's numbers.

Per cell and seed the value is the best snapshot's (the paper reports the best snapshot; with
``--snapshots last`` only the last one was evaluated). Per (model, setting) the table shows the median
over the seeds found; ``[k/n]`` marks cells with fewer seeds than the grid asks for, ``…`` cells not
finished yet, ``–`` cells the paper leaves empty and ``n/a`` models this package does not implement.
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any, Optional

from ..errors import UserError
from ..io import atomic_write_text, ensure_writable_dir
from .grids import Cell, Grid
from .paper import MODEL_LABELS, NOT_IMPLEMENTED, PAPER_TABLES, paper_fid
from .runner import (RESULT_FILE, BenchOptions, _common_flags, cell_config, cell_status, grid_cells, results_dir,
                     summarise_metrics)


@dataclass
class Collected:
    """values[(dataset, setting, model, metric)] = {seed: value}; results[cell id] = result dict (if any)."""

    grid: Grid
    metric_names: list[str]
    seeds: tuple[int, ...]
    values: dict[tuple[str, str, str, str], dict[int, float]] = field(default_factory=dict)
    stds: dict[tuple[str, str, str, str], dict[int, Optional[float]]] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    # differs[cell id] = {option: (trained with, today's)}: cells trained with options other than the grid's today
    differs: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    def median(self, dataset: str, setting: str, model: str, metric: str) -> tuple[Optional[float], int]:
        v = self.values.get((dataset, setting, model, metric), {})
        return (float(median(v.values())) if v else None), len(v)


def collect(grid: Grid, opts: BenchOptions, source: str = "runs") -> Collected:
    """Read every cell's metrics: from run directories (`source="runs"`) or committed results ("results")."""
    if source not in ("runs", "results"):
        raise UserError(f"collect source must be runs or results, got {source!r}")
    names = grid.metric_names(opts.metric_kinds(grid), opts.eval_num(grid))
    seeds = opts.seeds if opts.seeds is not None else grid.seeds
    col = Collected(grid, names, tuple(seeds))
    for cell in grid_cells(grid, opts):
        if source == "results":
            p = results_dir(cell, opts) / f"result-seed{cell.seed}.json"
            if not p.is_file():
                col.pending.append(cell.id)
                continue
            result = json.loads(p.read_text())
            metrics = result.get("metrics", {})
        else:
            if cell_status(cell, grid, opts).state != "done":
                col.pending.append(cell.id)
                continue
            run = cell.run_dir(opts.root)
            rp = run / RESULT_FILE
            result = json.loads(rp.read_text()) if rp.is_file() else {}
            metrics = summarise_metrics(run, names)
        col.results[cell.id] = result
        diff = option_differences(result, cell, grid, opts)
        if diff:
            col.differs[cell.id] = diff
        for n in names:
            m = metrics.get(n)
            if m is None or m.get("best") is None:
                continue
            key = (cell.dataset, cell.setting, cell.model, n)
            col.values.setdefault(key, {})[cell.seed] = float(m["best"])
            col.stds.setdefault(key, {})[cell.seed] = m.get("best_std")
    return col


DIFFERS_MARK = "‡"   # a table cell with a seed trained with other options than today's preset


def option_differences(result: dict, cell: Cell, grid: Grid, opts: BenchOptions) -> dict[str, tuple[Any, Any]]:
    """{option: (trained with, today's)} for each training option in which a cell's stored result differs from what
    the grid would train today (machine and logging options, and options the model never reads, are not compared)."""
    stored = result.get("config")
    if not stored or grid.kind == "restoration":
        return {}
    from ..models.registry import get_model
    from ..train.config import GROUPS, TrainConfig
    trained = TrainConfig.from_dict(stored).to_dict()
    today = cell_config(cell, grid, opts).to_dict()
    ignore = set(GROUPS["logging and machine"]) | {"data_root"} | get_model(cell.model).unused_options()
    return {k: (trained[k], v) for k, v in today.items() if k not in ignore and trained[k] != v}


def _differs_note(col: Collected) -> list[str]:
    if not col.differs:
        return []
    lines = [f"`{DIFFERS_MARK}` at least one seed was trained with options other than today's preset "
             f"(`{col.grid.preset}`) gives; the cells and options (trained with, today's value):", ""]
    for cid, diff in col.differs.items():
        lines.append(f"- `{cid}`: " + ", ".join(f"{k}={a} (today {b})" for k, (a, b) in diff.items()))
    return lines + [""]


# ---------------------------------------------------------------------------------------------- tables
def _kind(metric: str) -> str:
    return "kid" if metric.startswith("kid") else "fid"


def _fmt(v: Optional[float], kind: str) -> str:
    if v is None:
        return "…"
    return f"{v * 1000:.2f}" if kind == "kid" else f"{v:.1f}"


def _paper_value(grid: Grid, model: str, setting: str) -> Optional[float]:
    if grid.paper_table:
        return PAPER_TABLES[grid.paper_table].value(model, setting)
    return paper_fid(model, setting)  # e.g. cpu-mini: the paper's CIFAR-10 number for orientation


def markdown_table(col: Collected, dataset: str, metric: str, with_paper: bool = True) -> str:
    """Rows models, columns settings (the paper's layout); cells 'ours / paper'."""
    grid = col.grid
    kind = _kind(metric)
    runnable = set(grid.pairs())
    unavailable = set(grid.unavailable)
    n_seeds = len(col.seeds)
    head = ["model"] + grid.settings
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in grid.models:
        cells = []
        for s in grid.settings:
            paper = _paper_value(grid, model, s) if (with_paper and kind == "fid") else None
            p = f" / {paper:.1f}" if paper is not None else (" / –" if with_paper and kind == "fid" else "")
            if (s, model) in unavailable:
                cells.append(f"n/a{p}")
            elif (s, model) not in runnable:
                cells.append("–")
            else:
                v, k = col.median(dataset, s, model, metric)
                note = f" [{k}/{n_seeds}]" if 0 < k < n_seeds else ""
                if any(Cell(grid.name, dataset, s, model, seed).id in col.differs for seed in col.seeds):
                    note += f" {DIFFERS_MARK}"
                cells.append(f"{_fmt(v, kind)}{note}{p}")
        label = MODEL_LABELS.get(model, model)
        lines.append("| " + " | ".join([f"{label} (`{model}`)"] + cells) + " |")
    return "\n".join(lines)


_RESTORATION_FMT = {"fid": lambda v: f"{v:.1f}", "kid": lambda v: f"{v * 1000:.2f}", "lpips": lambda v: f"{v:.4f}",
                    "psnr": lambda v: f"{v:.2f}"}


def restoration_table(col: Collected, dataset: str, with_paper: bool = True) -> str:
    """Table 4's layout: rows restorers, columns settings; each cell the metrics of the run with the median FID
    over the seeds (the paper's protocol), e.g. 'FID / LPIPS', then the paper's numbers."""
    from .paper import TABLE4_LPIPS
    grid = col.grid
    kinds = [m.split("_")[0].rstrip("0123456789k") for m in col.metric_names]
    rank = col.metric_names[kinds.index("fid")] if "fid" in kinds else col.metric_names[0]
    runnable, n_seeds = set(grid.pairs()), len(col.seeds)
    table = PAPER_TABLES.get(grid.paper_table) if with_paper and grid.paper_table else None
    lines = ["| model | " + " | ".join(grid.settings) + " |", "|" + "---|" * (len(grid.settings) + 1)]
    for model in grid.models:
        cells = []
        for s in grid.settings:
            if (s, model) not in runnable:
                cells.append("N/A")
                continue
            by_seed = col.values.get((dataset, s, model, rank), {})
            if not by_seed:
                cells.append("…")
                continue
            ordered = sorted(by_seed, key=lambda k: (by_seed[k], k))
            seed = ordered[(len(ordered) - 1) // 2]          # the median run (the lower one of an even count)
            vals = [col.values.get((dataset, s, model, m), {}).get(seed) for m in col.metric_names]
            text = " / ".join("…" if v is None else _RESTORATION_FMT[k](v) for k, v in zip(kinds, vals))
            note = f" [{len(by_seed)}/{n_seeds}]" if len(by_seed) < n_seeds else ""
            paper = table.value(model, s) if table else None
            if paper is not None:
                text += f" (paper {paper:.1f} / {TABLE4_LPIPS[model][s]:.4f})"
            cells.append(text + note)
        lines.append("| " + " | ".join([f"{MODEL_LABELS.get(model, model)} (`{model}`)"] + cells) + " |")
    return "\n".join(lines)


def markdown_tables(col: Collected, with_paper: bool = True) -> str:
    """All tables of a grid: one per dataset and metric, with captions (a restoration grid: one per dataset)."""
    grid = col.grid
    if grid.kind == "restoration":
        out = [f"## {grid.description}", ""]
        for d in grid.datasets:
            out += [f"### {d}: {' / '.join(f'`{m}`' for m in col.metric_names)} of the median-FID run "
                    f"(KID x 10^3)", "", restoration_table(col, d, with_paper), ""]
        out += ["`…` not finished, `[k/n]` k of n seeds, `N/A` not defined (CycleGAN needs clean training images).",
                ""] + [f"Note: {note}\n" for note in grid.notes]
        if col.pending:
            out += [f"{len(col.pending)} of {len(col.pending) + len(col.results)} cells not finished.", ""]
        return "\n".join(out)
    out = [f"## {grid.description}", ""]
    if grid.paper_table:
        t = PAPER_TABLES[grid.paper_table]
        out += [f"Paper numbers: {t.caption} ({t.dataset}, {t.seeds}), Kaneko & Harada, CVPR 2021.", ""]
    elif with_paper:
        out += ["Paper numbers: the paper's CIFAR-10 FID for the same model and setting (Tables 1-2, median of "
                "3 seeds, full-size networks, 200k iterations) - for orientation only: another dataset, "
                "network size, training length and sample count.", ""]
    for d in grid.datasets:
        for m in col.metric_names:
            kind = _kind(m)
            what = ("FID" if kind == "fid" else "KID x 10^3")
            cap = f"### {d}: {what} (`{m}`), median over seeds of the best evaluated snapshot"
            if kind == "fid" and with_paper:
                cap += " — ours / paper"
            out += [cap, "", markdown_table(col, d, m, with_paper), ""]
    legend = ("`…` not finished, `[k/n]` median of k of n seeds, `–` not run (left empty in the paper), "
              "`n/a` not implemented: " + "; ".join(f"{MODEL_LABELS[k]}: {v}" for k, v in NOT_IMPLEMENTED.items()
                                                     if k in grid.models))
    out += [legend if any(m in NOT_IMPLEMENTED for m in grid.models) else legend.split(", `n/a`")[0] + ".", ""]
    out += _differs_note(col)
    for note in grid.notes:
        out += [f"Note: {note}", ""]
    if col.pending:
        out += [f"{len(col.pending)} of {len(col.pending) + len(col.results)} cells not finished.", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- results doc
def _hms(s: Optional[float]) -> str:
    if s is None:
        return "-"
    s = int(round(float(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def results_document(col: Collected, opts: BenchOptions, doc_path: Path, command: str) -> str:
    """The text of docs/research/cpu-mini-results.md: tables, per-run iterations and wall times, commands, machines, samples."""
    grid = col.grid
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    first = next(iter(col.results.values()), {})
    cfg = first.get("config", {})
    proto = next((m.get("protocol") for m in first.get("metrics", {}).values() if m.get("protocol")), None) or {}
    lines = [f"# Results: the `{grid.name}` benchmark", "",
             f"Generated by `{command}` on {now} from the files under "
             f"`{Path(opts.results_dir) / grid.name}/` (one folder per dataset/setting/model: `result-seed<k>.json`, "
             "`metric-<name>-seed<k>.jsonl`, `samples-seed<k>.png`). Do not edit by hand; re-run the command.", "",
             f"{grid.description}. Each cell trains one model on the setting's degraded images, then evaluates "
             "the clean generator G_x (EMA weights) against the clean training images.", ""]
    if cfg:
        keys = ("width", "d_width", "z_dim", "batch", "count", "iters", "lr", "d_lr", "deg_lr", "deg_warmup",
                "residual", "r1", "ema", "snap_every")
        lines += ["Training options (preset `" + (opts.preset or grid.preset) + "`): "
                  + ", ".join(f"{k}={cfg.get(k)}" for k in keys) + ".", ""]
    if proto:
        ref = proto.get("reference", {})
        lines += [f"Evaluation: {proto.get('num_generated')} generated vs {proto.get('num_reference')} reference "
                  f"images ({ref.get('images', '')}; subset {ref.get('subset', '')}); feature network "
                  f"`{proto.get('network')}`, resize `{proto.get('resize')}`; latent seed {proto.get('latent_seed')}; "
                  f"snapshots: {opts.eval_snapshots(grid)}.", ""]
    lines += [markdown_tables(col, with_paper=True), "## Runs", "",
              "Wall times: training = sum over the training ticks in `stats.jsonl` (start-up excluded); "
              "evaluation = sample generation + Inception features + metrics, over the evaluated snapshots "
              "(reference statistics are computed once per dataset and cached, not included).", "",
              "| cell | iterations | train time | it/s (median) | eval time | " +
              " | ".join(f"{m} (last)" for m in col.metric_names) + " | samples |",
              "|" + "---|" * (6 + len(col.metric_names))]
    rel = Path(os.path.relpath(Path(opts.results_dir).resolve(), doc_path.parent.resolve()))
    for cid, r in col.results.items():
        ms = r.get("metrics", {})
        vals = []
        for m in col.metric_names:
            x = ms.get(m)
            if not x:
                vals.append("-")
            elif _kind(m) == "kid":
                sd = x.get("last_std")
                vals.append(f"{x['last'] * 1000:.2f}" + (f" ± {sd * 1000:.2f}" if sd is not None else ""))
            else:
                vals.append(f"{x['last']:.1f}")
        cell = Cell(grid.name, r.get("dataset", ""), r.get("setting", ""), r.get("model", ""), int(r.get("seed", 0)))
        png = rel / grid.name / cell.dataset / cell.setting / cell.model / f"samples-seed{cell.seed}.png"
        lines.append(f"| `{cid}` | {r.get('iterations')} | {_hms(r.get('train_seconds'))} | "
                     f"{r.get('it_per_s_median')} | {_hms(r.get('eval_seconds'))} | " + " | ".join(vals)
                     + f" | [png]({png.as_posix()}) |")
    machines = sorted({json.dumps({k: v for k, v in r.get("machine", {}).items()}, sort_keys=True)
                       for r in col.results.values()})
    trained = {}
    for cid, r in col.results.items():
        tm = r.get("train_machine") or {}
        trained.setdefault(f"device {tm.get('device') or 'not recorded'}, torch {tm.get('torch') or '?'}", []).append(cid)
    lines += ["", "## Machines", "", "Training (where each cell's `bncr train` ran):", ""]
    for where, cids in sorted(trained.items()):
        lines.append(f"- {where}: " + ", ".join(f"`{c}`" for c in cids))
    lines += ["", "Evaluation (where `bncr eval` ran):", ""]
    for mjs in machines:
        m = json.loads(mjs)
        lines.append(f"- {m.get('platform')}, {m.get('cpu_count')} CPUs, torch {m.get('torch')} "
                     f"({m.get('torch_threads')} threads), device {m.get('device')}"
                     + (f" ({m['cuda_device']})" if m.get("cuda_device") else ""))
    lines += ["", "## Commands", "", "The whole grid (resumable; finished cells are skipped):", "", "```bash",
              shlex.join(["bncr", "benchmark", "--grid", grid.name, "--root", str(opts.root)]
                         + _common_flags(grid, opts)),
              command, "```", "", "<details><summary>Per cell: the exact commands recorded in its result</summary>",
              "", "```bash"]
    for cid, r in col.results.items():
        c = r.get("commands", {})
        lines += [f"# {cid}", c.get("benchmark", ""), f"# equivalent: {c.get('train', '')} && {c.get('eval', '')}"]
    lines += ["```", "", "</details>", ""]
    if col.pending:
        lines += ["Cells without results yet: " + ", ".join(f"`{c}`" for c in col.pending), ""]
    lines += ["## Samples", ""]
    for cid, r in col.results.items():
        png = rel / grid.name / r.get("dataset", "") / r.get("setting", "") / r.get("model", "") \
            / f"samples-seed{r.get('seed', 0)}.png"
        lines.append(f"`{cid}`: ![{cid}]({png.as_posix()})")
        lines.append("")
    return "\n".join(lines)


def write_results_document(col: Collected, opts: BenchOptions, path: str | Path, command: str) -> Path:
    p = Path(path)
    ensure_writable_dir(p.parent if str(p.parent) else ".")
    atomic_write_text(p, results_document(col, opts, p, command))
    return p
