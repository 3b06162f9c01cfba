"""The field's models (ststnet, offapexnet, dual_inception, sssnet, htnet_lite): their sizes against
the published ones, dropout under torch.func, the channels each reads, htnet_lite's regions, and one
LOSO run of each on shards made by the real pipeline. (ststnet's second-order meta-gradient is checked
against finite differences with ours, in tests/test_train_meta.py.)"""
import numpy as np
import pytest
import torch
from torch.func import functional_call

from mer_train.models import count_parameters, create_model, get_input_spec
from mer_train.models.htnet_lite import CROP, region_boxes

ZOO = ("ststnet", "offapexnet", "dual_inception", "sssnet", "htnet_lite")
# the papers' parameter counts, as they are usually quoted (3 classes, at the paper's input size)
PUBLISHED = {"ststnet": 1.7e3, "offapexnet": 2.66e6, "dual_inception": 6.45e6, "sssnet": 1.35e6}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_the_published_ones_to_their_quoted_digits(name):
    count = count_parameters(create_model(name, num_classes=3))  # encoder + head, as the papers count
    digits = 2 if name == "ststnet" else 3
    assert float(f"{count:.{digits}g}") == PUBLISHED[name], f"{name}: {count:,} parameters"


def test_htnet_lite_is_small():
    assert 10_000 < count_parameters(create_model("htnet_lite", num_classes=3)) < 100_000  # HTNet as released: ~140M


@pytest.mark.parametrize("name", ZOO)
def test_dropout_draws_per_task_masks_inside_vmap_and_is_off_in_eval(name):
    torch.manual_seed(0)
    size = 16
    model = create_model(name, num_classes=3, input_size=size, drop=0.5)
    params = dict(model.named_parameters())
    x = torch.randn(4, 3, size, size)
    tasks = x.expand(3, *x.shape)  # (T, B, 3, H, W): the same inputs in three tasks

    def logits(xt):
        return functional_call(model, params, (xt,), {"aux": True})[0]

    different = torch.func.vmap(logits, randomness="different")(tasks)  # (T, B, K)
    assert torch.isfinite(different).all()
    assert not torch.allclose(different[0], different[1]) and not torch.allclose(different[1], different[2])
    same = torch.func.vmap(logits, randomness="same")(tasks)
    torch.testing.assert_close(same[0], same[1])
    model.eval()
    torch.testing.assert_close(torch.func.vmap(logits, randomness="different")(tasks)[2], model(x))


@pytest.mark.parametrize("name", ZOO)
def test_each_model_reads_the_channels_of_its_spec(name):
    torch.manual_seed(0)
    spec, size = get_input_spec(name), 16
    model = create_model(name, num_classes=3, input_size=size).eval()
    x = torch.randn(2, 3, size, size)
    for channel in range(3):
        changed = x.clone()
        changed[:, channel] = torch.randn_like(changed[:, channel])
        reads = not torch.allclose(model(changed), model(x))
        assert reads == (channel in spec.channel_index), f"{name}: channel {channel}"


def test_htnet_lite_regions_are_template_boxes_or_follow_the_landmarks():
    boxes = region_boxes(48)
    assert boxes == [(7, 6, 16), (25, 6, 16), (11, 28, 16), (21, 28, 16)]  # eyes + brows, mouth halves, at 48
    # landmarks at the template's places give its boxes; a face 1.1 x larger and shifted by (2, 1) px
    # moves and grows them alike
    template = np.zeros((68, 2))
    template[17:22], template[36:42] = (0.308 * 48, 0.26 * 48), (0.308 * 48, 0.34 * 48)
    template[22:27], template[42:48] = (0.692 * 48, 0.26 * 48), (0.692 * 48, 0.34 * 48)
    template[48:68] = (0.5 * 48, 0.745 * 48)
    template[48], template[54] = (0.346 * 48, 0.745 * 48), (0.654 * 48, 0.745 * 48)  # the mouth corners
    near = region_boxes(48, template)
    assert [b[2] for b in near] == [16] * 4 and max(abs(a - b) for p, q in zip(near, boxes) for a, b in zip(p, q)) <= 1
    moved = (template - 24) * 1.1 + 24 + [2, 1]
    far = region_boxes(48, moved)
    assert all(side == 18 for _, _, side in far)
    for (x0, y0, side), (tx, ty, tside) in zip(far, near):
        expected = (np.array([tx, ty]) + tside / 2 - 24) * 1.1 + 24 + [2, 1]  # the template box's centre, moved
        assert np.abs(np.array([x0, y0]) + side / 2 - expected).max() <= 1.01
    model = create_model("htnet_lite", num_classes=3, landmarks=moved)
    assert model.boxes == far and model(torch.randn(2, 3, 48, 48), aux=True)[1].shape == (2, 2, 48, 48)
    with pytest.raises(Exception, match=r"landmarks must be a finite \(68, 2\) array"):
        create_model("htnet_lite", num_classes=3, landmarks=np.zeros((5, 2)))


def test_htnet_lite_attends_across_tokens_and_regions():
    """Real multi-token attention: changing one patch of one region changes the tokens of the other
    regions (level two fuses them) and the other tokens of its own region (level one)."""
    torch.manual_seed(0)
    model = create_model("htnet_lite", num_classes=3, drop=0.0)
    x = torch.randn(1, 3, 48, 48)
    (x0, y0, _), changed = model.boxes[0], x.clone()
    changed[:, :, y0:y0 + 4, x0:x0 + 4] += 1.0  # one 4 x 4 patch of the left-eye crop (crop = box at 48)
    assert CROP == model.boxes[0][2]
    before, after = model.forward_features(x), model.forward_features(changed)  # (1, R, 4, D)
    delta = (after - before).abs().amax(dim=-1)[0]  # (R, 4)
    assert (delta[1:] > 1e-4).all(), "other regions must see the change (fusion attention)"
    assert (delta[0, 1:] > 1e-4).all(), "the region's other merged tokens must see it (within-region attention)"


@pytest.mark.slow
def test_every_zoo_model_trains_a_loso_on_real_shards(fake_shards, casme2_shards, tmp_path):
    """The real pipeline (synthetic CASME II -> dlib -> TV-L1 -> HDF5) -> mer_train.train, lightman
    with macro targets, each model at its spec's size; htnet_lite's boxes from the shards' landmarks."""
    import mer_train
    from mer_pipeline.shards import open_shards

    out, _ = casme2_shards
    shards = open_shards(out, fields=("landmarks",))
    size = shards.arrays["landmarks"].shape  # (N, 68, 2) in pixels of the aligned crop
    crop = open_shards(out, fields=("flow",)).arrays["flow"].shape[-1]
    macro = fake_shards.write_set(tmp_path / "ckplus", dataset="ckplus", kind="macro",
                                  emotions=fake_shards.MACRO_EMOTIONS, subjects=3, per_emotion=1, amplitude=8.0,
                                  noise=0.5, size=crop, seed=2)
    # the aligned faces' mean landmarks put htnet_lite's regions within 2 px of the template's boxes
    landmarks = shards.arrays["landmarks"].mean(0) * (48 / crop)
    assert size[1:] == (68, 2)
    assert max(abs(a - b) for p, q in zip(region_boxes(48, landmarks), region_boxes(48)) for a, b in zip(p, q)) <= 2

    for name in ZOO:
        result = mer_train.train(None, shards=[str(out)], macro_shards=[str(macro)], model=name,
                                 input_size=get_input_spec(name).size, method="lightman", steps=2, meta_batch=2,
                                 shots=1, query_shots=1, device="cpu", out=str(tmp_path / name))
        metrics = result.metrics
        assert metrics["method"] == "lightman" and len(metrics["folds"]) == 4, name
        assert 0 <= metrics["overall"]["uf1"] <= 1 and np.isfinite(metrics["folds"][0]["final_loss"]), name
        assert sum(f["n_test"] for f in metrics["folds"]) == metrics["overall"]["n"], name


@pytest.mark.parametrize("name, classes", [("megc2019", "megc2019-3"), ("casme2-5", "casme2-5")])
def test_protocol_configs_load_and_keep_the_default_schedule(name, classes):
    """configs/megc2019.yaml and casme2-5.yaml fix the class set; every other value is lightman.yaml's
    (chosen on synthetic data, never on a reported subject), so only `classes` may differ."""
    from pathlib import Path

    from mer_train.config import load_config

    configs = Path(__file__).resolve().parents[1] / "configs"
    config = load_config(configs / f"{name}.yaml")
    assert config.classes == classes
    assert config.replace(classes=None) == load_config(configs / "lightman.yaml")


def test_docs_models_md_matches_the_registry():
    """docs/models.md is written by benchmarks/models_table.py: its model table must still describe the
    registered models (input size, channels, parameters); rerun the script when this fails."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (\d+ x \d+ \| [^|]+ \| [\d,]+) \|", text, flags=re.M))
    assert set(ZOO) | {"slimcnn"} <= set(rows)
    for name, row in rows.items():
        spec, model = get_input_spec(name), create_model(name, num_classes=3)
        assert row == f"{spec.size} x {spec.size} | {', '.join(spec.channels)} | {count_parameters(model):,}", name
    assert "python benchmarks/models_table.py" in text
