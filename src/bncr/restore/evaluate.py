"""Evaluating restorers as in Table 4: test images degraded by a setting (the paper: N), restored, compared with
their clean versions. PSNR and LPIPS are paired (restored image vs its own clean image, mean over images);
KID and FID compare the set of restorations with the set of clean images (Inception features). "stats" adds the
image statistics of bncr.metrics.imagestats (sharpness, flat-region noise, 8x8 blocks, a frame along the border, high-frequency energy)
of every set and of the clean images themselves (a last row), so a reader sees where each restorer lands between
the degraded inputs and the clean images."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import UserError

METRICS = ("psnr", "lpips", "kid", "fid", "stats")


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB) of uint8 images (N, H, W, 3); identical images give 100 dB (a cap, not infinity)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return np.where(mse > 0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-20)), 100.0)


def test_images(dataset: str, setting: str, num: int, data_seed: int = 0, resolution: Optional[int] = None,
                data_root: Optional[str] = None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(degraded y, clean x) uint8 of the first `num` test images of `dataset`, degraded by `setting`."""
    from ..data import open_dataset
    from ..degradations.settings import get_setting
    from ..train.loop import materialise
    if num < 2:
        raise UserError(f"--num must be >= 2 test images, got {num}")
    clean = open_dataset(dataset, resolution, root=data_root, split="test", count=num)
    return materialise(clean, get_setting(setting), data_seed, progress)


def evaluate_restorers(models: Sequence[str | Path], *, dataset: Optional[str] = None, setting: str = "N",
                       num: int = 500, data_seed: int = 0, metrics: Sequence[str] = METRICS,
                       data_root: Optional[str] = None, lpips_net: str = "alex", extractor: Any = None,
                       picture: Optional[Path] = None, progress: bool = True) -> list[dict[str, Any]]:
    """One row per image set: the degraded inputs, then each restorer's outputs; each row has the metrics asked.

    dataset / resolution default to the first restorer's training data (its config).
    """
    from ..metrics.imagestats import image_stats
    from .train import load_restorer, restore_uint8, describe_method
    from .config import RestoreConfig
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise UserError(f"--metric {bad[0] if bad else ''!r}: choose from {', '.join(METRICS)}")
    if not models:
        raise UserError("give at least one restorer (a `bncr restore train` run directory or restorer-*.pt)")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = [load_restorer(m, dev) for m in models]
    first = loaded[0][1]
    y, x = test_images(dataset or first["config"]["dataset"], setting, num, data_seed,
                       None if dataset else first["resolution"], data_root, progress)
    sets = [("degraded input", "", y)]
    for m, (G, info) in zip(models, loaded):
        cfg = RestoreConfig.from_dict(info["config"])
        sets.append((describe_method(cfg, info["measurement"]), str(m),
                     restore_uint8(G, y, cfg.dequantize, device=dev)))
    lp = ref = None
    if "lpips" in metrics:
        from ..metrics.lpips import lpips_distance, lpips_model
        lp = lpips_model(lpips_net)
        to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    if "kid" in metrics or "fid" in metrics:
        from ..metrics.inception import InceptionFeatures
        extractor = extractor or InceptionFeatures(progress=progress)
        ref = extractor(x, desc="inception (clean)")
    rows = []
    for name, source, imgs in sets:
        row: dict[str, Any] = {"images": name, "source": source, "count": len(imgs)}
        if "psnr" in metrics:
            row["psnr"] = float(psnr(imgs, x).mean())
        if lp is not None:
            row["lpips"] = float(lpips_distance(to_t(imgs), to_t(x), lp).mean())
        if ref is not None:
            from ..metrics.fid import fid_from_features, kid_from_features
            f = extractor(imgs, desc=f"inception ({name[:20]})")
            if "kid" in metrics:
                row["kid"] = float(kid_from_features(f, ref, subset_size=min(1000, len(f)))[0])
            if "fid" in metrics:
                row["fid"] = float(fid_from_features(f, ref))
        if "stats" in metrics:
            row.update(image_stats(imgs))
        rows.append(row)
    if "stats" in metrics:
        rows.append({"images": "clean (reference)", "source": "", "count": len(x), **image_stats(x)})
    if picture is not None:
        from ..train import visual
        panels = [(n if len(n) < 40 else n.split(" (")[0], imgs[:32]) for n, _, imgs in sets] + [("clean x", x[:32])]
        visual.save_panels(panels, Path(picture), f"test images degraded by setting {setting}")
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (KID x1e3)."""
    from ..metrics.imagestats import STAT_KEYS
    cols = [c for c in (*(m for m in METRICS if m != "stats"), *STAT_KEYS) if any(c in r for r in rows)]
    head = {"psnr": "PSNR dB", "lpips": "LPIPS", "kid": "KID x1e3", "fid": "FID", "sharpness": "sharpness",
            "noise": "noise", "blocks": "blocks", "frame": "frame", "hf": "hf"}
    fmt = {"psnr": lambda v: f"{v:.2f}", "lpips": lambda v: f"{v:.4f}", "kid": lambda v: f"{1e3 * v:.2f}",
           "fid": lambda v: f"{v:.1f}", "sharpness": lambda v: f"{v:.1f}", "noise": lambda v: f"{v:.2f}",
           "blocks": lambda v: f"{v:.3f}", "frame": lambda v: f"{v:.2f}", "hf": lambda v: f"{v:.3f}"}
    lines = ["| images | " + " | ".join(head[c] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['images']} | " + " | ".join(fmt[c](r[c]) if c in r else "-" for c in cols) + " |")
    return "\n".join(lines)


def evaluate_restoration_run(run: str | Path, *, metrics: Sequence[str], num: int, test_setting: str = "N",
                             data_root: Optional[str] = None, extractor: Any = None, progress: bool = True,
                             log: Any = print, **_: Any) -> list[dict[str, Any]]:
    """A benchmark cell's evaluation: the run's latest restorer on `num` test images degraded by `test_setting`,
    one line per metric appended to ``metric-<name>.jsonl`` (names like ``lpips10k_testN``); a restorer whose lines
    are all there already is not evaluated again. Takes (and ignores) evaluate_run's other keywords."""
    import time

    from ..bench.grids import restoration_metric_name
    from ..metrics.evaluate import append_jsonl, file_digest, metric_file, read_metric_lines, snapshot_iteration
    from .train import find_restorer
    snap = find_restorer(run)
    names = {k: restoration_metric_name(k, num, test_setting) for k in metrics}
    done = {n for n in names.values() if any(r.get("snapshot") == snap.name for r in read_metric_lines(metric_file(run, n)))}
    if len(done) == len(names):
        log(f"{snap.name}: {', '.join(names.values())} already evaluated")
        return []
    t0 = time.time()
    rows = evaluate_restorers([snap], setting=test_setting, num=num, metrics=list(metrics), data_root=data_root,
                              extractor=extractor, progress=progress)
    secs = time.time() - t0
    inp, out = rows[0], rows[1]
    for k, n in names.items():
        append_jsonl(metric_file(run, n), {
            "snapshot": snap.name, "iteration": snapshot_iteration(snap), "kind": k, "value": out[k],
            "input_value": inp[k], "std": None, "digest": file_digest(snap), "seconds": {"metric": round(secs, 2)},
            "protocol": {"test_images": out["count"], "test_setting": test_setting, "split": "test",
                         "reference": "the same test images, clean"}})
    log(f"{snap.name}: " + ", ".join(f"{n} {out[k]:.4g} (degraded input {inp[k]:.4g})" for k, n in names.items()))
    return rows
