"""Registry-wide model tests: the contract, shapes, finite outputs, and gradients for every method."""
import numpy as np
import pytest
import torch

from mer_train.config import TrainConfig
from mer_train.data import FoldSampler
from mer_train.errors import ConfigError
from mer_train.models import InputSpec, create_model, get_input_spec, list_models, register_model
from mer_train.trainer import METHODS, Align, outer_loss

MODELS = list_models()
ZOO = {"ststnet", "offapexnet", "dual_inception", "sssnet", "htnet_lite"}


def test_registry_lists_every_family_and_rejects_unknown_names():
    assert {"slimcnn", "slimcnn_tiny", "slimcnn_wide"} | ZOO <= set(MODELS)
    with pytest.raises(ConfigError, match="unknown model 'resnet9'; registered models: dual_inception, htnet_lite"):
        create_model("resnet9", num_classes=3)
    with pytest.raises(ConfigError, match="unknown model 'resnet9'"):
        get_input_spec("resnet9")


@pytest.mark.parametrize("name", MODELS)
def test_every_model_declares_its_input_and_is_built_at_that_size_by_default(name):
    spec = get_input_spec(name)
    assert isinstance(spec, InputSpec) and spec.size >= 16 and set(spec.channels) <= {"u", "v", "strain"}
    model = create_model(name, num_classes=3)  # input_size None: the spec's size
    field = model(torch.zeros(1, 3, spec.size, spec.size), aux=True)[1]
    assert field.shape == (1, 2, spec.size, spec.size)
    if name in ZOO:
        assert spec.note, f"{name}: say how its paper prepared the input"


def test_input_specs_of_the_zoo_follow_their_papers():
    assert {name: (get_input_spec(name).size, get_input_spec(name).channels) for name in ZOO} == {
        "ststnet": (28, ("u", "v", "strain")), "offapexnet": (28, ("u", "v")), "dual_inception": (28, ("u", "v")),
        "sssnet": (64, ("u", "v", "strain")), "htnet_lite": (48, ("u", "v", "strain"))}
    assert get_input_spec("offapexnet").channel_index == [0, 1]
    assert [name for name in ZOO if get_input_spec(name).landmarks] == ["htnet_lite"]
    with pytest.raises(ValueError, match="choose from u, v, strain"):
        InputSpec(28, channels=("u", "magnitude"))


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", MODELS)
def test_contract_shapes_and_finite_outputs(name, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, input_size=size).eval()  # eval: dropout off, outputs comparable
    x = torch.randn(3, 3, size, size)                   # (B, 3, H, W) = [u, v, strain]
    features = model.forward_features(x)
    assert features.shape[0] == 3 and features.ndim >= 3
    logits, field = model.forward_head(features), model.forward_aux(features)
    assert logits.shape == (3, 5) and field.shape == (3, 2, size, size)
    assert torch.isfinite(logits).all() and torch.isfinite(field).all()
    assert torch.equal(model(x), logits)
    both = model(x, aux=True)
    assert torch.equal(both[0], logits) and torch.equal(both[1], field)
    # no running statistics: a functional call with other weights is exactly that model
    assert not list(model.buffers())
    assert {name.split(".")[0] for name, _ in model.named_parameters()} == {"encoder", "head", "aux_head"}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_a_method_uses_gets_a_gradient(name, method):
    torch.manual_seed(0)
    size, classes = 16, 5
    model = create_model(name, num_classes=classes, input_size=size)  # training mode: dropout as trained
    y = np.tile(np.arange(classes), 4)                              # 4 subjects x 5 classes
    subject = np.repeat([f"d/s{i}" for i in range(4)], classes).astype(object)
    x = torch.randn(len(y), 3, size, size)
    sampler = FoldSampler(y, subject, np.arange(len(y)), np.random.default_rng(0))
    targets = torch.nn.functional.normalize(torch.randn(classes, 2 * size * size), dim=1).view(classes, 2, size, size)
    align = Align(targets, torch.ones(classes, dtype=torch.bool), torch.ones(1, 1, size, size))
    config = TrainConfig(method=method, input_size=size, batch_size=8, meta_batch=2, shots=1, query_shots=1)

    loss = outer_loss(model, dict(model.named_parameters()), config, x, torch.from_numpy(y), sampler, align)
    assert torch.isfinite(loss)
    loss.backward()

    uses_aux = METHODS[method][1]
    for param_name, param in model.named_parameters():
        if param_name.startswith("aux_head") and not uses_aux:
            assert param.grad is None, f"{method} must not touch {param_name}"
        else:
            assert param.grad is not None, f"{name}/{method}: {param_name} gets no gradient"
            assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, param_name


def test_register_model_adds_a_family_with_or_without_a_spec():
    from mer_train import models

    @register_model
    def _test_only_model(num_classes, input_size=24, **kwargs):
        return create_model("slimcnn_tiny", num_classes=num_classes, input_size=input_size)

    @register_model(input_spec=InputSpec(20, channels=("u", "v"), note="test"))
    def _test_only_spec(num_classes, input_size=64, **kwargs):
        return create_model("slimcnn_tiny", num_classes=num_classes, input_size=input_size)

    try:
        assert create_model("_test_only_model", num_classes=2, input_size=16)(torch.zeros(1, 3, 16, 16)).shape == (1, 2)
        assert get_input_spec("_test_only_model") == InputSpec(24)  # the constructor's default size
        assert get_input_spec("_test_only_spec").channels == ("u", "v")
        assert create_model("_test_only_spec", num_classes=2).input_size == 20
    finally:
        for name in ("_test_only_model", "_test_only_spec"):
            models._MODELS.pop(name)
            models._SPECS.pop(name)


@pytest.mark.parametrize("name, minimum", [("sssnet", 16), ("htnet_lite", 16)])
def test_too_small_an_input_is_a_config_error_that_names_the_minimum(name, minimum):
    with pytest.raises(ConfigError, match=f"{name}: input_size = 12 is too small .* at least {minimum}"):
        create_model(name, num_classes=3, input_size=12)
    create_model(name, num_classes=3, input_size=minimum)(torch.zeros(1, 3, minimum, minimum))
