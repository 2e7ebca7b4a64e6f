"""Can a discriminator of the CPU scale tell the true degradation of setting N from the wrong ones the joint
game settles on? (docs/research/cpu-scale.md, section 8)

    python benchmarks/identifiability.py [--n 2000] [--steps 800] [--widths 16 32] [--out FILE.json]

For each degradation law below, `n` clean `shapes` training images are degraded by setting N (class 0) and
`n` *other* clean images by the law (class 1); a ResNet D of the project's architecture (width w, residual 1,
as `laptop`) is trained as a binary classifier on 80 % of them and its accuracy measured on the other 20 %.
Every law keeps each image's own random draws (kernel, noise parameters and pixels, quality) and changes them
by a rule, so "truth, other draws" is the control: its accuracy must stay near 50 %, or the test measures
the classifier, not the degradation. An accuracy near 50 % for a wrong law means that D, at this capacity and
data size, cannot see the difference: the adversarial loss then cannot push the learned degradation from
that wrong law to the truth. Also printed: the degradation statistics (sharpness, flat-region noise,
8x8 blocks) of each set, which a human can compare.

One thread; about a minute per law and width on the project's 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from bncr.data.shapes import render_shapes
from bncr.degradations.kernels import pad_kernel
from bncr.degradations.settings import DegradationParams, apply_degradation, get_setting, sample_params
from bncr.metrics.imagestats import image_stats
from bncr.nets.resnet import ResNetDiscriminator

Rule = Callable[[DegradationParams], DegradationParams]


def _identity_kernel(p: DegradationParams) -> np.ndarray:
    return pad_kernel(np.ones((1, 1)), p.kernel.shape[0])


def law(kernel: str = "true", noise_var: float = 1.0, quality: Optional[int] = None, jpeg: bool = True) -> Rule:
    """A rule on one image's true parameters: kernel "true" | "none" | "wider" (the true kernel convolved with
    itself, a wider blur of the same shape); noise variances times `noise_var` (0: no noise); JPEG at the true
    quality, at `quality`, or off."""
    def rule(p: DegradationParams) -> DegradationParams:
        p = replace(p)
        if kernel == "none":
            p.kernel = _identity_kernel(p)
        elif kernel == "wider":
            from scipy.signal import convolve2d
            k2 = convolve2d(p.kernel, p.kernel, mode="same")
            p.kernel = k2 / k2.sum()
        if noise_var == 0:
            p.noised = False
        else:
            p.shot, p.read = p.shot * noise_var, p.read * noise_var
        if not jpeg:
            p.compressed = False
        elif quality is not None:
            p.quality = int(quality)
        return p
    return rule


# the wrong laws the joint runs settled on (docs/research/cpu-scale.md, sections 6 and 8), and single cues
LAWS: dict[str, tuple[Rule, int]] = {          # name -> (rule, data seed of the draws)
    "truth, other draws (control)": (law(), 1),
    "weak noise, mild JPEG (bncr-gan-known-blur: noise 2.9 of 8.9, q 96)": (law(noise_var=(2.9 / 8.9) ** 2, quality=96), 0),
    "wider blur, noise x0.6, q 91 (bncr-gan, section 6)": (law(kernel="wider", noise_var=0.36, quality=91), 0),
    "no blur, true noise, q 17 (start strong, seed 0 at 1,500)": (law(kernel="none", quality=17), 0),
    "no noise (else true)": (law(noise_var=0.0), 0),
    "no JPEG (else true)": (law(jpeg=False), 0),
    "no blur (else true)": (law(kernel="none"), 0),
}


def degraded_set(rule: Rule, data_seed: int, first: int, n: int) -> np.ndarray:
    setting = get_setting("N")
    out = []
    for i in range(first, first + n):
        x = render_shapes(0, i, 32, split="train")
        p, rng = sample_params(setting, data_seed, i)
        out.append(apply_degradation(x, rule(p), rng))
    return np.stack(out)


def to_tensor(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def held_out_accuracy(a: np.ndarray, b: np.ndarray, width: int, steps: int, seed: int = 0) -> float:
    """Train D (logistic loss) to tell `a` (0) from `b` (1) on 80 % of each; accuracy on the other 20 %."""
    torch.manual_seed(seed)
    n_tr = int(0.8 * len(a))
    xa, xb = to_tensor(a), to_tensor(b)
    x_tr = torch.cat([xa[:n_tr], xb[:n_tr]])
    y_tr = torch.cat([torch.zeros(n_tr), torch.ones(n_tr)])
    x_te = torch.cat([xa[n_tr:], xb[n_tr:]])
    y_te = torch.cat([torch.zeros(len(a) - n_tr), torch.ones(len(b) - n_tr)])
    D = ResNetDiscriminator(32, width, residual_factor=1.0)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x_tr), (64,), generator=g)
        loss = F.binary_cross_entropy_with_logits(D(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.cat([D(x_te[i:i + 256]) for i in range(0, len(x_te), 256)]) > 0
    return float((pred.float() == y_te).float().mean())


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images per class (default 2000)")
    ap.add_argument("--steps", type=int, default=800, help="classifier steps of batch 64 (default 800)")
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32], help="D widths (default 16 32)")
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    truth = degraded_set(law(), 0, 0, a.n)
    stats = {"truth (N)": image_stats(truth)}
    results = []
    print(f"{'law':75s} " + " ".join(f"acc@w{w:<3d}" for w in a.widths) + "  sharp  noise  block", flush=True)
    for name, (rule, seed) in LAWS.items():
        other = degraded_set(rule, seed, a.n, a.n)        # other images than the truth set's
        acc = {w: held_out_accuracy(truth, other, w, a.steps) for w in a.widths}
        st = image_stats(other)
        stats[name] = st
        results.append({"law": name, "accuracy": {str(w): v for w, v in acc.items()}, "stats": st})
        print(f"{name:75s} " + " ".join(f"{acc[w]:8.3f}" for w in a.widths)
              + f"  {st['sharpness']:5.1f} {st['noise']:6.2f} {st['blocks']:6.3f}", flush=True)
    t = stats["truth (N)"]
    print(f"{'truth (N) itself':75s} " + " " * 9 * len(a.widths)
          + f"  {t['sharpness']:5.1f} {t['noise']:6.2f} {t['blocks']:6.3f}")
    if a.out:
        doc = {"command": "python benchmarks/identifiability.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "n": a.n, "steps": a.steps, "widths": a.widths, "truth_stats": t, "results": results}
        d = os.path.dirname(a.out) or "."
        with tempfile.NamedTemporaryFile("w", dir=d, delete=False, suffix=".tmp") as f:
            json.dump(doc, f, indent=1)
        os.replace(f.name, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
