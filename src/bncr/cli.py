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
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
