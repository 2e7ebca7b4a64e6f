"""Pack GPU runs for the device tool's return (at most 8 files of 16 MiB, 64 MiB in all).

    python benchmarks/gpu_pack.py RUNS_DIR OUT_DIR JOBS_FILE

In the job file's order (benchmarks/gpu_seeds.sh): first each run's small files and its last snapshot, then, while
room is left, the training state of runs that did not finish (to resume them elsewhere with ``--resume auto``),
into OUT_DIR/runs-0.tar, runs-1.tar, ... of at most 15 MiB each. Prints what was left out and which runs finished.
"""
from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

LIMIT, TOTAL, MAX_TARS = 15 * 2**20, 58 * 2**20, 6


def finished(run: Path) -> bool:
    """True when the run's last statistics line is at its configured last iteration."""
    cfg, st = run / "config.json", run / "stats.jsonl"
    if not (cfg.exists() and st.exists() and st.read_text().strip()):
        return False
    last = json.loads(st.read_text().strip().splitlines()[-1]).get("iteration")
    cfg = json.loads(cfg.read_text())
    return last == cfg.get("config", cfg).get("iters")


def main(runs_dir: str, out_dir: str, jobs_file: str) -> None:
    R, OUT = Path(runs_dir), Path(out_dir)
    names = [ln.split()[0] for ln in Path(jobs_file).read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    runs = [R / n for n in names if (R / n).is_dir()]
    files: list[Path] = []
    for run in runs:
        snaps = sorted(run.glob("snapshot-*.pt"))
        files += [f for f in sorted(run.iterdir()) if f.is_file()
                  and (not f.name.startswith(("snapshot-", "training-state")) or f in snaps[-1:])]
    files += [r / "training-state.pt" for r in runs if not finished(r) and (r / "training-state.pt").exists()]
    tars: list[tarfile.TarFile] = []
    size = total = 0
    left: list[Path] = []
    for f in files:
        n = f.stat().st_size
        new_tar = not tars or size + n > LIMIT
        if total + n > TOTAL or n > LIMIT or (new_tar and len(tars) == MAX_TARS):
            left.append(f)
            continue
        if new_tar:
            tars.append(tarfile.open(OUT / f"runs-{len(tars)}.tar", "w"))
            size = 0
        tars[-1].add(f, arcname=str(f.relative_to(R)))
        size += n
        total += n
    for t in tars:
        t.close()
    print(f"packed {len(files) - len(left)} files ({total / 2**20:.1f} MiB) into {len(tars)} tars; left out: "
          + (", ".join(str(f.relative_to(R)) for f in left) or "none"))
    print("finished:", " ".join(r.name for r in runs if finished(r)) or "none")
    print("unfinished:", " ".join(r.name for r in runs if not finished(r)) or "none")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs_dir", help="folder holding one folder per run (runs/gpu)")
    ap.add_argument("out_dir", help="where the tars go (the device tool's $OUT)")
    ap.add_argument("jobs_file", help="the job file the runs came from (sets the order)")
    a = ap.parse_args()
    main(a.runs_dir, a.out_dir, a.jobs_file)
