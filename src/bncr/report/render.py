"""The HTML report of `bncr inspect`: one self-contained file (figures are PNG data URIs)."""
from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..io import atomic_write_text, ensure_writable_dir
from .recovery import BLUR_ENTROPY_NATS, MASK_THRESHOLD, NOISE_STD_MIN, NOISE_X

if TYPE_CHECKING:
    from . import Report

GEN_COLOR, TRUE_COLOR = "tab:blue", "tab:orange"


# ---------------------------------------------------------------------------------------------- figures
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _pad(k: np.ndarray, K: int) -> np.ndarray:
    p = (K - k.shape[-1]) // 2
    return np.pad(k, [(0, 0), (p, p), (p, p)]) if p > 0 else k


def fig_kernels(gen_k: np.ndarray, true_k: Optional[np.ndarray], single: bool, n: int = 16) -> bytes:
    """Rows of kernels (each scaled to its own maximum): generated k^g, and true kernels."""
    plt = _plt()
    K = max(gen_k.shape[-1], true_k.shape[-1] if true_k is not None else 0)
    rows = [("generated k^g" if not single else "the learned kernel", _pad(gen_k[:1 if single else n], K))]
    if true_k is not None:
        rows.append(("true kernels (first training images)", _pad(true_k[:n], K)))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.62, 0.78 * len(rows) + 0.1), squeeze=False)
    for r, (name, ks) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if i < len(ks):
                ax.imshow(ks[i], cmap="magma", interpolation="nearest", vmin=0)
        axes[r, 0].set_title(name, fontsize=8, loc="left")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.82, bottom=0.02, hspace=0.5, wspace=0.08)
    return _png(fig)


def _hist(ax, g: Optional[np.ndarray], t: Optional[np.ndarray], bins, title: str, xlabel: str,
          g_label: str = "generated", t_label: str = "true") -> None:
    if g is not None and len(g):
        ax.hist(g, bins=bins, density=True, alpha=0.65, color=GEN_COLOR, label=f"{g_label} (n={len(g)})")
    if t is not None and len(t):
        ax.hist(t, bins=bins, density=True, alpha=0.5, color=TRUE_COLOR, label=f"{t_label} (n={len(t)})")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)


def fig_blur(rep: "Report") -> bytes:
    plt = _plt()
    g, t = rep.recovery.gen, rep.recovery.true
    m_k = rep.generated.m_k
    panels = 2 + (m_k is not None)
    fig, axes = plt.subplots(1, panels, figsize=(4.0 * panels, 2.9), squeeze=False)
    axes = list(axes[0])
    if m_k is not None:
        ax = axes.pop(0)
        _hist(ax, m_k, None, np.linspace(0, 1, 41), "kernel mask: mean m_k per kernel", "mean m_k")
        ax.axvline(MASK_THRESHOLD, color="k", lw=0.8, ls="--")
    hmax = max(np.max(g.entropy), np.max(t.entropy) if t is not None else 0, BLUR_ENTROPY_NATS) * 1.05
    _hist(axes[0], g.entropy, t.entropy if t is not None else None, np.linspace(0, hmax, 41),
          f"kernel entropy H(k); blurred: H > {BLUR_ENTROPY_NATS:g} (dashed)", "H(k) (nats)")
    axes[0].axvline(BLUR_ENTROPY_NATS, color="k", lw=0.8, ls="--")
    rmax = max(np.max(g.rg), np.max(t.rg) if t is not None else 0, 0.1) * 1.05
    _hist(axes[1], g.rg, t.rg if t is not None else None, np.linspace(0, rmax, 41),
          "kernel radius of gyration R_g", "R_g (px)")
    fig.tight_layout()
    return _png(fig)


def fig_jpeg(rep: "Report") -> bytes:
    plt = _plt()
    g, t = rep.recovery.gen, rep.recovery.true
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 2.9))
    _hist(axes[0], g.q_compressed, t.q_compressed if t is not None else None, np.linspace(0, 100, 51),
          "JPEG quality q of compressed images", "q", g_label="generated, m_q > 0.5", t_label="true, compressed")
    if not len(g.q_compressed):   # nothing counts as compressed: show every generated q
        _hist(axes[0], rep.generated.q, None, np.linspace(0, 100, 51), "JPEG quality q (no m_q > 0.5)", "q",
              g_label="generated, all")
    _hist(axes[1], rep.generated.m_q, None, np.linspace(0, 1, 41),
          f"compression mask m_q; compressed: m_q > {MASK_THRESHOLD:g} (dashed)", "m_q")
    axes[1].axvline(MASK_THRESHOLD, color="k", lw=0.8, ls="--")
    fig.tight_layout()
    return _png(fig)


def fig_noise(rep: "Report", n_curves: int = 24) -> bytes:
    plt = _plt()
    g, t = rep.recovery.gen, rep.recovery.true
    gd, td = rep.generated, rep.truth
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.1))
    ax = axes[0]
    x = NOISE_X
    sg = np.sqrt(np.maximum(gd.noise_var(x)[:n_curves], 0)) * 255
    for i, c in enumerate(sg):
        ax.plot(x, c, color=GEN_COLOR, lw=0.5, alpha=0.35, label="generated images" if i == 0 else None)
    if td is not None and t is not None and t.noise_curve is not None:
        st = np.sqrt(np.maximum(td.noise_var(x)[td.noised][:n_curves], 0)) * 255
        for i, c in enumerate(st):
            ax.plot(x, c, color=TRUE_COLOR, lw=0.5, alpha=0.35, label="true images" if i == 0 else None)
        ax.plot(x, t.noise_curve * 255, color=TRUE_COLOR, lw=2.2, label="true population sqrt(E[shot x + read])")
    ax.plot(x, g.noise_curve * 255, color=GEN_COLOR, lw=2.2, label="generated population sqrt(E[var(x)])")
    ax.axhline(NOISE_STD_MIN * 255, color="k", lw=0.6, ls=":")
    ax.set_xlabel("intensity x (0 = black, 1 = white)", fontsize=8)
    ax.set_ylabel("noise std (grey levels of 255)", fontsize=8)
    ax.set_title("noise std as a function of intensity", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    ax = axes[1]
    ok = (gd.a > 0) & (gd.b > 0)
    if ok.any():
        ax.scatter(np.log10(gd.a[ok][:800]), np.log10(gd.b[ok][:800]), s=4, alpha=0.5, color=GEN_COLOR,
                   label="generated (a, b)")
    if td is not None and td.noised.any():
        m = td.noised
        ax.scatter(np.log10(td.a[m][:800]), np.log10(td.b[m][:800]), s=4, alpha=0.5, color=TRUE_COLOR,
                   label="true (shot, read)")
    ax.set_xlabel("log10 a (shot variance)", fontsize=8)
    ax.set_ylabel("log10 b (read variance)", fontsize=8)
    ax.set_title("per-image noise parameters", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def panel_png(images: np.ndarray, nrow: int = 8) -> bytes:
    """A grid of uint8 images, small images enlarged (nearest) so that degradations show."""
    from PIL import Image

    from ..train.visual import grid
    g = grid(images, nrow)
    scale = max(1, 64 // images.shape[1])
    g = g.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- HTML
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1120px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px} th{background:#f3f3f3;text-align:left}
td.num{text-align:right;font-family:ui-monospace,Menlo,Consolas,monospace}
.note{background:#fff8e0;border-left:3px solid #e0b000;padding:4px 10px;font-size:13px;margin:6px 0}
.defs{font-size:12px;color:#444} img{max-width:100%}
.panels{display:flex;flex-wrap:wrap;gap:14px} .panels figure{margin:0}
figcaption{font-size:12px;color:#444;text-align:center}
"""


def _e(s) -> str:
    return html.escape(str(s))


def _fmt_stat(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return _e(v)
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def _kv_table(items) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in items) + "</table>"


def recovery_table_html(rep: "Report") -> str:
    with_truth = rep.truth is not None
    head = "<tr><th>quantity</th><th>generated</th>" + ("<th>true</th><th>error</th>" if with_truth else "") + "</tr>"
    body = []
    for r in rep.recovery.rows:
        label, g, t, err = r.cells()
        if not with_truth and r.generated is None:
            continue
        cells = [f'<td class="label">{_e(label)}</td>', f'<td class="num gen">{_e(g)}</td>']
        if with_truth:
            cells += [f'<td class="num true">{_e(t)}</td>', f'<td class="num err">{_e(err)}</td>']
        body.append(f'<tr data-key="{_e(r.key)}">' + "".join(cells) + "</tr>")
    return f'<table id="recovery">{head}{"".join(body)}</table>'


DEFINITIONS = (
    f"Blurred: kernel entropy H(k) &gt; {BLUR_ENTROPY_NATS:g} nats (the identity kernel has H = 0); "
    f"the true fraction counts the images the setting blurred (tiny disks, r near 0.5 px, have H below the threshold). "
    "R_g: radius of gyration, sqrt(&sum; k(i,j) |(i,j) - centroid|&sup2;) px; centroid offset: distance of the "
    "kernel's centroid from its centre (true kernels are centred; an offset kernel shifts the image). "
    f"Compressed: m_q &gt; {MASK_THRESHOLD:g}, or weighted by m_q. "
    f"Noised: noise std at x = 0.5 above 1/255. Noise variance on [0, 1] values: var(x) = a x + b for the generated "
    "images ('ab' G_n), shot x + read for the true ones; the std curve is sqrt(E[var(x)]) over images. "
    "Fraction and mean errors are generated &minus; true; W1 is the Wasserstein-1 distance between the two "
    "distributions (true q is an integer, so even a perfect continuous q has W1 of about 0.25); quantile errors "
    "are the largest absolute difference in decades.")


def render_html(rep: "Report") -> str:
    """The report as one HTML string (figures embedded as data URIs)."""
    from .. import __version__
    c = rep.config
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>bncr inspect: {_e(rep.run_dir)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>What degradation did this run learn?</h1><div class='sub'>bncr inspect {_e(rep.run_dir)}</div>"]
    learned = ", ".join(f"{s} ({rep.spec[s]})" for s in rep.learned)
    parts.append("<h2>Run</h2>" + _kv_table([
        ("model", _e(f"{c['model']}: {rep.spec.get('description', '')}")),
        ("stages", _e(", ".join(f"{s}={rep.spec[s]}" for s in ("blur", "noise", "jpeg")))),
        ("learned degradation", _e(learned)),
        ("setting", _e(f"{rep.setting.name}: {rep.setting.description}")),
        ("dataset", _e(f"{c['dataset']}, {c.get('count') or 'all'} images at {rep.resolution}px, data seed {c.get('data_seed', 0)}")),
        ("iterations", _e(f"{rep.iteration} of {c['iters']} ({rep.snapshot.name}, "
                          f"{'live' if rep.live else 'EMA'} weights)")),
        ("networks", _e(f"width {c['width']}, z_dim {c['z_dim']}, noise_gen {c['noise_gen']}, batch {c['batch']}, seed {c['seed']}")),
        ("samples", _e(f"{rep.n} of each learned generator, latent seed {rep.seed}")),
    ]))
    for note in rep.notes:
        parts.append(f"<div class='note'>{_e(note)}</div>")
    for stage, v in rep.single_values().items():
        parts.append(f"<div class='note' data-single='{_e(stage)}'>P-AmbientGAN {_e(stage)}: a single learned value: {_e(v)}</div>")
    title = "Parameter recovery" if rep.truth is not None else "Learned degradation"
    parts.append(f"<h2>{title}</h2><div class='sub'>ground truth: {_e(rep.truth_source)}</div>")
    parts.append(recovery_table_html(rep))
    parts.append(f"<p class='defs'>{DEFINITIONS}</p>")
    g = rep.generated
    if g.has_blur:
        single = rep.spec["blur"] == "parameter"
        parts.append("<h2>Blur kernels (G_k)</h2>")
        parts.append(f"<img alt='kernels' src='{_uri(fig_kernels(g.k, rep.truth.k if rep.truth else None, single))}'>")
        parts.append(f"<img alt='kernel statistics' src='{_uri(fig_blur(rep))}'>")
    if g.has_noise:
        parts.append("<h2>Noise (G_n)</h2>")
        parts.append(f"<img alt='noise' src='{_uri(fig_noise(rep))}'>")
    if g.has_jpeg:
        parts.append("<h2>JPEG quality (G_q)</h2>")
        parts.append(f"<img alt='jpeg' src='{_uri(fig_jpeg(rep))}'>")
    parts.append("<h2>Images</h2>")
    if rep.panels:
        parts.append(f"<div class='sub'>{_e(rep.panels_note)}</div><div class='panels'>")
        for name, imgs in rep.panels:
            parts.append(f"<figure><img alt='{_e(name)}' src='{_uri(panel_png(imgs))}'><figcaption>{_e(name)}</figcaption></figure>")
        parts.append("</div>")
    else:
        parts.append(f"<div class='note'>{_e(rep.panels_note or 'images not requested (--no-images)')}</div>")
    parts.append("<h2>Training statistics</h2>")
    if rep.stats_last:
        parts.append("<div class='sub'>last line of stats.jsonl</div>"
                     + _kv_table([(k, f"<span class='num'>{_fmt_stat(v)}</span>") for k, v in rep.stats_last.items()]))
    else:
        parts.append("<div class='note'>no stats.jsonl lines in the run directory</div>")
    if rep.metrics:
        rows = "".join(f"<tr><td>{_e(m.get('metric', m['file']))}</td><td class='num'>{_fmt_stat(m.get('value'))}</td>"
                       f"<td class='num'>{_fmt_stat(m.get('std')) if m.get('std') is not None else ''}</td>"
                       f"<td>{_e(m.get('snapshot', ''))}</td><td>{_e(m['file'])}</td></tr>" for m in rep.metrics)
        parts.append("<div class='sub'>last line of each metric-*.jsonl</div><table id='metrics'><tr><th>metric</th>"
                     f"<th>value</th><th>std</th><th>snapshot</th><th>file</th></tr>{rows}</table>")
    else:
        parts.append("<div class='sub'>no metric-*.jsonl files in the run directory (FID/KID: bncr.metrics.evaluate)</div>")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p class='sub'>bncr {_e(__version__)}, {stamp}</p>")
    parts.append("<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
                 "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
                 "document.body.setAttribute('data-images',ok+'/'+im.length);});</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(rep: "Report", out: str | Path) -> Path:
    """Write the report atomically to `out` (a .html file); returns its path."""
    p = Path(out)
    ensure_writable_dir(p.parent if str(p.parent) else ".")
    atomic_write_text(p, render_html(rep))
    return p
