"""The training config: one frozen dataclass, filled from a YAML file in configs/ and overrides.

Unknown keys are an error that names the key and where it came from; the resolved config is saved
as the run directory's config.yaml and inside every checkpoint. Importable without torch.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import yaml

from .errors import ConfigError
from .labels import CLASS_SET_NAMES

class Method(NamedTuple):
    """What a method is made of (docs/method.md, Baselines): two levels, an auxiliary branch."""

    bilevel: bool
    auxiliary: bool


# The one table of methods; the CLI's choices, `mer-train list` and the trainer read it.
METHODS = {"lightman": Method(True, True), "erm": Method(False, False), "multitask": Method(False, True),
           "maml": Method(True, False)}
# Named variants for `mer-train compare --methods` (docs/method.md): a method and the keys it sets.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "lightman-v1": ("lightman", {"aux_target": "class_macro", "outer_base_weight": 0.0}),  # the first reading
    "multitask-v1": ("multitask", {"aux_target": "class_macro"}),
    # transductive: adapted on the test subject's unlabelled clips (never in one table with the above)
    "erm+subject-norm": ("erm", {"subject_norm": True}),
    "erm+tent": ("erm", {"test_adapt_steps": 5, "test_adapt_lr": 0.01, "test_adapt_loss": "entropy",
                         "test_adapt_params": "norm"}),
    "multitask+ttt": ("multitask", {"test_adapt_steps": 1, "test_adapt_lr": 0.05}),
    "lightman+tta": ("lightman", {"task_unit": "subject", "test_adapt_steps": 1, "test_adapt_lr": 0.05}),
}
CLASS_SETS = CLASS_SET_NAMES  # casme2-5, samm-5, megc2019-3, casme3-7, as-written (mer_pipeline/classes.py)
DEVICES = ("auto", "cpu", "cuda")
INPUT_NORMS = ("rms", "none")
AUX_TARGETS = ("class_macro", "nearest_macro", "self")   # docs/method.md, "The auxiliary targets"
AUX_CONTROLS = ("none", "shuffled", "random")             # controls: permuted templates, random smooth fields
TASK_UNITS = ("halves", "subject")
TEST_ADAPT_PARAMS = ("all", "norm")
TEST_ADAPT_LOSSES = ("aux", "entropy")                    # entropy = TENT
LABEL_FREE_TARGETS = ("nearest_macro", "self")


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a run. The defaults are configs/lightman.yaml."""

    # data
    shards: tuple[str, ...] = ()        # micro shard sets, or folders of shard sets (macro sets in them feed the auxiliary branch)
    macro_shards: tuple[str, ...] = ()  # macro-expression shard sets named explicitly
    classes: str | None = None          # casme2-5 | samm-5 | megc2019-3 | casme3-7 | as-written; None = inferred
    input_size: int = 48                # model input is [u, v, strain] resized to input_size x input_size
    input_norm: str = "rms"             # rms: divide flow and strain by their RMS over the face, per sample | none
    # model
    model: str = "slimcnn"              # a name from mer_train.models.list_models()
    # method and schedule (fixed: never chosen by looking at a test subject)
    method: str = "lightman"            # lightman | erm | multitask | maml
    steps: int = 40                     # outer optimisation steps per fold (configs/lightman.yaml says how chosen)
    lr: float = 2e-3                    # Adam (the outer, meta-optimiser for bi-level methods)
    weight_decay: float = 0.0
    batch_size: int = 32                # erm, multitask: class-balanced mini-batch
    align_weight: float = 0.5           # lambda, weight of the alignment loss (multitask, lightman)
    meta_batch: int = 4                 # maml, lightman: tasks per outer step
    shots: int = 2                      # support samples per class in a task
    query_shots: int = 2                # query samples per class in a task
    inner_steps: int = 1                # k, level-one steps
    inner_lr: float = 0.05              # alpha, level-one step size
    first_order: bool = False           # drop the second-order term of the meta-gradient
    outer_align: bool = True            # lightman: query loss = CE + lambda * align (False: CE only)
    outer_base_weight: float = 1.0      # beta: outer loss = L_query(adapted) + beta * L_support(base weights)
    task_unit: str = "halves"           # halves: support and query from two halves of the training subjects |
                                        # subject: one subject, inner = label-free auxiliary loss, outer = CE on its clips
    # the auxiliary target (multitask, lightman)
    aux_target: str = "nearest_macro"   # nearest_macro | self (label-free) | class_macro (needs the label: a baseline)
    aux_gate: float = 0.2               # nearest_macro: no target when the best prototype's cosine is below this
    aux_control: str = "none"           # none | shuffled (templates permuted) | random (random smooth fields)
    aux_smooth: float = 0.1             # self: weight of the smoothness term of the decoded displacement
    aux_mask_ratio: float = 0.5         # self: fraction of the input's cells hidden from the auxiliary branch
    aux_macro_pull: float = 0.0         # self: + this * (1 - cos(field, nearest macro prototype))
    # evaluation: inductive (the test subject is never touched) unless test_adapt_steps > 0 or subject_norm
    eval_adapt: int = 0                 # predict with weights adapted on this many training-subject support
                                        # episodes (probabilities averaged); 0 = the trained weights as they are
    test_adapt_steps: int = 0           # transductive: SGD steps on the test subject's unlabelled inputs
    test_adapt_lr: float = 0.05
    test_adapt_params: str = "all"      # all | norm (GroupNorm affine only, as TENT)
    test_adapt_loss: str = "aux"        # aux (the label-free auxiliary loss) | entropy (TENT)
    subject_norm: bool = False          # transductive baseline: subtract each subject's mean input
    # training data of each fold (robustness studies; the test subject is never affected)
    subject_fraction: float = 1.0       # use this fraction of the fold's training subjects, drawn with the fold's seed
    label_noise: float = 0.0            # flip this fraction of the fold's training labels to another class, seeded
    # run
    seed: int = 0
    device: str = "auto"                # auto takes CUDA (with bf16 autocast) when present
    threads: int = 1                    # CPU threads for torch; 0 = torch's default. Small models run best on 1
    out: str | None = None              # run directory; None = runs/<method>-<timestamp>
    eval_batch_size: int = 256

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with `changes` applied and checked like any override."""
        return build_config(self.to_dict(), changes, source="the config")


FIELDS = {f.name: f for f in fields(TrainConfig)}
_TEXT_OR_NONE = {"classes", "out"}
_CHOICES = {"method": METHODS, "classes": CLASS_SETS, "device": DEVICES, "input_norm": INPUT_NORMS,
            "aux_target": AUX_TARGETS, "aux_control": AUX_CONTROLS, "task_unit": TASK_UNITS,
            "test_adapt_params": TEST_ADAPT_PARAMS, "test_adapt_loss": TEST_ADAPT_LOSSES}
_POSITIVE = {"input_size", "steps", "batch_size", "meta_batch", "shots", "query_shots", "eval_batch_size"}


def load_config(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The dataclass defaults, then the YAML file at `path`, then `overrides` (CLI flags)."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the config ({error.strerror}); the configs/ folder has examples") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from error
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config is a mapping of keys to values, got {type(loaded).__name__}")
        values = _checked(loaded, source)
    return build_config(values, overrides or {}, source=source)


def as_config(config: "TrainConfig | str | os.PathLike | None", overrides: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from what the API accepts: a TrainConfig, a YAML path or None (the defaults),
    with `overrides` applied and checked."""
    if not isinstance(config, TrainConfig):
        return load_config(config, overrides)
    return config.replace(**overrides) if overrides else config


def build_config(values: Mapping[str, Any], overrides: Mapping[str, Any], *, source: str) -> TrainConfig:
    """`values` (read from `source`) with `overrides` on top; errors name where each value came from."""
    origin = {key: source for key in _checked(values, source)}
    origin |= {key: "overrides" for key in _checked(overrides, "overrides")}
    merged = {**values, **overrides}
    config = TrainConfig(**{k: _coerce(k, v, origin[k]) for k, v in merged.items()})
    _validate(config, origin)
    return config


def parse_assignment(text: str) -> tuple[str, Any]:
    """`key=value` from a `--set` option; the value is read as YAML (`steps=100`, `first_order=true`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set steps=100")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def save_config(config: TrainConfig, path: Path) -> None:
    """Write `config` as YAML that `load_config(path)` reads back to the same config."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def _checked(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(FIELDS)}"
            raise ConfigError(f"unknown config key {key!r} in {source}{hint}")
    return dict(values)


def _coerce(name: str, value: Any, source: str) -> Any:
    default = FIELDS[name].default
    bad = ConfigError(f"{name} = {value!r} in {source}: expected {_kind(name)}")
    if name in _TEXT_OR_NONE:
        return None if value is None else str(value)
    if isinstance(default, tuple):
        if value is None:
            return ()
        items = [value] if isinstance(value, (str, os.PathLike)) else value
        if not isinstance(items, (list, tuple)):
            raise bad
        return tuple(str(item) for item in items)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise bad
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad
        try:
            number = float(value)
        except ValueError:
            raise bad from None
        if number != int(number):
            raise bad
        return int(number)
    if isinstance(default, float):
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)  # YAML reads 1e-3 (no dot) as text
        except (TypeError, ValueError):
            raise bad from None
    return str(value)


def _kind(name: str) -> str:
    default = FIELDS[name].default
    if name in _TEXT_OR_NONE:
        return "text or null"
    if isinstance(default, tuple):
        return "a list of paths"
    return {bool: "true or false", int: "an integer", float: "a number"}.get(type(default), "text")


def _validate(config: TrainConfig, origin: dict[str, str]) -> None:
    def where(name: str) -> str:
        return origin.get(name, "the defaults")

    for name, choices in _CHOICES.items():
        value = getattr(config, name)
        if value is not None and value not in choices:
            raise ConfigError(f"{name} = {value!r} in {where(name)}: choose one of {', '.join(choices)}")
    for name in _POSITIVE:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} = {getattr(config, name)} in {where(name)}: must be at least 1")
    for name in ("inner_steps", "seed", "threads", "eval_adapt", "test_adapt_steps"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} = {getattr(config, name)} in {where(name)}: must not be negative")
    if not 0 < config.subject_fraction <= 1:
        raise ConfigError(f"subject_fraction = {config.subject_fraction} in {where('subject_fraction')}: "
                          "must be in (0, 1] (1 = every training subject)")
    if not 0 <= config.label_noise < 1:
        raise ConfigError(f"label_noise = {config.label_noise} in {where('label_noise')}: must be in [0, 1) "
                          "(the fraction of training labels flipped)")
    if not 0 <= config.aux_mask_ratio < 1:
        raise ConfigError(f"aux_mask_ratio = {config.aux_mask_ratio} in {where('aux_mask_ratio')}: must be in [0, 1)")
    bilevel, auxiliary = METHODS[config.method]
    if config.task_unit == "subject" and not (bilevel and auxiliary and config.aux_target in LABEL_FREE_TARGETS):
        raise ConfigError(
            f"task_unit = subject in {where('task_unit')}: the inner loop adapts on one subject's clips with the "
            "label-free auxiliary loss, so it needs method lightman and aux_target nearest_macro or self "
            f"(now method {config.method}, aux_target {config.aux_target})")
    if config.test_adapt_steps and config.test_adapt_loss == "aux" and not (
            auxiliary and config.aux_target in LABEL_FREE_TARGETS):
        raise ConfigError(
            f"test_adapt_steps = {config.test_adapt_steps} with test_adapt_loss aux adapts on the test subject's "
            "unlabelled inputs, so it needs an auxiliary branch (method multitask or lightman) with a label-free "
            f"aux_target (nearest_macro or self); now method {config.method}, aux_target {config.aux_target}. "
            "Or use test_adapt_loss entropy (TENT)")
    if config.input_size < 8:
        raise ConfigError(f"input_size = {config.input_size} in {where('input_size')}: must be at least 8")


def protocol(config: TrainConfig) -> str:
    """`transductive` when a run reads the test subject's (unlabelled) inputs before predicting it:
    test-time adaptation or per-subject normalisation; `inductive` otherwise. Never mixed in one table."""
    return "transductive" if config.test_adapt_steps > 0 or config.subject_norm else "inductive"


__all__ = ["TrainConfig", "load_config", "save_config", "protocol", "METHODS", "VARIANTS"]
