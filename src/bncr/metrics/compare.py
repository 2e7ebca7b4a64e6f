"""Compare runs on the same data: KID / FID of each G_x against the clean data, and the degradation statistics.

One table answers "which generator's clean fakes are closest to the clean data, and in which direction do the
others miss": a row for the clean data and one for the degraded training data (where every model starts and
what GAN imitates), one for the restored training data of each restoring model (what Deblur+GAN /
Deblock+GAN imitate), then a row per run (EMA G_x of its last snapshot). KID / FID come from
:func:`bncr.metrics.evaluate.evaluate_run` (same protocol, cached in the run's metric files); the statistics
from :mod:`bncr.metrics.imagestats`, on ``num`` images each, against the first ``num`` clean training images.

    bncr compare runs/gan runs/ambientgan runs/bncr-gan --num 500
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import UserError
from .imagestats import STAT_KEYS, image_stats

COLUMNS = ("kid", "fid") + STAT_KEYS + ("patch_swd",)


@dataclass
class CompareRow:
    name: str                      # "clean data", "degraded data (N)", or the run's model
    source: str                    # the run directory, or what the images are
    values: dict[str, float] = field(default_factory=dict)
    iteration: Optional[int] = None


def _samples(run: Path, num: int, seed: int) -> tuple[np.ndarray, int]:
    from ..api import find_snapshot, load_generator, sample_images
    from .evaluate import snapshot_iteration
    snap = find_snapshot(run)
    G = load_generator(snap)
    return sample_images(G, num, seed=seed).numpy(), snapshot_iteration(snap)


def compare_runs(runs: Sequence[Union[str, Path]], num: int = 500, *, seed: int = 0, fid: bool = False,
                 data_rows: bool = True, extractor: Any = None, progress: bool = True,
                 cache_dir: Optional[Union[str, Path]] = None) -> list[CompareRow]:
    """Rows of :data:`COLUMNS` for the clean data, the degraded data and each run (all on the first run's data).

    Every run must have trained on the same dataset, count and resolution (checked). num: images per row (and
    reference images); KID uses subsets of min(1000, num). fid: FID too (biased below 2048 samples).
    """
    from ..degradations.settings import get_setting
    from ..train.loop import materialise, materialise_restored
    from .evaluate import evaluate_run, open_reference, run_config
    from .fid import fid_from_features, kid_from_features
    from .inception import InceptionFeatures
    from .reference import reference_features
    if not runs:
        raise UserError("compare: give at least one run directory")
    if isinstance(num, bool) or not isinstance(num, int) or num < 10:
        raise UserError(f"--num must be an integer >= 10, got {num!r}")
    cfgs = [run_config(r) for r in runs]
    key = lambda c: (c["config"]["dataset"], c["config"]["count"], c.get("resolution"))  # noqa: E731
    for r, c in zip(runs, cfgs):
        if key(c) != key(cfgs[0]):
            raise UserError(f"{r}: trained on {key(c)} (dataset, count, resolution) but {runs[0]} on {key(cfgs[0])}; "
                            f"compare runs on the same data")
    extractor = extractor or InceptionFeatures(progress=progress)
    reference = open_reference(cfgs[0])
    ref = reference_features(reference, num, extractor, split="train", cache_dir=cache_dir, progress=progress)
    n_ref = min(num, len(reference))
    clean = np.stack([reference[i] for i in range(n_ref)])
    kinds = ("kid", "fid") if fid else ("kid",)

    def measured(name: str, source: str, images: np.ndarray) -> CompareRow:
        f = extractor.from_batches([images], total=len(images), progress=progress, desc=f"inception ({name})")
        v = {"kid": kid_from_features(f, ref.features, subset_size=min(1000, len(f), ref.count))[0]}
        if fid:
            v["fid"] = fid_from_features(f, ref.features)
        v.update(image_stats(images, clean))
        return CompareRow(name, source, v)

    rows = []
    if data_rows:
        # other images than the reference, for both data rows: KID of a set with itself is not its floor, and
        # degraded copies of the reference images would be closer to it than any other images
        held = np.arange(n_ref, min(2 * n_ref, len(reference)))
        if len(held) < 2:
            held = np.arange(n_ref)
        note = f"images {held[0]}..{held[-1]}" + (" (not the reference)" if held[0] >= n_ref else " (= the reference)")
        rows.append(measured("clean data", f"{reference.description}, {note}",
                             np.stack([reference[int(i)] for i in held])))
        settings = list(dict.fromkeys(c["config"]["setting"] for c in cfgs))
        for s in settings:
            y, _ = materialise(reference.dataset, get_setting(s), int(cfgs[0]["config"]["data_seed"]), progress)
            rows.append(measured(f"degraded data ({s})", f"the same {note} degraded by setting {s}", y[held]))
        for s, restore in dict.fromkeys((c["config"]["setting"], _restore(c)) for c in cfgs if _restore(c)):
            r, _, _, _ = materialise_restored(reference.dataset, get_setting(s),
                                              int(cfgs[0]["config"]["data_seed"]), restore, progress)
            rows.append(measured(f"restored data ({restore}, {s})",
                                 f"the same {note} degraded by setting {s}, then restored by {restore}", r[held]))
    for r, c in zip(runs, cfgs):
        rep = evaluate_run(r, metrics=kinds, num=num, snapshots="last", extractor=extractor, progress=progress,
                           cache_dir=cache_dir)
        v = {row.kind: row.value for row in rep.rows}
        images, it = _samples(Path(r), num, seed)
        v.update(image_stats(images, clean))
        rows.append(CompareRow(c["config"]["model"], str(r), v, it))
    return rows


def _restore(config: dict) -> Optional[str]:
    """The restoration a run trained on (its recorded model spec; runs from before the field have none)."""
    return (config.get("spec") or {}).get("restore")


def markdown(rows: Sequence[CompareRow]) -> str:
    """The rows as a Markdown table (KID x1e3; statistics as measured)."""
    cols = [c for c in COLUMNS if any(c in r.values for r in rows)]
    head = "| images | " + " | ".join("KID x1e3" if c == "kid" else c for c in cols) + " | source |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.values.get(c)
            cells.append("" if v is None else f"{v * 1e3:.1f}" if c == "kid" else f"{v:.3g}")
        it = f" (it {r.iteration})" if r.iteration is not None else ""
        lines.append(f"| {r.name}{it} | " + " | ".join(cells) + f" | {r.source} |")
    return "\n".join(lines)


def to_json(rows: Sequence[CompareRow]) -> str:
    return json.dumps([r.__dict__ for r in rows], indent=1)
