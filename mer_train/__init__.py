"""mer_train: stage two of mer-toolkit.

HDF5 shards made by mer-prep -> LightmanNet (dual-branch meta-auxiliary learning) and its baselines
(erm, multitask, maml), evaluated with leave-one-subject-out; UF1/UAR on pooled predictions.

Public API (torch is imported on first use, not by `import mer_train`):

    config = mer_train.load_config("configs/ci.yaml", {"shards": ["out/casme2"], "macro_shards": ["out/ckplus"]})
    result = mer_train.train(config)                 # -> RunResult(out, config, metrics)
    table = mer_train.compare(config, seeds=3).table  # markdown ablation table

Models: `mer_train.models.register_model`, `create_model`, `list_models`.
"""
from .config import TrainConfig, load_config
from .errors import ConfigError, DataError, LabelSetError, MissingMacroShards, TrainError

__version__ = "0.1.0"


def train(*args, **kwargs):
    """Train and evaluate with LOSO; see `mer_train.loso.train`."""
    from .loso import train as _train

    return _train(*args, **kwargs)


def compare(*args, **kwargs):
    """Run several methods on the same folds and seeds; see `mer_train.ablation.compare`."""
    from .ablation import compare as _compare

    return _compare(*args, **kwargs)


__all__ = ["train", "compare", "TrainConfig", "load_config", "TrainError", "ConfigError", "DataError",
           "LabelSetError", "MissingMacroShards"]
