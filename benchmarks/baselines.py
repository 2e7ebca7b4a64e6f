"""PSNR of the classical restoration baselines: deblur (true kernel) and deblock, on natural crops and shapes.

    python benchmarks/baselines.py --out docs/research/img/baselines            # held-out tables + pictures
    python benchmarks/baselines.py --tune --out docs/research/img/baselines     # parameter sweeps (tuning split)

Data: crops of scikit-image's sample photos (astronaut, camera, coffee, chelsea, rocket, coins; grey
ones replicated to RGB), each photo first box-downscaled by 2 so a crop holds object-scale content;
32x32 and 64x64 crops at random positions whose luma std is >= 10 grey levels (flat sky crops say
nothing about restoration). The tuning split (--tune) takes crops from the left half of each photo,
the held-out split (default) from the right half, so parameters chosen on one are measured on the
other. Plus the embedded ``shapes`` data (32x32; tuning: train split, held-out: test split).

Degradations are the project's own (src/bncr/degradations/settings.py): blur with the kernels that
settings B (disk) and C (motion) draw for image i (data seed 0), on 64x64 crops the FFHQ variants
B-ffhq / C-ffhq (larger kernels); JPEG by Pillow at q = 60 and 80.

Restorers: ``bncr.baselines.deblur`` (default lambda) vs scikit-image's Wiener filter with the same
kernel, the same boundary handling (reflection padding and edge taper) and its balance the best of a
grid for each table cell (an oracle choice, favourable to Wiener); ``bncr.baselines.deblock`` with
method "dct", and where installed "jpegqs" (Debian program, fed ``y`` re-encoded, as the library's
default call does) and "bm3d" (PyPI package; slow, so on the first --n-bm3d images only).

Writes into --out: baselines.md (tables), baselines.json (every number), deblur.png and deblock.png
(clean | degraded | restored), or with --tune: tune.md / tune.json.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from bncr.baselines import deblock, deblur
from bncr.baselines import DEFAULT_LAMBDA
from bncr.baselines.deconv import pad_and_taper
from bncr.data.shapes import render_shapes
from bncr.degradations.jpeg import jpeg_pil
from bncr.degradations.settings import apply_degradation, get_setting, sample_params

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins")
WIENER_BALANCES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
QUALITIES = (60, 80)
LAMBDA_GRID = (1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0, 128000.0)
SIGMA_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
# images shown in the pictures: photo crops 0 and 3 are astronaut and chelsea (fur: fine texture)
PICTURED = {"photos 32x32": (0, 3), "photos 64x64": (0, 3), "shapes 32x32": (0, 1)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, peak 255) of two uint8 images; capped at 80 dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 255.0 ** 2 * 1e-8)))


def _photo(name: str) -> np.ndarray:
    import skimage.data
    a = np.asarray(getattr(skimage.data, name)())
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    im = Image.fromarray(a[..., :3].astype(np.uint8), mode="RGB")
    return np.asarray(im.reduce(2), dtype=np.uint8)


def natural_crops(size: int, n: int, split: str, seed: int = 0, min_std: float = 10.0) -> list[np.ndarray]:
    """`n` size x size crops, cycling over PHOTOS; split 'tune' = left halves, 'test' = right halves."""
    rng = np.random.default_rng([seed, size, 0 if split == "tune" else 1])
    photos = [_photo(p) for p in PHOTOS]
    out = []
    for i in range(n):
        ph = photos[i % len(photos)]
        h, w = ph.shape[:2]
        c_lo, c_hi = (0, w // 2 - size) if split == "tune" else (w // 2, w - size)
        for _ in range(200):
            r, c = int(rng.integers(0, h - size + 1)), int(rng.integers(c_lo, c_hi + 1))
            crop = ph[r:r + size, c:c + size]
            luma = crop.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            if luma.std() >= min_std:
                break
        out.append(np.ascontiguousarray(crop))
    return out


def datasets(split: str, n32: int, n64: int, nshapes: int) -> dict[str, tuple[list[np.ndarray], tuple[str, str]]]:
    """name -> (clean images, (disk setting, motion setting))."""
    sh_split = "train" if split == "tune" else "test"
    return {
        "photos 32x32": (natural_crops(32, n32, split), ("B", "C")),
        "photos 64x64": (natural_crops(64, n64, split), ("B-ffhq", "C-ffhq")),
        "shapes 32x32": ([render_shapes(0, i, 32, split=sh_split) for i in range(nshapes)], ("B", "C")),
    }


def blurred(x: np.ndarray, setting: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, kernel): image i blurred exactly as the setting's degraded dataset would (data seed 0)."""
    p, rn = sample_params(get_setting(setting), 0, i)
    return apply_degradation(x, p, rn), p.kernel


def wiener(y: np.ndarray, kernel: np.ndarray, balance: float) -> np.ndarray:
    """scikit-image's Wiener filter per channel, with deblur's boundary handling (reflect pad 2 x K, taper)."""
    from skimage.restoration import wiener as sk_wiener
    p = 2 * max(kernel.shape)
    f, _ = pad_and_taper(y.astype(np.float64) / 255.0, kernel, p)
    out = np.stack([sk_wiener(f[..., c], kernel, balance, clip=False) for c in range(3)], axis=2)
    return np.round(np.clip(out[p:-p, p:-p], 0, 1) * 255).astype(np.uint8)


def optional_deblockers() -> list[str]:
    """Deblock methods beyond "dct" that this machine can run."""
    out = ["jpegqs"] if shutil.which("jpegqs") else []
    try:
        import bm3d  # noqa: F401
        out.append("bm3d")
    except ImportError:
        pass
    return out


def jpeg_bytes(x: np.ndarray, q: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x, mode="RGB").save(buf, format="JPEG", quality=q)
    return buf.getvalue()


def summary(vals: list[float], base: list[float]) -> dict[str, float]:
    v, b = np.asarray(vals), np.asarray(base)
    d = v - b
    return {"psnr": float(v.mean()), "gain": float(d.mean()), "sem_gain": float(d.std(ddof=1) / np.sqrt(len(v))),
            "improved": float((v > b).mean())}


# ----------------------------------------------------------------------------------------------- held-out
def run_test(args: argparse.Namespace, out: Path) -> None:
    data = datasets("test", args.n32, args.n64, args.nshapes)
    extra = [m for m in optional_deblockers() if m != "bm3d" or args.n_bm3d > 0]
    res: dict[str, dict] = {"blur": {}, "jpeg": {}, "lambda": DEFAULT_LAMBDA,
                            "counts": {k: len(v[0]) for k, v in data.items()}, "optional_deblockers": sorted(extra)}
    pics_blur, pics_jpeg = [], []
    t0 = time.time()
    for name, (xs, (sd, sm)) in data.items():
        for kind, setting in (("disk", sd), ("motion", sm)) if args.only != "jpeg" else ():
            base, ours, wien = [], [], {b: [] for b in WIENER_BALANCES}
            for i, x in enumerate(xs):
                y, k = blurred(x, setting, i)
                d = deblur(y, k)
                base.append(psnr(y, x))
                ours.append(psnr(d, x))
                ws = {b: wiener(y, k, b) for b in WIENER_BALANCES}
                for b in WIENER_BALANCES:
                    wien[b].append(psnr(ws[b], x))
                if i in PICTURED[name]:
                    pics_blur.append((f"{name} {kind}", f"{name} | {kind} ({setting})", x, y, d, ws))
            best_b = max(WIENER_BALANCES, key=lambda b: np.mean(wien[b]))
            cell = {"setting": setting, "n": len(xs), "input": float(np.mean(base)),
                    "deblur": summary(ours, base), "wiener": summary(wien[best_b], base), "wiener_balance": best_b,
                    "deblur_minus_wiener": summary(ours, wien[best_b])}
            res["blur"][f"{name} | {kind} ({setting})"] = cell
            print(f"[{time.time() - t0:6.0f}s] blur {name} {kind}: input {cell['input']:.2f}, deblur "
                  f"{cell['deblur']['psnr']:.2f}, wiener {cell['wiener']['psnr']:.2f} (balance {best_b})", flush=True)
        for q in QUALITIES if args.only != "blur" else ():
            # the library's own call: deblock(y, q, method), jpegqs on y re-encoded (no original bytes)
            fast = [m for m in ("jpegqs", "dct") if m == "dct" or m in extra]
            base, vals = [], {m: [] for m in [*fast, *extra]}
            for i, x in enumerate(xs):
                y = jpeg_pil(x, q)
                base.append(psnr(y, x))
                # bm3d (~1 s per channel call) only on the first n_bm3d images
                outs = {m: deblock(y, q, m) for m in vals if m in fast or i < args.n_bm3d}
                for m, o in outs.items():
                    vals[m].append(psnr(o, x))
                if i in PICTURED[name]:
                    pics_jpeg.append((f"{name} q={q}", x, y, outs))
            cell = {"n": len(xs), "input": float(np.mean(base)), **{m: summary(vals[m], base) for m in fast}}
            if "bm3d" in extra:
                nb = len(vals["bm3d"])
                cell["bm3d subset"] = {"n": nb, "input": float(np.mean(base[:nb])),
                                       **{m: summary(vals[m][:nb], base[:nb]) for m in [*fast, "bm3d"]}}
            res["jpeg"][f"{name} | q={q}"] = cell
            print(f"[{time.time() - t0:6.0f}s] jpeg {name} q={q}: input {cell['input']:.2f}, "
                  + ", ".join(f"{m} {cell[m]['psnr']:.2f}" for m in fast), flush=True)
    res["seconds"] = time.time() - t0
    (out / "baselines.json").write_text(json.dumps(res, indent=1))
    (out / "baselines.md").write_text(tables(res))
    picture(pics_blur, ["clean", "blurred", "deblur", "Wiener"], out / "deblur.png",
            lambda t: (t[2], t[3], t[4], t[5][res["blur"][t[1]]["wiener_balance"]]))
    shown = [m for m in ("jpegqs", "dct", "bm3d") if m == "dct" or m in extra]
    cols = ["clean", "JPEG", *[f"deblock ({m})" for m in shown]]
    picture(pics_jpeg, cols, out / "deblock.png", lambda t: (t[1], t[2], *[t[3][m] for m in shown if m in t[3]]))
    print(tables(res))


def tables(res: dict) -> str:
    f = lambda s: f"{s['psnr']:.2f} ({s['gain']:+.2f} ± {s['sem_gain']:.2f}, {100 * s['improved']:.0f} %)"  # noqa: E731
    lines = [f"Deblur (lambda = {res['lambda']:g}) vs Wiener (balance: best of {len(WIENER_BALANCES)} per cell). "
             "Each cell: mean PSNR (dB) (mean gain over the input ± its standard error, % of images improved).", "",
             "| data | kernel | n | input | deblur | Wiener | balance | deblur − Wiener |",
             "|---|---|---|---|---|---|---|---|"]
    for key, c in res["blur"].items():
        data, kernel = key.split(" | ")
        d = c["deblur_minus_wiener"]
        lines.append(f"| {data} | {kernel} | {c['n']} | {c['input']:.2f} | {f(c['deblur'])} | {f(c['wiener'])} | "
                     f"{c['wiener_balance']:g} | {d['gain']:+.2f} ± {d['sem_gain']:.2f} "
                     f"({100 * d['improved']:.0f} %) |")
    if not res["jpeg"]:
        return "\n".join(lines) + "\n"
    ms = [m for m in ("jpegqs", "dct") if any(m in c for c in res["jpeg"].values())]
    lines += ["", "Deblock, `deblock(y, q, method)`. Each cell: mean PSNR (dB) (mean gain over the JPEG input ± "
              "standard error, % improved).", "",
              "| data | quality | n | JPEG input | " + " | ".join(ms) + " |", "|---|---|---|---|" + "---|" * len(ms)]
    for key, c in res["jpeg"].items():
        data, q = key.split(" | ")
        lines.append(f"| {data} | {q} | {c['n']} | {c['input']:.2f} | " + " | ".join(f(c[m]) for m in ms) + " |")
    subs = {k: c["bm3d subset"] for k, c in res["jpeg"].items() if "bm3d subset" in c}
    if subs:
        ms = [*ms, "bm3d"]
        lines += ["", "Deblock with bm3d, on the first images of each cell only (bm3d takes seconds per image).", "",
                  "| data | quality | n | JPEG input | " + " | ".join(ms) + " |", "|---|---|---|---|" + "---|" * len(ms)]
        for key, c in subs.items():
            data, q = key.split(" | ")
            lines.append(f"| {data} | {q} | {c['n']} | {c['input']:.2f} | " + " | ".join(f(c[m]) for m in ms) + " |")
    return "\n".join(lines) + "\n"


def picture(rows: list, cols: list[str], path: Path, get: Callable) -> None:
    if not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.6 * len(cols), 1.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        ims = get(row)
        x = ims[0]
        for c, im in enumerate(ims):
            ax = axes[r][c]
            ax.imshow(im, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row[0], fontsize=6)
            else:
                ax.set_xlabel(f"{psnr(im, x):.1f} dB", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- tuning
def run_tune(args: argparse.Namespace, out: Path) -> None:
    data = datasets("tune", args.n32, args.n64, args.nshapes)
    extra = optional_deblockers()
    res: dict[str, dict] = {"lambda": {}, "deblock": {}}
    t0 = time.time()
    for name, (xs, (sd, sm)) in data.items():
        for kind, setting in (("disk", sd), ("motion", sm)) if args.only != "jpeg" else ():
            base, vals = [], {lam: [] for lam in LAMBDA_GRID}
            for i, x in enumerate(xs):
                y, k = blurred(x, setting, i)
                base.append(psnr(y, x))
                for lam in LAMBDA_GRID:
                    vals[lam].append(psnr(deblur(y, k, lam=lam), x))
            res["lambda"][f"{name} | {kind}"] = {"input": float(np.mean(base)),
                                                 **{str(lam): float(np.mean(v)) for lam, v in vals.items()}}
            print(f"[{time.time() - t0:6.0f}s] lambda {name} {kind}: "
                  + " ".join(f"{lam:g}:{np.mean(v):.2f}" for lam, v in vals.items()), flush=True)
        xs_j = xs[: args.n_deblock]
        for q in QUALITIES if args.only != "blur" else ():
            cfgs: dict[str, Callable] = {f"dct s={s:g}": (lambda y, q, jb, s=s: deblock(y, q, "dct", sigma_scale=s))
                                         for s in SIGMA_SCALES}
            cfgs.update({f"dct k={k:g}": (lambda y, q, jb, k=k: deblock(y, q, "dct", k=k)) for k in (2.7, 3.5, 4.5)})
            cfgs["dct no projection"] = lambda y, q, jb: deblock(y, q, "dct", project=False)
            cfgs["dct step 2"] = lambda y, q, jb: deblock(y, q, "dct", step=2)
            if "jpegqs" in extra:
                for lv in (1, 3, 6):
                    cfgs[f"jpegqs level {lv}, original file"] = (
                        lambda y, q, jb, lv=lv: deblock(y, q, "jpegqs", jpeg=jb, jpegqs_level=lv))
                cfgs["jpegqs level 6, re-encoded (default)"] = lambda y, q, jb: deblock(y, q, "jpegqs")
            # bm3d costs ~1 s per channel call whatever the size: swept on a small subset, next to
            # the default "dct" on the same images
            sub: dict[str, Callable] = {}
            if "bm3d" in extra and args.n_bm3d > 0:
                sub["dct (bm3d subset)"] = lambda y, q, jb: deblock(y, q, "dct")
                sub.update({f"bm3d s={s:g}": (lambda y, q, jb, s=s: deblock(y, q, "bm3d", sigma_scale=s))
                            for s in (0.5, 1.0, 2.0)})
            base, vals, secs = [], {c: [] for c in [*cfgs, *sub]}, {c: 0.0 for c in [*cfgs, *sub]}
            for j, x in enumerate(xs_j):
                y, jb = jpeg_pil(x, q), jpeg_bytes(x, q)
                base.append(psnr(y, x))
                for c, fn in [*cfgs.items(), *(sub.items() if j < args.n_bm3d else [])]:
                    t = time.time()
                    vals[c].append(psnr(fn(y, q, jb), x))
                    secs[c] += time.time() - t
            res["deblock"][f"{name} | q={q}"] = {"n": len(xs_j), "input": float(np.mean(base)),
                                                 "input (bm3d subset)": float(np.mean(base[:args.n_bm3d])),
                                                 **{c: {"psnr": float(np.mean(v)), "ms": 1000 * secs[c] / len(v),
                                                        "n": len(v)} for c, v in vals.items()}}
            print(f"[{time.time() - t0:6.0f}s] deblock {name} q={q}: input {np.mean(base):.2f} "
                  + " ".join(f"[{c}] {np.mean(v):.2f}" for c, v in vals.items()), flush=True)
    res["seconds"] = time.time() - t0
    stem = "tune" + (f"-{args.only}" if args.only else "")
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    lines = []
    if res["lambda"]:
        lines += ["Tuning split: mean PSNR (dB) of deblur per lambda (best in bold).", "",
                  "| data | kernel | input | " + " | ".join(f"λ={lam:g}" for lam in LAMBDA_GRID) + " |",
                  "|---|---|---|" + "---|" * len(LAMBDA_GRID)]
        for key, c in res["lambda"].items():
            best = max(LAMBDA_GRID, key=lambda lam: c[str(lam)])
            lines.append(f"| {key} | {c['input']:.2f} | "
                         + " | ".join(f"**{c[str(lam)]:.2f}**" if lam == best else f"{c[str(lam)]:.2f}"
                                      for lam in LAMBDA_GRID)
                         + " |")
        lines.append("")
    if res["deblock"]:
        cells = res["deblock"]
        lines += ["Tuning split: mean PSNR (dB) of deblock configurations (ms per image in brackets, 1 thread).", "",
                  "| configuration | " + " | ".join(k.replace(" | ", ", ") for k in cells) + " |",
                  "|---|" + "---|" * len(cells),
                  f"| JPEG input (n = {args.n_deblock}) | "
                  + " | ".join(f"{c['input']:.2f}" for c in cells.values()) + " |"]
        for cfg in list(next(iter(cells.values())).keys())[3:]:
            if cfg == "dct (bm3d subset)":
                lines.append(f"| JPEG input (bm3d subset, n = {args.n_bm3d}) | "
                             + " | ".join(f"{c['input (bm3d subset)']:.2f}" for c in cells.values()) + " |")
            lines.append(f"| {cfg} | "
                         + " | ".join(f"{c[cfg]['psnr']:.2f} ({c[cfg]['ms']:.0f})" for c in cells.values()) + " |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--tune", action="store_true", help="parameter sweeps on the tuning split instead")
    ap.add_argument("--n32", type=int, default=120, help="32x32 photo crops (default 120)")
    ap.add_argument("--n64", type=int, default=60, help="64x64 photo crops (default 60)")
    ap.add_argument("--nshapes", type=int, default=120, help="shapes images (default 120)")
    ap.add_argument("--n-deblock", type=int, default=40, help="--tune: images per data set for the deblock sweep")
    ap.add_argument("--only", choices=("blur", "jpeg"), help="run only the blur or only the JPEG part")
    ap.add_argument("--n-bm3d", type=int, default=8,
                    help="images per data set and quality for the slow bm3d (default 8)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (run_tune if args.tune else run_test)(args, out)


if __name__ == "__main__":
    main()
