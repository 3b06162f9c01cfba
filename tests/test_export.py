"""`mer-prep export`: the ststnet tree read back exactly as STSTNet's main.py reads it (cv2.imread
per file, folder names as integer labels), the npz files, the strain conventions, the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mer_pipeline.cli import cli
from mer_pipeline.errors import MerError
from mer_pipeline.export import export, ststnet_image
from mer_pipeline.flow import optical_strain, optical_strain_squared_shears
from mer_pipeline.shards import config_hash, open_shards, write_manifest, write_shard

SUBJECTS = {"sub01": ["happiness", "disgust", "fear"], "sub02": ["surprise", "repression"], "sub03": ["Happiness"]}


def shard_set(out: Path, dataset="casme2", subjects=SUBJECTS, size=16) -> Path:
    """A real shard set (the project's writer) with smooth random flows and our strain."""
    records, rng = [], np.random.default_rng(0)
    for subject, emotions in subjects.items():
        for k, emotion in enumerate(emotions):
            flow = cv2.GaussianBlur(rng.normal(0, 1, (size, size, 2)).astype(np.float32), (0, 0), 2).transpose(2, 0, 1)
            flow = np.ascontiguousarray(flow)
            records.append({
                "onset": rng.integers(0, 255, (size, size), dtype=np.uint8),
                "apex": rng.integers(0, 255, (size, size), dtype=np.uint8),
                "flow": flow, "strain": optical_strain(flow), "landmarks": rng.random((68, 2)).astype(np.float32),
                "meta": {"sample_id": f"{dataset}/{subject}/EP{k:02d}", "dataset": dataset, "subject": subject,
                         "clip": f"EP{k:02d}", "emotion": emotion, "action_units": "", "kind": "micro",
                         "apex_source": "annotated", "onset_frame": 1, "apex_frame": 5, "offset_frame": 9,
                         "fps": 200.0},
            })
    records.sort(key=lambda r: r["meta"]["sample_id"])
    config = {"dataset": dataset}
    (out / "shards").mkdir(parents=True)
    sha = write_shard(out / "shards" / f"{dataset}-00000.h5", records, size=size, landmarks=68,
                      config_hash=config_hash(config))
    write_manifest(out, dataset=dataset, config=config, failed=0, class_counts={}, pipeline_version="0",
                   shards=[{"file": f"{dataset}-00000.h5", "n": len(records), "sha256": sha}])
    return out


def read_like_ststnet(main_path: Path):
    """What christy1206/STSTNet main.py builds per subject: (X_train, y_train, X_test, y_test) from
    os.listdir + cv2.imread + int(folder name); here with the file names kept to compare."""
    folds = {}
    for subject in os.listdir(main_path):
        fold = {}
        for split in ("u_train", "u_test"):
            images, labels, names = [], [], []
            for expression in os.listdir(main_path / subject / split):
                for name in os.listdir(main_path / subject / split / expression):
                    labels.append(int(expression))
                    images.append(cv2.imread(str(main_path / subject / split / expression / name)))
                    names.append(name)
            fold[split] = (images, labels, names)
        folds[subject] = fold
    return folds


def test_ststnet_tree_reads_back_as_the_shards(tmp_path):
    out = shard_set(tmp_path / "casme2")
    summary = export(out, tmp_path / "ststnet", format="ststnet", classes="megc2019-3")
    shards = open_shards(out)
    megc = {"happiness": 1, "Happiness": 1, "disgust": 0, "repression": 0, "surprise": 2}  # fear: not in CASME II's negative
    expected = {f"{r['subject']}_{r['clip']}.png": (r["subject"], megc[r["emotion"]], i)
                for i, r in enumerate(shards.rows()) if r["emotion"] in megc}
    assert summary.samples == len(expected) == 5 and summary.skipped == 1 and summary.subjects == 3

    folds = read_like_ststnet(tmp_path / "ststnet")
    assert sorted(folds) == sorted(SUBJECTS)
    for subject, fold in folds.items():
        test_names, train_names = fold["u_test"][2], fold["u_train"][2]
        assert sorted(test_names) == sorted(n for n, (s, _, _) in expected.items() if s == subject)
        assert sorted(train_names) == sorted(n for n, (s, _, _) in expected.items() if s != subject)
        for split in ("u_train", "u_test"):
            for image, label, name in zip(*fold[split]):
                _, want_label, index = expected[name]
                assert label == want_label
                assert image.shape == (28, 28, 3) and image.dtype == np.uint8
                flow, strain = shards.arrays["flow"][index], shards.arrays["strain"][index]
                np.testing.assert_array_equal(image, ststnet_image(flow, strain))
                # channel 0 = strain, 1 = v, 2 = u, each min-max scaled: compare with the shard's fields
                for channel, field in ((0, strain), (1, flow[1]), (2, flow[0])):
                    small = cv2.resize(field, (28, 28), interpolation=cv2.INTER_AREA)
                    assert np.corrcoef(image[..., channel].ravel(), small.ravel())[0, 1] > 0.99
                    assert image[..., channel].min() == 0 and image[..., channel].max() == 255


def test_the_png_stores_u_v_strain_as_red_green_blue(tmp_path):
    """The RGB order STSTNet's released inputs use (MATLAB wrote [u v os]): a reader in RGB (PIL,
    MATLAB) sees u first; cv2.imread (BGR) gives strain first."""
    flow = np.zeros((2, 28, 28), np.float32)
    flow[0, :, :14] = 1.0  # u: left half
    flow[1, :14] = 1.0  # v: top half
    strain = np.zeros((28, 28), np.float32)
    strain[10:18, 10:18] = 1.0
    image = ststnet_image(flow, strain)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), image)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert rgb[5, 5, 0] == 255 and rgb[5, 20, 0] == 0  # R = u
    assert rgb[5, 5, 1] == 255 and rgb[20, 5, 1] == 0  # G = v
    assert rgb[14, 14, 2] == 255 and rgb[2, 2, 2] == 0  # B = strain


def test_npz_holds_u_v_strain_and_a_metadata_csv(tmp_path):
    out = shard_set(tmp_path / "casme2")
    export(out, tmp_path / "npz", format="npz", classes="casme2-5")
    shards = open_shards(out)
    data = np.load(tmp_path / "npz" / "casme2.npz")  # no pickle needed: plain arrays
    assert data["x"].dtype == np.float32 and data["x"].shape == (6, 3, 16, 16)
    np.testing.assert_array_equal(data["x"][:, :2], shards.arrays["flow"])
    np.testing.assert_array_equal(data["x"][:, 2], shards.arrays["strain"])
    assert list(data["sample_id"]) == list(shards.meta["sample_id"])
    casme2_5 = ["happiness", "disgust", "repression", "surprise", "others"]
    want = [casme2_5.index(e.lower()) if e.lower() in casme2_5 else -1 for e in shards.meta["emotion"]]
    assert list(data["label"]) == want
    lines = (tmp_path / "npz" / "casme2.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["index", "sample_id", "dataset"] and len(lines) == 7
    assert lines[1].split(",")[-2:] == [str(want[0]), casme2_5[want[0]] if want[0] >= 0 else ""]


def test_strain_other_is_the_squared_shear_formula(tmp_path):
    out = shard_set(tmp_path / "casme2")
    export(out, tmp_path / "ours", format="npz")
    export(out, tmp_path / "other", format="npz", strain="other")
    ours, other = (np.load(tmp_path / d / "casme2.npz")["x"] for d in ("ours", "other"))
    np.testing.assert_array_equal(ours[:, :2], other[:, :2])
    flow = ours[0, :2]
    np.testing.assert_array_equal(other[0, 2], optical_strain_squared_shears(flow))
    assert not np.allclose(ours[0, 2], other[0, 2])


def test_the_two_strain_formulas_differ_only_in_the_shear_term():
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    shear = np.stack([0.1 * yy, 0.1 * xx]).astype(np.float32)  # du/dy = dv/dx = 0.1: pure shear
    rotation = np.stack([-0.1 * yy, 0.1 * xx]).astype(np.float32)  # du/dy = -dv/dx: no deformation
    assert np.allclose(optical_strain(shear), np.sqrt(0.5 * 0.2 ** 2))
    assert np.allclose(optical_strain_squared_shears(shear), np.sqrt(0.5 * (0.01 + 0.01)))
    assert np.allclose(optical_strain(rotation), 0.0, atol=1e-7)  # ours: a rotation has no strain
    assert np.allclose(optical_strain_squared_shears(rotation), 0.1, atol=1e-6)


def test_as_written_classes_and_dataset_prefixed_subjects(tmp_path):
    a = shard_set(tmp_path / "sets" / "a", dataset="videos", subjects={"p01": ["happy", "sad"], "p02": ["Happy"]})
    shard_set(tmp_path / "sets" / "b", dataset="samm", subjects={"p01": ["Surprise"]})
    summary = export(tmp_path / "sets", tmp_path / "st", format="ststnet", classes="as-written")
    assert summary.classes == ("happiness", "sadness", "surprise")
    assert sorted(os.listdir(tmp_path / "st")) == ["p02", "samm_p01", "videos_p01"]
    folds = read_like_ststnet(tmp_path / "st")
    assert sorted(zip(folds["p02"]["u_test"][2], folds["p02"]["u_test"][1])) == [("p02_EP00.png", 0)]
    assert len(folds["p02"]["u_train"][1]) == 3 and a.is_dir()


def test_dest_is_never_overwritten_by_surprise(tmp_path):
    out = shard_set(tmp_path / "casme2")
    export(out, tmp_path / "st", format="ststnet")
    with pytest.raises(MerError, match="not empty; use --overwrite"):
        export(out, tmp_path / "st", format="ststnet")
    export(out, tmp_path / "st", format="ststnet", overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(MerError, match="not a ststnet export"):
        export(out, tmp_path / "mine", format="ststnet", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(MerError, match="^classes: unknown class set 'casme9'"):
        export(out, tmp_path / "x", format="npz", classes="casme9")
    calm = shard_set(tmp_path / "calm", subjects={"s1": ["neutral", "bored"]})
    with pytest.raises(MerError, match="no sample's emotion falls in the class set megc2019-3 .* the emotions are: "
                                       "bored, neutral. Choose another --classes"):
        export(calm, tmp_path / "x", format="ststnet")


def test_cli_export_and_no_torch(tmp_path):
    out = shard_set(tmp_path / "casme2")
    result = CliRunner().invoke(cli, ["export", str(out), str(tmp_path / "st"), "--format", "ststnet"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("exported 5 samples of 3 subjects (ststnet, classes negative, positive, surprise), "
                                    "1 outside the class set left out: 15 files -> ")
    code = ("import sys; from mer_pipeline.export import export; "
            f"export({str(out)!r}, {str(tmp_path / 'npz')!r}, format='npz', classes='megc2019-3'); "
            "print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
    assert json.loads((out / "manifest.json").read_text())["counts"]["ok"] == 6


def test_the_torch_dataset_in_the_docs_runs(tmp_path):
    """docs/shard-format.md's `ShardDataset` (the code block as printed) over a real shard set."""
    torch = pytest.importorskip("torch")
    text = (Path(__file__).resolve().parents[1] / "docs" / "shard-format.md").read_text()
    section = text.split("### A torch `Dataset` over `open_shards`", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "docs/shard-format.md", "exec"), namespace)
    out = shard_set(tmp_path / "casme2")
    dataset = namespace["ShardDataset"](out, ["happiness", "disgust", "repression", "surprise", "others"])
    assert len(dataset) == 5  # fear is outside CASME II's five classes
    x, y = dataset[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 16, 16) and 0 <= y < 5
    shards = open_shards(out)
    first = list(shards.meta["emotion"]).index(next(e for e in shards.meta["emotion"] if e.lower() != "fear"))
    np.testing.assert_array_equal(x[:2].numpy(), shards.arrays["flow"][first])
