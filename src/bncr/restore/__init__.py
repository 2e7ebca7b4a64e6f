"""Image restoration with the learned degradation (the paper's Section 7.6, Table 4).

    from bncr.restore import RestoreConfig, train_restorer, load_restorer
    train_restorer(RestoreConfig(run="runs/bncr-N"), "runs/unir-N")          # BNCR-GAN+UNIR
    train_restorer(RestoreConfig(known_setting="N"), "runs/unir-dagger-N")   # UNIR-dagger (true simulator)
    G, info = load_restorer("runs/unir-N")                                   # x^ = G(y), y in [-1, 1]

On the command line: ``bncr restore train | apply | eval`` and ``bncr lpips`` (docs/restoration.md).
"""
from .config import RestoreConfig, restore_preset
from .evaluate import evaluate_restorers
from .folders import apply_folder, lpips_folders
from .train import load_restorer, restore_uint8, train_restorer

__all__ = ["RestoreConfig", "restore_preset", "train_restorer", "load_restorer", "restore_uint8", "apply_folder",
           "lpips_folders", "evaluate_restorers"]
