"""The paper's published FIDs (Kaneko & Harada, CVPR 2021), transcribed from its Tables 1, 2 and 3.

Tables 1 and 2: CIFAR-10 32x32, median of three seeds. Table 3: FFHQ 128x128, one run per cell.
"-" marks a cell the paper leaves empty. Rows are keyed by our model names (`bncr models`);
Deblur+GAN and Deblock+GAN are the paper's GANs trained on deblurred / deblocked images (our models
deblur+gan and deblock+gan; deblock+gan with a substitute deblocker, docs/research/baselines.md).
Source: /work/shared/paper/bncr-gan-paper.md (the paper's text), transcribed by hand; the tests
check the transcription against the paper's own count of 134 tested conditions on CIFAR-10.
"""
from __future__ import annotations

from typing import Optional

# Paper row label -> our model name.
PAPER_MODEL_NAMES = {
    "GAN": "gan", "AmbientGAN": "ambientgan", "P-AmbientGAN": "p-ambientgan", "BR-GAN": "br-gan",
    "BR-GAN w/o mask": "br-gan-nomask", "NR-GAN": "nr-gan", "CR-GAN": "cr-gan", "CR-GAN w/o mask": "cr-gan-nomask",
    "BNCR-GAN": "bncr-gan", "BNCR-GAN w/o L_AC": "bncr-gan-noac", "Deblur+GAN": "deblur+gan",
    "Deblock+GAN": "deblock+gan",
    "UNIR†": "unir-dagger", "BNCR-GAN+UNIR": "bncr-gan+unir", "CycleGAN‡": "cyclegan",   # Table 4's restorers
}
MODEL_LABELS = {v: k for k, v in PAPER_MODEL_NAMES.items()}
# Our diagnostic configurations in result tables (not models of the paper; footnote 9 suggests CR-GAN + L_AC).
MODEL_LABELS.update({"br-gan-ac": "BR-GAN + L_AC blur term (ours)", "cr-gan-ac": "CR-GAN + L_AC compression term"})

# Models of the paper that this package does not implement (model name -> why); none at present.
NOT_IMPLEMENTED: dict[str, str] = {}

# Tables as printed: one line per row, "No. | model | values in column order".
_TABLE1_BLUR = """\
1 | GAN               | 18.5 47.9 36.1 43.1 22.4 27.4 34.1
2 | AmbientGAN        | -    25.5 23.0 24.2 18.9 20.7 21.8
3 | P-AmbientGAN      | 18.5 48.9 35.7 41.5 22.5 27.5 34.1
4 | BR-GAN            | 17.6 24.8 22.9 23.4 18.4 20.2 21.7
5 | BR-GAN w/o mask   | 21.9 27.6 25.4 26.6 22.5 22.9 24.0
6 | BNCR-GAN          | 18.6 28.0 26.4 26.8 20.2 21.4 24.1
7 | BNCR-GAN w/o L_AC | 20.5 28.6 27.2 27.3 23.4 22.1 24.2
8 | Deblur+GAN        | -    31.4 24.8 28.0 19.8 22.8 25.2
"""
_TABLE1_JPEG = """\
9  | GAN               | 18.5 41.7 27.8 33.3 21.0 24.7 29.0
10 | AmbientGAN        | -    43.9 36.6 40.5 20.6 22.8 24.5
11 | P-AmbientGAN      | 35.7 42.8 36.5 42.0 34.1 30.2 36.9
12 | CR-GAN            | 18.8 34.0 25.4 26.3 20.1 22.7 24.5
13 | CR-GAN w/o mask   | 34.6 41.0 35.9 38.6 33.9 31.1 34.2
14 | BNCR-GAN          | 18.6 29.9 24.6 26.6 20.3 22.4 24.4
15 | BNCR-GAN w/o L_AC | 20.5 36.1 30.6 33.4 22.4 24.1 30.6
16 | Deblock+GAN       | -    39.9 28.1 33.3 21.4 25.4 28.5
"""
_TABLE2 = """\
17 | GAN               | 18.5 58.0 24.6 34.3 45.5
18 | AmbientGAN        | -    46.8 22.1 25.6 37.3
19 | BR-GAN            | 17.6 52.3 22.4 31.6 41.5
20 | NR-GAN            | 20.0 58.1 26.1 34.6 44.3
21 | CR-GAN            | 18.8 51.1 26.5 36.8 48.2
22 | BNCR-GAN          | 18.6 34.1 22.0 25.7 29.4
23 | BNCR-GAN w/o L_AC | 20.5 41.0 25.3 28.6 34.6
"""
# Table 3 is three small tables, one per setting (D, J, P at 128x128 with the enlarged blur).
_TABLE3 = {
    "D-ffhq": {"GAN": 34.1, "AmbientGAN": 27.7, "BR-GAN": 25.3, "Deblur+GAN": 32.9},
    "J-ffhq": {"GAN": 45.5, "AmbientGAN": 27.0, "CR-GAN": 25.7, "Deblock+GAN": 50.0},
    "P-ffhq": {"GAN": 34.9, "AmbientGAN": 24.5, "BNCR-GAN": 24.2},
}


# Table 4 (restoration, CIFAR-10, test images degraded by N): FID / LPIPS of the median-FID run of three, trained
# on settings O, P, Q, N; CycleGAN is "N/A" on N (no clean training image).
_TABLE4 = {
    "UNIR†": {"O": (28.4, 0.0204), "P": (22.4, 0.0155), "Q": (21.0, 0.0137), "N": (24.8, 0.0146)},
    "BNCR-GAN+UNIR": {"O": (27.7, 0.0184), "P": (21.5, 0.0172), "Q": (20.4, 0.0152), "N": (24.8, 0.0206)},
    "CycleGAN‡": {"O": (30.2, 0.0226), "P": (27.1, 0.0177), "Q": (33.7, 0.0259), "N": None},
}
TABLE4_LPIPS: dict[str, dict[str, Optional[float]]] = {
    PAPER_MODEL_NAMES[m]: {s: (v[1] if v else None) for s, v in row.items()} for m, row in _TABLE4.items()}


def _parse(text: str, settings: tuple[str, ...]) -> dict[str, dict[str, Optional[float]]]:
    out: dict[str, dict[str, Optional[float]]] = {}
    for line in text.strip().splitlines():
        _, label, values = (s.strip() for s in line.split("|"))
        vals = values.split()
        if len(vals) != len(settings):
            raise AssertionError(f"paper table row {label!r}: {len(vals)} values for {len(settings)} settings")
        out[PAPER_MODEL_NAMES[label]] = {s: (None if v == "-" else float(v)) for s, v in zip(settings, vals)}
    return out


class PaperTable:
    """One of the paper's FID tables: `fid[model][setting]` (None where the paper prints "-")."""

    def __init__(self, key: str, caption: str, settings: tuple[str, ...], fid: dict[str, dict[str, Optional[float]]],
                 dataset: str, seeds: str):
        self.key, self.caption, self.settings, self.fid = key, caption, settings, fid
        self.dataset, self.seeds = dataset, seeds

    @property
    def models(self) -> list[str]:
        return list(self.fid)

    def value(self, model: str, setting: str) -> Optional[float]:
        return self.fid.get(model, {}).get(setting)

    def has_cell(self, model: str, setting: str) -> bool:
        """True where the paper prints a number (not "-", and the model is a row of this setting)."""
        return self.value(model, setting) is not None


PAPER_TABLES: dict[str, PaperTable] = {
    "table1-blur": PaperTable("table1-blur", "Table 1 (left): FID on CIFAR-10 under blur settings",
                              tuple("ABCDEFG"), _parse(_TABLE1_BLUR, tuple("ABCDEFG")), "cifar10",
                              "median of 3 seeds"),
    "table1-jpeg": PaperTable("table1-jpeg", "Table 1 (right): FID on CIFAR-10 under compression settings",
                              tuple("AHIJKLM"), _parse(_TABLE1_JPEG, tuple("AHIJKLM")), "cifar10",
                              "median of 3 seeds"),
    "table2": PaperTable("table2", "Table 2: FID on CIFAR-10 under blur, noise and compression settings",
                         tuple("ANOPQ"), _parse(_TABLE2, tuple("ANOPQ")), "cifar10", "median of 3 seeds"),
    "table3-ffhq": PaperTable("table3-ffhq", "Table 3: FID on FFHQ 128x128", tuple(_TABLE3),
                              {PAPER_MODEL_NAMES[m]: {s: _TABLE3[s].get(m) for s in _TABLE3}
                               for m in dict.fromkeys(m for col in _TABLE3.values() for m in col)},
                              "ffhq", "one run"),
    "table4": PaperTable("table4", "Table 4: FID of image restoration on CIFAR-10 (test images degraded by N)",
                         tuple("OPQN"), {PAPER_MODEL_NAMES[m]: {s: (v[0] if v else None) for s, v in row.items()}
                                         for m, row in _TABLE4.items()}, "cifar10", "median-FID run of 3 seeds"),
}

# Other published numbers mentioned in the text.
FOOTNOTE_9 = {"model": "cr-gan-ac", "setting": "H", "fid": 29.0}  # CR-GAN + L_AC^comp on (H)
NOISE_ANALYSIS = {"bncr-gan": 20.5, "ambientgan": 20.0, "nr-gan": 20.3, "gan": 47.4, "bncr-gan-noac": 23.0}


def paper_fid(model: str, setting: str, table: Optional[str] = None) -> Optional[float]:
    """The paper's FID for (model, setting): from `table`, else the first CIFAR-10 table that has it."""
    keys = [table] if table else ["table1-blur", "table1-jpeg", "table2", "table3-ffhq"]
    for k in keys:
        v = PAPER_TABLES[k].value(model, setting)
        if v is not None:
            return v
    return None


def cifar10_conditions() -> set[tuple[str, str, float]]:
    """Distinct (model, setting, FID) conditions of Tables 1-2 (clean-column repeats counted once)."""
    out = set()
    for k in ("table1-blur", "table1-jpeg", "table2"):
        for m, row in PAPER_TABLES[k].fid.items():
            for s, v in row.items():
                if v is not None:
                    out.add((m, s, v))
    return out
