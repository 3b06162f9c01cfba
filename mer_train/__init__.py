"""mer_train: stage two of mer-toolkit.

HDF5 shards made by mer-prep -> LightmanNet (dual-branch meta-auxiliary learning) and its baselines
(erm, multitask, maml), evaluated with leave-one-subject-out; UF1/UAR on pooled predictions.

Public API (torch is imported on first use, not by `import mer_train`):

    config = mer_train.load_config("configs/ci.yaml", {"shards": ["out/casme2"], "macro_shards": ["out/ckplus"]})
    result = mer_train.train(config)                 # -> RunResult(out, config, metrics)
    table = mer_train.compare(config, seeds=3).table  # markdown ablation table
    model = mer_train.fit(config, out="models/lab")   # one final model on all subjects -> models/lab/model.pt
    mer_train.predict(model.model_path, ["out/new"], "predictions.csv")

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


def fit(*args, **kwargs):
    """Train one final model on every subject; see `mer_train.deploy.fit`."""
    from .deploy import fit as _fit

    return _fit(*args, **kwargs)


def predict(*args, **kwargs):
    """Label shard sets with a trained model; see `mer_train.deploy.predict`."""
    from .deploy import predict as _predict

    return _predict(*args, **kwargs)


# The public names, and the public modules (docs/api.md is generated from them: `make docs`).
__all__ = ["train", "compare", "fit", "predict", "TrainConfig", "load_config", "TrainError", "ConfigError", "DataError",
           "LabelSetError", "MissingMacroShards",
           "loso", "ablation", "deploy", "tune", "config", "data", "models", "errors"]
