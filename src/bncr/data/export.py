"""`bncr degrade`: write a setting's degraded dataset with its ground-truth manifest and previews."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..degradations.settings import Setting
from ..errors import UserError
from ..io import atomic_path, atomic_write_text, ensure_writable_dir
from .degraded import DegradedDataset, list_collate
from .grid import make_grid

MANIFEST = "manifest.json"


def _iterate(ds: DegradedDataset, workers: int, batch: int = 256):
    """Yield (index, y, params) in index order, with `workers` DataLoader processes (0 = in-process)."""
    if workers <= 0:
        for i in range(len(ds)):
            y, p = ds[i]
            yield i, y, p
        return
    from torch.utils.data import DataLoader
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=list_collate, shuffle=False)
    i = 0
    for items in loader:
        for y, p in items:
            yield i, y, p
            i += 1


def _save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def _params_plot(records: list[dict[str, Any]], setting: Setting, path: Path) -> None:
    """Histograms of the ground-truth parameters (a picture of the setting's distributions)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    vals = lambda key: [r[key] for r in records if r.get(key) is not None]  # noqa: E731
    if setting.blur is not None:
        panels += [("disk radius r", vals("radius")), ("motion exposure T", vals("exposure"))]
    if setting.noise:
        panels += [("log10 shot variance", np.log10(vals("shot")).tolist()),
                   ("log10 read variance", np.log10(vals("read")).tolist())]
    if setting.quality is not None:
        panels += [("JPEG quality q", vals("quality"))]
    rates = [("blurred", np.mean([r["blurred"] for r in records])),
             ("noised", np.mean([r["noised"] for r in records])),
             ("compressed", np.mean([r["compressed"] for r in records]))]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.2 * (len(panels) + 1), 2.8), squeeze=False)
    ax = axes[0, 0]
    ax.bar([r[0] for r in rates], [r[1] for r in rates], color="tab:gray")
    ax.set_ylim(0, 1)
    ax.set_title("fraction of images")
    for ax, (title, v) in zip(axes[0, 1:], panels):
        ax.hist(v, bins=30 if title != "motion exposure T" else 20, color="tab:blue")
        ax.set_title(f"{title} (n={len(v)})", fontsize=9)
    fig.suptitle(f"setting {setting.name}: {setting.description}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def write_degraded(clean, setting: Setting, out: str | Path, data_seed: int = 0, fmt: str = "npy",
                   workers: int = 0, progress: bool = True) -> dict[str, Any]:
    """Write the degraded dataset, its manifest, a preview and a parameter plot into `out`.

    Files: ``degraded.npy`` (N,H,W,3 uint8) or ``images/NNNNNN.png``; ``kernels.npy`` (N,K,K
    float32, zeros where not blurred) when the setting blurs; ``manifest.json`` (every image's
    ground truth; written last, so a directory without it is incomplete); ``preview.png`` (clean
    above, degraded below); ``params.png``. Same arguments give byte-identical files.
    """
    if fmt not in ("npy", "png"):
        raise UserError(f"--format must be npy or png, got {fmt!r}")
    out = ensure_writable_dir(out)
    (out / MANIFEST).unlink(missing_ok=True)  # whatever was here is no longer complete
    ds = DegradedDataset(clean, setting, data_seed)
    n = len(ds)
    if n == 0:
        raise UserError("the dataset has no images (check --limit)")
    first = clean[0]
    ys = np.zeros((n, *first.shape), np.uint8) if fmt == "npy" else None
    K = setting.blur.size if setting.blur else 0
    kernels = np.zeros((n, K, K), np.float32) if K else None
    if fmt == "png":
        (out / "images").mkdir(exist_ok=True)
    records = []
    for i, y, p in tqdm(_iterate(ds, workers), total=n, desc=f"degrade {setting.name}", unit="img",
                        disable=not progress, mininterval=1.0):
        if ys is not None:
            ys[i] = y
        else:
            _save_png(y, out / "images" / f"{i:06d}.png")
        if kernels is not None and p.kernel is not None:
            kernels[i] = p.kernel
        records.append({"index": i, **p.to_json()})
    if ys is not None:
        with atomic_path(out / "degraded.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, ys)
    if kernels is not None:
        with atomic_path(out / "kernels.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, kernels)
    m = min(16, n)
    clean_rows = np.stack([clean[i] for i in range(m)])
    deg_rows = ys[:m] if ys is not None else np.stack([ds[i][0] for i in range(m)])
    preview = np.concatenate([make_grid(clean_rows, m, padding=1, pad_value=255),
                              make_grid(deg_rows, m, padding=1, pad_value=255)], axis=0)
    scale = max(1, 128 // first.shape[0])  # small images are enlarged (nearest) so that degradations show
    preview = preview.repeat(scale, axis=0).repeat(scale, axis=1)
    _save_png(preview, out / "preview.png")
    _params_plot(records, setting, out / "params.png")
    summary = {
        "blurred": float(np.mean([r["blurred"] for r in records])),
        "noised": float(np.mean([r["noised"] for r in records])),
        "compressed": float(np.mean([r["compressed"] for r in records])),
    }
    manifest = {
        "dataset": getattr(clean, "name", "images"), "resolution": int(first.shape[0]),
        "setting": setting.to_dict(), "data_seed": int(data_seed), "count": n, "format": fmt,
        "kernel_size": K or None, "fractions": summary, "images": records,
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
