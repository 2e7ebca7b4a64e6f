"""Command-line interface: a thin layer over the package (all logic lives in bncr.*).

Expected user mistakes (UserError) print one line ``bncr: error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .errors import UserError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int | None], str]] = {}


def command(name: str, help: str):
    """Register `bncr NAME`: decorate a function(args) and give it an `add_args(parser)` attribute."""
    def deco(fn):
        COMMANDS[name] = (getattr(fn, "add_args", lambda p: None), fn, help)
        return fn
    return deco


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="deadleaves",
                   help="deadleaves (embedded, default) | cifar10 | fashion-mnist | path to an image folder")
    p.add_argument("--data-root", default=None, help="where cifar10 / fashion-mnist files are (see README)")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if missing (needs internet)")
    p.add_argument("--resolution", type=int, default=None, help="image size (default: 32, image folders 128)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images in a folder (count them)")
    p.add_argument("--split", default="train", choices=["train", "test"])


def _open_clean(args: argparse.Namespace, count: int | None = None):
    from .data import open_dataset
    return open_dataset(args.dataset, args.resolution, root=args.data_root, download=args.download,
                        skip_bad=args.skip_bad, split=args.split, count=count)


# ---------------------------------------------------------------- settings
def cmd_settings(args: argparse.Namespace) -> None:
    from .degradations.settings import SETTINGS
    rows = [(s.name, s.blur.size if s.blur else "-", s.description) for s in SETTINGS.values()
            if args.all or not s.name.endswith("-ffhq")]
    w = max(len(r[0]) for r in rows)
    print(f"{'setting':<{w}}  K   description")
    for name, k, desc in rows:
        print(f"{name:<{w}}  {k!s:<3} {desc}")
    if not args.all:
        print("(every setting also exists as NAME-ffhq for 128x128 FFHQ; `bncr settings --all` lists them)")


cmd_settings.add_args = lambda p: p.add_argument("--all", action="store_true", help="include the -ffhq variants")
command("settings", "list the paper's degradation settings A-Q")(cmd_settings)


# ---------------------------------------------------------------- degrade
def cmd_degrade(args: argparse.Namespace) -> None:
    from .data.export import write_degraded
    from .degradations.settings import get_setting
    setting = get_setting(args.setting)
    if args.limit is not None and args.limit <= 0:
        raise UserError(f"--limit must be a positive number of images, got {args.limit}")
    clean = _open_clean(args, count=args.limit)
    m = write_degraded(clean, setting, args.out, data_seed=args.data_seed, fmt=args.format, workers=args.workers)
    f = m["fractions"]
    print(f"wrote {m['count']} images of setting {setting.name} ({setting.description}) to {args.out}")
    print(f"blurred {f['blurred']:.1%}, noised {f['noised']:.1%}, compressed {f['compressed']:.1%}; "
          f"see manifest.json, preview.png, params.png")


def _degrade_args(p: argparse.ArgumentParser) -> None:
    _dataset_args(p)
    p.add_argument("--setting", required=True, help="paper setting letter A..Q, 'noise', or e.g. D-ffhq")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the degradations (default 0)")
    p.add_argument("--format", default="npy", choices=["npy", "png"], help="degraded.npy or images/*.png")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (same output)")


cmd_degrade.add_args = _degrade_args
command("degrade", "write a degraded dataset with its ground-truth manifest")(cmd_degrade)


# ---------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> None:
    from .models.registry import MODELS
    w = max(len(n) for n in MODELS)
    print(f"{'model':<{w}}  blur        noise       jpeg        AC   description")
    for m in MODELS.values():
        ac = "+".join(x for x, on in (("blur", m.ac_blur), ("comp", m.ac_comp)) if on) or "-"
        st = lambda mode, mask: (mode.replace("auto-", "") + ("" if mask else " nomask")) if mode != "off" else "-"  # noqa: E731
        print(f"{m.name:<{w}}  {st(m.blur, m.blur_mask):<11} {st(m.noise, True):<11} {st(m.jpeg, m.jpeg_mask):<11} "
              f"{ac:<4} {m.description}")


command("models", "list the models of the paper (stages: off / known / parameter / generator)")(cmd_models)


# ---------------------------------------------------------------- train
def resolve_train_config(args: argparse.Namespace):
    """The TrainConfig that `bncr train` would run: preset or --like run, then the explicit options, then --set."""
    from .train.config import TrainConfig, preset
    if args.like:
        from .metrics.evaluate import run_config
        if args.preset is not None:
            raise UserError("--like and --preset are exclusive: --like replays a run's resolved options")
        cfg = TrainConfig.from_dict(run_config(args.like)["config"])
    else:
        cfg = preset(args.preset or "default")
        if args.model is None or args.setting is None:
            raise UserError("--model and --setting are required (or --like RUN_DIR to replay a run's options)")
    for key in ("model", "setting", "dataset", "data_root", "resolution", "iters", "width", "count", "seed"):
        v = getattr(args, key)
        if v is not None:
            setattr(cfg, key, v)
    if args.oracle_clean:
        cfg.oracle_clean = True
    if args.skip_bad:
        cfg.skip_bad = True
    return cfg.override(args.set or []).validate()


def dry_run_done(cfg, args: argparse.Namespace) -> bool:
    """--dry-run: print the resolved options as JSON (True: nothing else to do); otherwise --out is required."""
    if args.dry_run:
        print(cfg.to_json())
        return True
    if not args.out:
        raise UserError("--out is required: the run directory to write (or --dry-run to only print the options)")
    return False


def cmd_train(args: argparse.Namespace) -> None:
    if args.preset == "help":
        return cmd_presets(args)
    cfg = resolve_train_config(args)
    if dry_run_done(cfg, args):
        return
    from .train.loop import train
    out = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    import os
    if os.environ.get("RANK", "0") == "0":
        print(f"run directory: {out} (final.png, images/, stats.jsonl, snapshot-*.pt)")


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name (`bncr models`); required unless --like")
    p.add_argument("--setting", default=None, help="degradation setting (`bncr settings`); required unless --like")
    p.add_argument("--dataset", default=None,
                   help="shapes (embedded, default) | deadleaves | cifar10 | fashion-mnist | image folder")
    p.add_argument("--data-root", default=None)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--count", type=int, default=None, help="use the first N training images")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images in a folder (count them)")
    p.add_argument("--out", default=None, help="run directory (required unless --dry-run)")
    p.add_argument("--preset", default=None,
                   help="option set (`bncr presets`; default: default); 'help' lists them and their differences")
    p.add_argument("--like", default=None, metavar="RUN_DIR",
                   help="replay a run's resolved options (its config.json); the options given here override them")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options as JSON and exit")
    p.add_argument("--iters", type=int, default=None, help="iterations (paper: 200k)")
    p.add_argument("--width", type=int, default=None, help="base channels of G_x and D_y (paper: 128)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--resume", default=None, help="auto (continue --out if it holds a run) or a state file")
    p.add_argument("--oracle-clean", action="store_true",
                   help="DIAGNOSIS ONLY: replace G_x by real clean images to test the degradation generators")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any training option (repeatable)")
    p.add_argument("--no-progress", action="store_true")


cmd_train.add_args = _train_args
command("train", "train a model on a degraded dataset")(cmd_train)


# ---------------------------------------------------------------- presets
def cmd_presets(args: argparse.Namespace) -> None:
    from .train.config import PRESETS, preset_differences
    for name, (desc, _) in PRESETS.items():
        print(f"{name}: {desc}")
    print()
    print("options where the presets differ (every other option is the same in all of them):")
    print(preset_differences())


command("presets", "list the named option sets of `bncr train --preset` and where they differ")(cmd_presets)


# ---------------------------------------------------------------- compare
def cmd_compare(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .io import atomic_write_text
    from .metrics.compare import compare_runs, markdown, to_json
    from .metrics.evaluate import one_line_warnings
    with one_line_warnings():
        rows = compare_runs(args.runs, num=args.num, fid=args.fid, data_rows=not args.no_data,
                            progress=not args.no_progress)
    table = markdown(rows)
    print(table)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out, table + "\n")
        atomic_write_text(out.with_suffix(".json"), to_json(rows) + "\n")
        print(f"wrote {out} and {out.with_suffix('.json')}")


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories trained on the same data")
    p.add_argument("--num", type=int, default=500, help="images per row and reference images (default 500)")
    p.add_argument("--fid", action="store_true", help="FID too (biased below 2048 images; KID is not)")
    p.add_argument("--no-data", action="store_true", help="omit the clean-data and degraded-data rows")
    p.add_argument("--out", default=None, help="also write the table here (.md) and the numbers beside it (.json)")
    p.add_argument("--no-progress", action="store_true")


cmd_compare.add_args = _compare_args
command("compare", "KID and sharpness / noise / blocks / frame / hf of several runs' clean fakes vs the clean data")(cmd_compare)


# ---------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo
    run_demo(args.out, preset=args.preset, setting=args.setting, sets=args.set or (), num=args.num, full=args.full)


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-out", help="where the two runs, demo.png and summary.md go")
    p.add_argument("--preset", default="laptop", help="option set of both runs (default laptop, shortened to 2,400 iterations with zero padding and ac=10: about 11 min on 2 cores, install included; --full for the preset as it is)")
    p.add_argument("--setting", default="N", help="degradation setting (default N: blur, noise and JPEG)")
    p.add_argument("--num", type=int, default=200, help="images per KID row (default 200)")
    p.add_argument("--full", action="store_true", help="train with the preset as it is (laptop: 6,000 iterations, "
                   "G_x padded by reflection, ac=1, DS on G_n's shot variance; about 25 min on 2 cores) instead of the demo's shortening")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="training option for both runs")


cmd_demo.add_args = _demo_args
command("demo", "the main job: BNCR-GAN and GAN side by side on degraded data, one picture, KID, recovery")(cmd_demo)


# ---------------------------------------------------------------- sample
def cmd_sample(args: argparse.Namespace) -> None:
    from pathlib import Path

    from PIL import Image

    from .api import load_generator, sample_images
    from .io import atomic_path, ensure_writable_dir
    from .train.visual import grid
    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    G = load_generator(args.run)
    imgs = sample_images(G, args.n, seed=args.seed).numpy()
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        ensure_writable_dir(out.parent if str(out.parent) else ".")
        with atomic_path(out) as tmp:
            Image.fromarray(grid(imgs, nrow=max(1, int(len(imgs) ** 0.5)))).save(tmp, format="PNG")
        print(f"wrote a grid of {len(imgs)} images to {out}")
    else:
        ensure_writable_dir(out)
        for i, im in enumerate(imgs):
            with atomic_path(out / f"{i:06d}.png") as tmp:
                Image.fromarray(im).save(tmp, format="PNG")
        print(f"wrote {len(imgs)} images to {out}/")


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory or snapshot-*.pt")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--out", required=True, help="a .png path (grid) or a directory (one PNG per image)")
    p.add_argument("--seed", type=int, default=0)


cmd_sample.add_args = _sample_args
command("sample", "generate clean images with a trained G_x")(cmd_sample)


# ---------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> None:
    from .metrics.evaluate import evaluate_run, one_line_warnings
    ref_num = args.ref_num if args.ref_num in (None, "all") else _int(args.ref_num, "--ref-num")
    with one_line_warnings():
        rep = evaluate_run(args.run, metrics=args.metric or ["fid"], num=args.num, snapshots=args.snapshots,
                           inception=args.inception, batch=args.batch, seed=args.seed, ref_num=ref_num,
                           device=args.device, progress=not args.no_progress, force=args.force,
                           log=lambda s: print(s, flush=True))
    print(rep.table())
    files = ", ".join(str(p) for p in rep.files.values())
    print(f"reference: {rep.reference.get('count')} clean {rep.reference.get('split')} images of "
          f"{rep.reference.get('dataset')} ({rep.reference.get('subset')}); metric files: {files}")


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected an integer or 'all'") from None


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory (config.json + snapshot-*.pt)")
    p.add_argument("--metric", action="extend", nargs="+", choices=["fid", "kid"],
                   help="fid (default) and/or kid: --metric fid kid, or repeated")
    p.add_argument("--num", type=int, default=10000, help="generated images per snapshot (default 10000)")
    p.add_argument("--snapshots", default="all", choices=["all", "last"],
                   help="evaluate every snapshot (default; the paper reports the best) or the last one")
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="FID Inception weights (TorchScript .pt or pytorch-fid/torch-fidelity .pth)")
    p.add_argument("--batch", type=int, default=64, help="batch of generation and feature extraction")
    p.add_argument("--seed", type=int, default=0, help="latent seed (the same z for every snapshot)")
    p.add_argument("--ref-num", default=None, metavar="M|all",
                   help="reference images (default: same as --num; 'all' = every clean image the run trained on)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--force", action="store_true", help="recompute lines already in the metric files")
    p.add_argument("--no-progress", action="store_true")


cmd_eval.add_args = _eval_args
command("eval", "FID/KID of the clean generator G_x of a run's snapshots vs clean images")(cmd_eval)


# ---------------------------------------------------------------- benchmark
def cmd_benchmark(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from .bench import (BenchOptions, benchmark_command, cell_status, collect, get_grid, grid_cells,
                        markdown_tables, parse_seeds, run_grid, write_results_document)
    from .bench.paper import NOT_IMPLEMENTED
    from .metrics.evaluate import one_line_warnings
    grid = get_grid(args.grid)
    if args.iters is not None and args.iters < 1:
        raise UserError(f"--iters must be >= 1, got {args.iters}")
    if args.num is not None and args.num < 2:
        raise UserError(f"--num must be >= 2, got {args.num}")
    opts = BenchOptions(root=Path(args.root), preset=args.preset, iters=args.iters, seeds=parse_seeds(args.seeds),
                        only=args.only, data_root=args.data_root, ffhq=args.ffhq,
                        metrics=tuple(args.metric) if args.metric else None, num=args.num, snapshots=args.snapshots,
                        inception=args.inception, batch=args.batch, sets=tuple(args.set or ()),
                        progress=not args.no_progress, results_dir=Path(args.results), device=args.device)
    modes = [m for m in ("dry_run", "jobs", "collect") if getattr(args, m)]
    if len(modes) > 1:
        raise UserError("--dry-run, --jobs and --collect are exclusive: choose one")
    if args.write_doc and not args.collect:
        raise UserError("--write-doc needs --collect")
    cells = grid_cells(grid, opts)
    if args.jobs:
        for c in cells:
            print(benchmark_command(c, grid, opts))
        return 0
    if args.dry_run:
        rows = [(c.id, c.model, c.setting, str(c.seed), c.dataset, *(lambda s: (s.state, s.detail))(
            cell_status(c, grid, opts))) for c in cells]
        head = ("cell", "model", "setting", "seed", "dataset", "status", "detail")
        w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        print("  ".join(h.ljust(x) for h, x in zip(head, w)).rstrip())
        for r in rows:
            print("  ".join(v.ljust(x) for v, x in zip(r, w)).rstrip())
        counts = {s: sum(r[5] == s for r in rows) for s in ("done", "trained", "partial", "todo")}
        print(f"{len(rows)} cells of grid {grid.name} under {opts.root / grid.name} "
              f"({', '.join(f'{v} {k}' for k, v in counts.items() if v)})")
        for m in dict.fromkeys(m for _, m in grid.unavailable):
            on = ", ".join(s for s, x in grid.unavailable if x == m)
            print(f"not available: {m} on {on} ({NOT_IMPLEMENTED.get(m, 'not implemented')})")
        return 0
    if args.collect:
        source = args.source or ("results" if grid.commit_results else "runs")
        col = collect(grid, opts, source=source)
        if args.write_doc:
            from .bench.runner import _common_flags
            cmd = shlex.join(["bncr", "benchmark", "--grid", grid.name, "--collect", "--write-doc", args.write_doc]
                             + _common_flags(grid, opts)
                             + (["--results", args.results] if args.results != "benchmarks/results" else [])
                             + (["--source", args.source] if args.source else []))
            p = write_results_document(col, opts, Path(args.write_doc), cmd)
            print(f"wrote {p} ({len(col.results)} finished cells, {len(col.pending)} pending)")
        else:
            print(markdown_tables(col))
        return 0
    with one_line_warnings():
        res = run_grid(grid, opts)
    print(f"grid {grid.name}: {len(res.finished)} cells finished now, {len(res.skipped)} already finished, "
          f"{len(res.failed)} failed")
    for cid, msg in res.failed:
        print(f"  failed: {cid}: {msg} (see {Path(opts.root) / grid.name / cid / 'cell-error.txt'})")
    return 1 if res.failed else 0


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    from .bench.grids import GRIDS
    p.add_argument("--grid", required=True, choices=list(GRIDS), help="which grid (docs/benchmark.md)")
    p.add_argument("--root", default="runs", help="run directories go to ROOT/GRID/DATASET/SETTING/MODEL/seedK")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their status; run nothing")
    p.add_argument("--jobs", action="store_true", help="print one command per cell (e.g. for a Slurm array)")
    p.add_argument("--collect", action="store_true", help="markdown tables of the finished cells (median of seeds)")
    p.add_argument("--write-doc", default=None, metavar="PATH", help="with --collect: write a results document")
    p.add_argument("--source", default=None, choices=["runs", "results"],
                   help="with --collect: read run directories or committed results (default: results for cpu-mini)")
    p.add_argument("--seeds", default=None, help="comma-separated training seeds (default: the grid's, e.g. 0,1,2)")
    p.add_argument("--iters", type=int, default=None, help="training iterations of every cell (default: the preset's)")
    p.add_argument("--preset", default=None, help="paper | cpu (default: the grid's)")
    p.add_argument("--only", default=None, metavar="PATTERN",
                   help="cells whose id DATASET/SETTING/MODEL/seedK matches (shell patterns, comma-separated)")
    p.add_argument("--data-root", default=None, help="where cifar10 / fashion-mnist files are")
    p.add_argument("--ffhq", default=None, metavar="DIR", help="FFHQ image folder (table3-ffhq)")
    p.add_argument("--metric", action="extend", nargs="+", choices=["fid", "kid", "lpips", "psnr"],
                   help="override the grid's metrics (--metric fid kid, or repeated; lpips, psnr: restoration grids)")
    p.add_argument("--num", type=int, default=None, help="override the grid's evaluation sample count")
    p.add_argument("--snapshots", default=None, choices=["all", "last"], help="override the grid's choice")
    p.add_argument("--inception", default=None, metavar="PATH", help="FID Inception weights file")
    p.add_argument("--batch", type=int, default=64, help="evaluation batch")
    p.add_argument("--device", default=None, help="evaluation device (default: cuda if available)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="training option for every cell (repeatable)")
    p.add_argument("--results", default="benchmarks/results",
                   help="where grids that commit results (cpu-mini) copy each finished cell's small files")
    p.add_argument("--no-progress", action="store_true")


cmd_benchmark.add_args = _benchmark_args
command("benchmark", "the paper's experiment grids: run (resumable), list, print job commands, collect tables")(
    cmd_benchmark)


# ---------------------------------------------------------------- inspect
def _inspect_args(p: argparse.ArgumentParser) -> None:
    from .report import add_args
    add_args(p)


def cmd_inspect(args: argparse.Namespace) -> int | None:
    from .report import run
    return run(args)


cmd_inspect.add_args = _inspect_args
command("inspect", "what degradation a trained run learned: HTML report + recovery table")(cmd_inspect)


# ---------------------------------------------------------------- restore
def cmd_restore(args: argparse.Namespace) -> None:
    return {"train": _restore_train, "apply": _restore_apply, "eval": _restore_eval}[args.action](args)


def resolve_restore_config(args: argparse.Namespace):
    """The RestoreConfig of `bncr restore train`: preset, then the explicit options, then --set."""
    from .restore.config import restore_preset
    cfg = restore_preset(args.preset)
    for key in ("method", "run", "known_setting", "dataset", "data_root", "resolution", "count", "setting",
                "data_seed", "iters", "seed"):
        v = getattr(args, key)
        if v is not None:
            setattr(cfg, key, v)
    if args.skip_bad:
        cfg.skip_bad = True
    return cfg.override(args.set or []).validate()


def _restore_train(args: argparse.Namespace) -> None:
    cfg = resolve_restore_config(args)
    if dry_run_done(cfg, args):
        return
    from .restore import train_restorer
    out = train_restorer(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"restoration run: {out} (final.png: before | after; restorer-*.pt for `bncr restore apply`)")


def _restore_apply(args: argparse.Namespace) -> None:
    from .restore import apply_folder
    r = apply_folder(args.model, args.inp, args.out, png=args.png, skip_bad=args.skip_bad, device=args.device,
                     progress=not args.no_progress)
    print(f"restored {r.written} images into {r.out}" + (f"; skipped {len(r.skipped)} unreadable" if r.skipped else ""))
    for name, why in r.skipped:
        print(f"  skipped {name}: {why}")


def _restore_eval(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from .io import atomic_write_text
    from .metrics.evaluate import one_line_warnings
    from .restore.evaluate import evaluate_restorers, markdown
    with one_line_warnings():
        rows = evaluate_restorers(args.models, dataset=args.dataset, setting=args.setting, num=args.num,
                                  data_seed=args.data_seed, metrics=args.metric or ["psnr", "lpips"],
                                  data_root=args.data_root, picture=Path(args.picture) if args.picture else None,
                                  progress=not args.no_progress)
    print(markdown(rows))
    if args.out:
        atomic_write_text(args.out, json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.out}")


def _restore_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train a restorer on degraded images (UNIR or CycleGAN)",
                       description="train a restorer: BNCR-GAN+UNIR (--run), UNIR-dagger (--known-setting) or "
                                   "CycleGAN (--method cyclegan); docs/restoration.md")
    t.add_argument("--run", default=None, metavar="BNCR_RUN",
                   help="BNCR-GAN run: its learned degradation is UNIR's measurement model, its data the training data")
    t.add_argument("--known-setting", default=None, metavar="X",
                   help="UNIR-dagger: the measurement model is setting X's true simulator")
    t.add_argument("--method", default=None, choices=["unir", "cyclegan"], help="default unir")
    t.add_argument("--dataset", default=None, help="clean images (default: the run's, else shapes) or a folder")
    t.add_argument("--data-root", default=None)
    t.add_argument("--resolution", type=int, default=None)
    t.add_argument("--count", type=int, default=None, help="use the first N training images")
    t.add_argument("--setting", default=None,
                   help="degradation of the training images (default: the run's, else --known-setting; "
                        "A = the images as they are)")
    t.add_argument("--data-seed", type=int, default=None)
    t.add_argument("--skip-bad", action="store_true", help="skip unreadable images in a folder")
    t.add_argument("--preset", default="default", help="default | laptop (CPU scale)")
    t.add_argument("--iters", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--out", default=None, help="run directory (required unless --dry-run)")
    t.add_argument("--resume", default=None, help="auto (continue --out) or a restore-state.pt")
    t.add_argument("--dry-run", action="store_true", help="print the options as JSON and exit")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any restoration option (repeatable)")
    t.add_argument("--no-progress", action="store_true")
    a = sub.add_parser("apply", help="restore a folder of images (same file names)",
                       description="restore every image of a folder into a new folder (same relative paths and "
                                   "names); the output folder is complete or absent")
    a.add_argument("model", help="restoration run directory or restorer-*.pt")
    a.add_argument("--in", dest="inp", required=True, metavar="FOLDER", help="folder of degraded images")
    a.add_argument("--out", required=True, metavar="FOLDER", help="new folder for the restored images")
    a.add_argument("--png", action="store_true", help="write PNG files (name.png) instead of the inputs' formats")
    a.add_argument("--skip-bad", action="store_true", help="skip unreadable images (listed) instead of stopping")
    a.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    a.add_argument("--no-progress", action="store_true")
    e = sub.add_parser("eval", help="PSNR / LPIPS / KID / FID of restorers on test images degraded by a setting",
                       description="Table 4's protocol: test images degraded by --setting (default N), restored, "
                                   "compared with their clean versions; the degraded inputs are the first row")
    e.add_argument("models", nargs="+", help="restoration run directories or restorer-*.pt files")
    e.add_argument("--setting", default="N", help="degradation of the test images (default N, the paper's)")
    e.add_argument("--dataset", default=None, help="test images (default: the first restorer's training dataset)")
    e.add_argument("--data-root", default=None)
    e.add_argument("--num", type=int, default=500, help="test images (default 500)")
    e.add_argument("--data-seed", type=int, default=0)
    e.add_argument("--metric", action="extend", nargs="+", choices=["psnr", "lpips", "kid", "fid", "stats"],
                   help="default: psnr lpips; stats: sharpness, noise, blocks, frame, hf of each set and of the clean "
                        "images")
    e.add_argument("--picture", default=None, metavar="PNG", help="also save degraded | restored | clean grids")
    e.add_argument("--out", default=None, metavar="JSON", help="also write the rows as JSON")
    e.add_argument("--no-progress", action="store_true")


cmd_restore.add_args = _restore_args
command("restore", "restoration with the learned degradation: train | apply | eval (docs/restoration.md)")(cmd_restore)


# ---------------------------------------------------------------- lpips
def cmd_lpips(args: argparse.Namespace) -> None:
    from .restore import lpips_folders
    rows = lpips_folders(args.dir_a, args.dir_b, net=args.net, progress=not args.no_progress)
    if not args.mean_only:
        w = max(len(n) for n, _ in rows)
        for name, d in rows:
            print(f"{name:<{w}}  {d:.6f}")
    mean = sum(d for _, d in rows) / len(rows)
    print(f"mean LPIPS ({args.net}) over {len(rows)} images: {mean:.6f}")


def _lpips_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir_a", metavar="DIR_A")
    p.add_argument("dir_b", metavar="DIR_B")
    p.add_argument("--net", default="alex", choices=["alex", "vgg"], help="LPIPS backbone (default alex)")
    p.add_argument("--mean-only", action="store_true", help="print only the mean")
    p.add_argument("--no-progress", action="store_true")


cmd_lpips.add_args = _lpips_args
command("lpips", "LPIPS between the same-named images of two folders (per image and mean)")(cmd_lpips)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="bncr", description="Blur, noise and compression robust GANs.")
    parser.add_argument("--version", action="version", version=f"bncr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_args, _, help) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help, description=help))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        rc = COMMANDS[args.command][1](args)
    except UserError as e:
        print(f"bncr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bncr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `bncr settings | head`
        sys.stderr.close()
        return 0
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
