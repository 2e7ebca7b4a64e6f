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
def cmd_train(args: argparse.Namespace) -> None:
    from .train.config import preset
    from .train.loop import train
    cfg = preset(args.preset)
    cfg.model, cfg.setting, cfg.dataset, cfg.data_root = args.model, args.setting, args.dataset, args.data_root
    cfg.resolution = args.resolution
    if args.iters is not None:
        cfg.iters = args.iters
    if args.width is not None:
        cfg.width = args.width
    if args.count is not None:
        cfg.count = args.count
    if args.seed is not None:
        cfg.seed = args.seed
    if args.oracle_clean:
        cfg.oracle_clean = True
    cfg = cfg.override(args.set or [])
    out = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    import os
    if os.environ.get("RANK", "0") == "0":
        print(f"run directory: {out} (final.png, images/, stats.jsonl, snapshot-*.pt)")


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model name (`bncr models`)")
    p.add_argument("--setting", required=True, help="degradation setting (`bncr settings`)")
    p.add_argument("--dataset", default="deadleaves", help="deadleaves | cifar10 | fashion-mnist | image folder")
    p.add_argument("--data-root", default=None)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--count", type=int, default=None, help="use the first N training images")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--preset", default="paper", help="option set: paper (default, NR-GAN settings) | cpu (narrow, short)")
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
