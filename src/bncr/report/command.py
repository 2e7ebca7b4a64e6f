"""`bncr inspect RUN_DIR [--out report.html] [--n 2048]`: register with
``add_args(parser)`` and ``run(args)`` (bncr.cli)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of `bncr inspect`."""
    p.add_argument("run", help="run directory (its latest snapshot) or a snapshot-*.pt file")
    p.add_argument("--out", default=None, help="HTML report to write (default: RUN_DIR/inspect.html)")
    p.add_argument("--n", type=int, default=2048, help="samples of each degradation generator (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generators' latents (default 0)")
    p.add_argument("--manifest", default=None,
                   help="ground truth from a `bncr degrade` directory or its manifest.json instead of the run's setting")
    p.add_argument("--n-true", type=int, default=5000,
                   help="at most this many training images for the ground truth, evenly spaced (default 5000)")
    p.add_argument("--live", action="store_true",
                   help="the current weights of the run's training-state.pt instead of the EMA snapshot "
                        "(EMA lags far behind in short runs)")
    p.add_argument("--no-images", action="store_true", help="skip the real / fake image panels (no dataset access)")


def run(args: argparse.Namespace) -> Optional[int]:
    """Sample the run's G_k / G_n / G_q, print the recovery table, write the HTML report."""
    from . import inspect_run, write_html
    rep = inspect_run(args.run, n=args.n, seed=args.seed, manifest=args.manifest, n_true=args.n_true,
                      images=not args.no_images, live=args.live)
    out = Path(args.out) if args.out else rep.run_dir / "inspect.html"
    for line in rep.summary_lines():
        print(line)
    print()
    print(rep.table())
    print()
    write_html(rep, out)
    print(f"wrote {out}")
    return 0
