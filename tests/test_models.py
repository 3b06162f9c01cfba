"""Registry-wide model tests: the contract, shapes, finite outputs, and gradients for every method."""
import numpy as np
import pytest
import torch

from mer_train.config import TrainConfig
from mer_train.data import FoldSampler
from mer_train.models import create_model, list_models, register_model
from mer_train.trainer import METHODS, Align, outer_loss

MODELS = list_models()


def test_registry_lists_the_slimcnn_family_and_rejects_unknown_names():
    assert {"slimcnn", "slimcnn_tiny", "slimcnn_wide"} <= set(MODELS)
    with pytest.raises(Exception, match="unknown model 'resnet9'; registered models: slimcnn"):
        create_model("resnet9", num_classes=3)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", MODELS)
def test_contract_shapes_and_finite_outputs(name, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, input_size=size)
    x = torch.randn(3, 3, size, size)                   # (B, 3, H, W) = [u, v, strain]
    features = model.forward_features(x)
    assert features.ndim == 4 and features.shape[0] == 3
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
    size, classes = 32, 5
    model = create_model(name, num_classes=classes, input_size=size)
    y = np.tile(np.arange(classes), 4)                              # 4 subjects x 5 classes
    subject = np.repeat([f"d/s{i}" for i in range(4)], classes).astype(object)
    x = torch.randn(len(y), 3, size, size)
    sampler = FoldSampler(y, subject, np.arange(len(y)), np.random.default_rng(0))
    targets = torch.nn.functional.normalize(torch.randn(classes, 2 * size * size), dim=1).view(classes, 2, size, size)
    align = Align(targets, torch.ones(classes, dtype=torch.bool), torch.ones(1, 1, size, size))
    config = TrainConfig(method=method, input_size=size, batch_size=8, meta_batch=2, shots=1, query_shots=1)

    loss = outer_loss(model, dict(model.named_parameters()), config, x, torch.from_numpy(y), sampler, align)
    loss.backward()

    uses_aux = METHODS[method][1]
    for param_name, param in model.named_parameters():
        if param_name.startswith("aux_head") and not uses_aux:
            assert param.grad is None, f"{method} must not touch {param_name}"
        else:
            assert param.grad is not None, f"{name}/{method}: {param_name} gets no gradient"
            assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, param_name


def test_register_model_adds_a_family():
    @register_model
    def _test_only_model(num_classes, input_size=64, **kwargs):
        return create_model("slimcnn_tiny", num_classes=num_classes, input_size=input_size)

    try:
        assert create_model("_test_only_model", num_classes=2, input_size=16)(torch.zeros(1, 3, 16, 16)).shape == (1, 2)
    finally:
        from mer_train import models

        models._MODELS.pop("_test_only_model")
