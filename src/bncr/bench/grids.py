"""The paper's experiment grids (Tables 1-3) and a CPU mini-grid, as named presets of independent cells.

A cell is one training run + its evaluation: (grid, dataset, setting, model, seed). Its run directory is
``<root>/<grid>/<dataset>/<setting>/<model>/seed<k>`` and its id ``<dataset>/<setting>/<model>/seed<k>``
(what ``--only`` matches). The cell lists are written out here by hand from the paper's tables (models x
settings, without the cells the paper leaves empty); tests compare them with the transcribed tables in
:mod:`bncr.bench.paper`.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..errors import UserError
from ..metrics.reference import format_count, metric_name


@dataclass(frozen=True)
class Cell:
    """One run of a grid: model trained on `dataset` degraded by `setting`, with training seed `seed`."""

    grid: str
    dataset: str
    setting: str
    model: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.setting}/{self.model}/seed{self.seed}"

    def run_dir(self, root: str | Path) -> Path:
        return Path(root) / self.grid / self.dataset / self.setting / self.model / f"seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """A named benchmark grid. `cells` lists (setting, models) in the paper's column order."""

    name: str
    description: str
    datasets: tuple[str, ...]
    cells: tuple[tuple[str, tuple[str, ...]], ...]
    seeds: tuple[int, ...]
    preset: str
    metrics: tuple[str, ...]
    num: int                       # generated images per evaluation (= reference images)
    snapshots: str                 # "all" (report the best, as the paper) or "last"
    resolution: Optional[int] = None
    paper_table: Optional[str] = None   # key in bncr.bench.paper.PAPER_TABLES
    unavailable: tuple[tuple[str, str], ...] = ()  # (setting, model) cells of the paper we cannot run
    commit_results: bool = False   # copy each finished cell's metrics + samples to benchmarks/results/
    notes: tuple[str, ...] = field(default=())
    kind: str = "generation"       # "restoration": cells train restorers (`bncr restore train`), see RESTORERS
    source_grid: Optional[str] = None   # restoration: the grid whose bncr-gan run (same dataset/setting/seed) is F
    test_setting: str = "N"        # restoration: the degradation of the test images (Table 4: N)

    @property
    def settings(self) -> list[str]:
        return [s for s, _ in self.cells]

    @property
    def models(self) -> list[str]:
        """Every model of the grid (runnable or not), in first-appearance order."""
        seen = [m for _, ms in self.cells for m in ms] + [m for _, m in self.unavailable]
        return list(dict.fromkeys(seen))

    def pairs(self) -> list[tuple[str, str]]:
        """(setting, model) of every runnable cell, in column order."""
        return [(s, m) for s, ms in self.cells for m in ms]

    def metric_names(self, metrics: Optional[Sequence[str]] = None, num: Optional[int] = None) -> list[str]:
        if self.kind == "restoration":
            return [restoration_metric_name(k, num or self.num, self.test_setting) for k in (metrics or self.metrics)]
        return [metric_name(k, num or self.num, "train") for k in (metrics or self.metrics)]

    def expand(self, seeds: Optional[Sequence[int]] = None, datasets: Optional[Sequence[str]] = None) -> list[Cell]:
        """All cells: datasets x (setting, model) pairs x seeds."""
        return [Cell(self.name, d, s, m, int(k)) for d in (datasets or self.datasets) for s, m in self.pairs()
                for k in (self.seeds if seeds is None else seeds)]


# The restorers of Table 4: cell model name -> (`bncr restore train` method, its measurement model F)
RESTORERS = {"unir-dagger": ("unir", "known"), "bncr-gan+unir": ("unir", "learned"), "cyclegan": ("cyclegan", None)}
RESTORATION_METRICS = ("fid", "kid", "lpips", "psnr")


def restoration_metric_name(kind: str, count: int, test_setting: str) -> str:
    """e.g. 'lpips10k_testN': kind, number of test images, the setting that degraded them."""
    if kind not in RESTORATION_METRICS:
        raise UserError(f"unknown restoration metric {kind!r}; choose from {', '.join(RESTORATION_METRICS)}")
    return f"{kind}{format_count(count)}_test{test_setting}"


def _cross(models: Sequence[str], settings: str, skip: Sequence[tuple[str, str]] = ()) -> tuple:
    """(setting, models) columns of models x settings, without the (setting, model) pairs in `skip`."""
    return tuple((s, tuple(m for m in models if (s, m) not in skip)) for s in settings)


# Deblur+GAN / Deblock+GAN: the paper leaves their clean column (A) empty
_BLUR_MODELS = ("gan", "ambientgan", "p-ambientgan", "br-gan", "br-gan-nomask", "bncr-gan", "bncr-gan-noac",
                "deblur+gan")
_JPEG_MODELS = ("gan", "ambientgan", "p-ambientgan", "cr-gan", "cr-gan-nomask", "bncr-gan", "bncr-gan-noac",
                "deblock+gan")
_ALL_MODELS = ("gan", "ambientgan", "br-gan", "nr-gan", "cr-gan", "bncr-gan", "bncr-gan-noac")
_NO_AMBIENT_ON_CLEAN = (("A", "ambientgan"),)  # the paper's "-": AmbientGAN on clean images = GAN
_EMPTY_ON_CLEAN = _NO_AMBIENT_ON_CLEAN + (("A", "deblur+gan"), ("A", "deblock+gan"))  # restoring nothing = GAN

_P_AMBIENT_A_NOTE = ("p-ambientgan on A: our P-AmbientGAN learns parameters only for the stages the setting has, "
                     "so on clean images (A) it is the standard GAN; the paper's 18.5 (blur table) and 35.7 "
                     "(JPEG table) suggest its P-AmbientGAN kept a blur / JPEG parameter on A.")

_DEBLOCK_NOTE = ("deblock+gan: the paper deblocked with pointwise SA-DCT (Foi et al. 2007, closed MATLAB code); ours "
                 "uses Debian's jpegqs where installed, else a DCT-thresholding method - substitutes, measured in "
                 "docs/research/baselines.md.")

GRIDS: dict[str, Grid] = {g.name: g for g in [
    Grid("table1-blur", "Table 1 (left): blur robust generation on CIFAR-10, settings A-G",
         ("cifar10",), _cross(_BLUR_MODELS, "ABCDEFG", _EMPTY_ON_CLEAN), (0, 1, 2), "default",
         ("fid",), 10000, "all", paper_table="table1-blur", notes=(_P_AMBIENT_A_NOTE,)),
    Grid("table1-jpeg", "Table 1 (right): compression robust generation on CIFAR-10, settings A, H-M",
         ("cifar10",), _cross(_JPEG_MODELS, "AHIJKLM", _EMPTY_ON_CLEAN), (0, 1, 2), "default",
         ("fid",), 10000, "all", paper_table="table1-jpeg", notes=(_P_AMBIENT_A_NOTE, _DEBLOCK_NOTE)),
    Grid("table2", "Table 2: blur, noise and compression robust generation on CIFAR-10, settings A, N-Q",
         ("cifar10",), _cross(_ALL_MODELS, "ANOPQ", _NO_AMBIENT_ON_CLEAN), (0, 1, 2), "default",
         ("fid",), 10000, "all", paper_table="table2"),
    Grid("table3-ffhq", "Table 3: FFHQ 128x128, settings D, J, P with the enlarged blur (footnote 10)",
         ("ffhq",), (("D-ffhq", ("gan", "ambientgan", "br-gan", "deblur+gan")),
                     ("J-ffhq", ("gan", "ambientgan", "cr-gan", "deblock+gan")),
                     ("P-ffhq", ("gan", "ambientgan", "bncr-gan"))),
         (0,), "default", ("fid",), 10000, "all", resolution=128, paper_table="table3-ffhq",
         notes=(_DEBLOCK_NOTE,
                "The paper ran Table 3 once per cell (\"Experiments were conducted once\"), so the default "
                "is one seed; --seeds 0,1,2 runs three.",
                "FFHQ is an image folder: pass --ffhq DIR (default $BNCR_DATA_ROOT/ffhq or ~/.cache/bncr/ffhq) "
                "holding the 60k training images.")),
    Grid("cpu-mini", "CPU mini-benchmark: dead leaves and Fashion-MNIST, settings A, D, J, N, preset cpu",
         ("deadleaves", "fashion-mnist"),
         (("A", ("gan",)), ("D", ("gan", "br-gan")), ("J", ("gan", "cr-gan")),
          ("N", ("gan", "ambientgan", "bncr-gan", "bncr-gan-noac"))),
         (0,), "cpu", ("fid", "kid"), 1000, "last", commit_results=True,
         notes=("1000 generated vs 1000 clean training images: FID below 2048 samples is biased upwards "
                "(compare only within this table); KID is unbiased.",
                "Only the last snapshot is evaluated (3 snapshots would triple the ~5 min of Inception per "
                "cell on a 2-core CPU); pass --snapshots all to report the best.",
                "What the numbers mean, why the robust models do not beat GAN at this scale, and the load on the "
                "machine during each run: docs/research/cpu-mini.md.",
                "STALE: these cells were trained on 2026-11-30 (round 3 of docs/research) with the defaults of that time (straight-through "
                "q-gradient, sigmoid q, DS on G_n's parameters and on (q, m_q)); today's `cpu` preset trains other "
                "models. Kept for the record; the current CPU benchmark is the cpu-shapes grid "
                "(docs/research/cpu-scale.md).")),
    Grid("cpu-shapes", "CPU benchmark at the scale where G_x converges: shapes, settings A, B, D, H, J, noise, N, "
         "preset laptop",
         ("shapes",),
         (("A", ("gan",)), ("B", ("gan", "ambientgan", "br-gan", "br-gan-nomask", "deblur+gan")),
          ("D", ("gan", "ambientgan", "br-gan", "br-gan-nomask", "br-gan-ac")),
          ("H", ("gan", "ambientgan", "cr-gan", "cr-gan-nomask", "deblock+gan")),
          ("J", ("gan", "ambientgan", "cr-gan", "cr-gan-nomask")),
          ("noise", ("gan", "ambientgan", "nr-gan")),
          ("N", ("gan", "ambientgan", "bncr-gan", "bncr-gan-noac"))),
         (0, 1, 2), "laptop", ("kid",), 500, "last", commit_results=True,
         notes=("500 generated vs 500 clean training images, KID only (unbiased at this sample count; FID is not).",
                "What the numbers mean, the degradation statistics of each model's clean fakes and the seeds that "
                "were run: docs/research/cpu-scale.md.",
                "Committed cells: N 3 seeds, trained with today's `laptop` (G_x padded by reflection, ac=1, the DS term on "
                "G_n's shot variance at 0.1) on the 2-core CPU (cpu-scale.md sections 25-27, "
                "benchmarks/jobs/reflect-N.txt); B / D / H / J / noise 2 "
                "seeds (no-mask ablations and br-gan-ac 1) and A 1, trained with the earlier `laptop` (zero padding, "
                "ac=3) on an H200 or the 2-core CPU (benchmarks/jobs/d32*.txt), marked with the options they differ "
                "in. Each result file records its options and training machine. The B, D and H cells do not "
                "calibrate on KID (cpu-scale.md sections 11, 13, 14.5); br-gan-ac (BR-GAN with the blur term of "
                "L_AC) is a diagnostic, not a model of the paper.")),
    Grid("table4", "Table 4: image restoration on CIFAR-10, trained on settings O-Q and N, tested on images "
         "degraded by N", ("cifar10",),
         tuple((s, ("unir-dagger", "bncr-gan+unir", "cyclegan") if s != "N" else ("unir-dagger", "bncr-gan+unir"))
               for s in "OPQN"),
         (0, 1, 2), "default", ("fid", "lpips"), 10000, "last", paper_table="table4", kind="restoration",
         source_grid="table2",
         notes=("Each cell trains a restorer (`bncr restore train`) on the setting's degraded training images and "
                "restores the 10,000 test images degraded by N; FID and LPIPS against their clean versions. The "
                "table shows the run with the median FID of the seeds (the paper's protocol).",
                "bncr-gan+unir uses the final snapshot of the table2 grid's bncr-gan cell of the same setting and "
                "seed as its measurement model (run that grid first); unir-dagger uses the setting's true "
                "simulator; cyclegan uses set-level labels and is not defined on N (no clean training image).",
                "Restoration networks, losses and substitutions: docs/restoration.md.")),
    Grid("table4-cpu", "Table 4 at the CPU scale: shapes, restorers trained on N (and Q), tested on images "
         "degraded by N, preset laptop", ("shapes",),
         (("N", ("unir-dagger", "bncr-gan+unir")), ("Q", ("unir-dagger", "cyclegan"))),
         (0,), "laptop", ("fid", "kid", "lpips", "psnr"), 500, "last", kind="restoration",
         source_grid="cpu-shapes",
         notes=("500 test images of shapes degraded by N vs their clean versions: FID is biased at this count "
                "(compare within the table), KID is not; LPIPS and PSNR are paired.",
                "bncr-gan+unir uses the cpu-shapes grid's bncr-gan cell on N of the same seed; one seed by default "
                "(--seeds 0,1,2 for the paper's median of three).",
                "Results: docs/research/restoration-cpu.md.")),
]}


def get_grid(name: str) -> Grid:
    if name not in GRIDS:
        raise UserError(f"unknown --grid {name!r}: choose one of {', '.join(GRIDS)}")
    return GRIDS[name]


def parse_seeds(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """'0,1,2' -> (0, 1, 2); None -> None (the grid's default)."""
    if text is None:
        return None
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip() != "")
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"--seeds {text!r}: expected non-negative integers, e.g. 0,1,2")
    return tuple(dict.fromkeys(seeds))


def select(cells: Sequence[Cell], only: Optional[str]) -> list[Cell]:
    """Cells whose id matches `only` (comma-separated shell patterns, e.g. 'cifar10/N/*/seed0')."""
    if not only:
        return list(cells)
    pats = [p.strip() for p in only.split(",") if p.strip()]
    out = [c for c in cells if any(fnmatch.fnmatchcase(c.id, p) for p in pats)]
    if not out:
        raise UserError(f"--only {only!r} matches no cell of this grid (ids look like {cells[0].id})"
                        if cells else f"--only {only!r}: the grid has no cells")
    return out
