"""The `hard` preset: CASME II's class proportions over uneven subjects, per-subject traits, cues that
go with the label (or the recording session) inside a subject and not across subjects, clean posed
macro-expressions against partial spontaneous micro-expressions (the gap, and its template oracle),
factor switches, same seed same bytes, and faces that dlib still finds.

Population statistics are checked on the pure drawing functions (hundreds of subjects, no pixels);
what reaches the pixels and the truth file on one small rendered tree.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from dataclasses import replace

import cv2
import numpy as np
import openpyxl
import pytest

from mer_pipeline.synth import PRESETS, TRUTH_FILE, aus, generate, motion, truth_field
from mer_pipeline.synth import population as pop
from mer_pipeline.synth.errors import SynthError
from mer_pipeline.synth.faces import detect_faces
from mer_pipeline.synth.generate import synth_truth
from mer_pipeline.synth.layouts import LAYOUTS
from mer_pipeline.synth.presets import CASME2_COUNTS, FACTORS, SIGNAL_FIELDS, factor_state, with_factors



def template_oracle():
    """benchmarks/template_oracle.py (benchmarks/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "template_oracle.py"
    spec = importlib.util.spec_from_file_location("template_oracle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

HARD = PRESETS["hard"]
SMALL = dict(subjects=4, clips_per_subject=4, seed=10)  # 16 clips; cue kinds head, none, both, light


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    raw = tmp_path_factory.mktemp("hard") / "casme2"
    generate("casme2", raw, preset="hard", **SMALL)
    return raw


def load_truth(raw: Path) -> dict:
    return json.loads((raw / TRUTH_FILE).read_text())


def frame_path(raw: Path, clip: dict, number: int) -> Path:
    return raw / clip["folder"] / f"img{number}.jpg"


def tree_hashes(raw: Path) -> dict[str, str]:
    return {str(p.relative_to(raw)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(raw.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# population: class proportions, uneven subjects

def test_class_counts_follow_casme2_and_subjects_are_uneven():
    rows = pop.plan_labels(np.random.default_rng(0), LAYOUTS["casme2"], HARD.population, 26, 10)
    counts = Counter(label for row in rows for label in row)
    assert sum(counts.values()) == 260
    for label, real in CASME2_COUNTS:  # 255 real clips -> 260: every class within one clip of its share
        assert abs(counts[label] - 260 * real / 255) <= 1, (label, counts[label])
    sizes = sorted(len(row) for row in rows)
    assert sizes[0] <= 3 and sizes[-1] >= 20, sizes  # CASME II: 2 to ~35 clips per subject
    main = {"others", "disgust", "happiness", "repression", "surprise"}
    lacking = [row for row in rows if len(row) >= 8 and not main <= set(row)]
    assert len(lacking) >= len([r for r in rows if len(r) >= 8]) / 2, "emotions are spread unevenly"


def test_other_layouts_map_their_labels_onto_the_table():
    smic = pop.class_weights(LAYOUTS["smic"], CASME2_COUNTS)
    assert smic == {"negative": 63 + 27 + 7 + 2, "positive": 32, "surprise": 25}
    samm = pop.class_weights(LAYOUTS["samm"], CASME2_COUNTS)
    assert samm["Anger"] == samm["Contempt"] == 27  # no CASME II prototype: the table's median
    assert max(samm[r] for r in LAYOUTS["samm"].rare) <= min(samm[c] for c in LAYOUTS["samm"].classes) / 3
    assert pop.apportion(7, [3, 1, 1]) == [4, 2, 1] and pop.apportion(0, [1, 2]) == [0, 0]  # ties: earlier


def test_small_tree_has_the_planned_population(tree):
    truth = load_truth(tree)
    counts = Counter(c["emotion"] for c in truth["clips"])
    weights = pop.class_weights(LAYOUTS["casme2"], CASME2_COUNTS)
    expected = dict(zip(weights, pop.apportion(16, list(weights.values()))))
    assert counts == Counter({k: n for k, n in expected.items() if n})
    per_subject = truth["population"]["emotions_per_subject"]
    assert sum(sum(v.values()) for v in per_subject.values()) == 16
    assert len({sum(v.values()) for v in per_subject.values()}) > 1, "clips per subject differ"
    assert truth["arguments"]["preset"] == "hard" and truth["preset"]["population"]["clips_cv"] == 0.75


# ---------------------------------------------------------------------------------------------
# individual differences

def test_traits_are_recorded_and_shape_every_clip(tree):
    truth = load_truth(tree)
    t = HARD.traits
    for key, subject in truth["subjects"].items():
        traits = subject["traits"]
        assert t.amplitude_scale[0] <= traits["amplitude_scale"] <= t.amplitude_scale[1]
        assert t.asymmetry[0] <= traits["asymmetry"] <= t.asymmetry[1] and traits["weak_side"] in "RL"
        assert traits["habitual_au"] in t.habitual_aus
        assert t.habit_strength[0] <= traits["habit_strength"] <= t.habit_strength[1]
        geometry = subject["identity"]["geometry"]
        assert max(abs(v) for v in geometry.values()) <= HARD.identity_strength * 0.10 + 1e-9
    for clip in truth["clips"]:
        traits = truth["subjects"][f"casme2/{clip['subject']}"]["traits"]
        habit = traits["habitual_au"]
        numbers = [int(tok.lstrip("LR")) for tok in clip["au_tokens"]]
        assert int(habit.lstrip("LR")) in numbers  # shown with every expression ...
        assert clip["habit"] in (habit, None)  # ... added unless the emotion moves that AU already
        if clip["habit"]:
            assert habit in clip["au_tokens"] and (clip["annotated"] is None
                                                   or habit in clip["annotated"]["action_units"].split("+"))
        assert clip["amplitude"] <= HARD.micro_amplitude[1] * traits["amplitude_scale"] + 1e-3
        # the weak side moves (1 - asymmetry) times as much (the sides also differ by up to 15 % by chance),
        # on the AUs planted on both sides (the gap makes some AUs of a micro clip one-sided)
        both = {int(t) for t in clip["au_tokens"] if t[0] not in "LR"}
        side = {s: sum(np.hypot(b["u"], b["v"]) for b in clip["field"]["bumps"]
                       if b["side"] == s and int(b["au"]) != int(habit.lstrip("LR")) and int(b["au"]) in both)
                for s in "RL"}
        weak, strong = side[traits["weak_side"]], side["L" if traits["weak_side"] == "R" else "R"]
        if weak and strong:
            assert 0.85 * (1 - traits["asymmetry"]) - 1e-6 <= weak / strong <= (1 - traits["asymmetry"]) / 0.85 + 1e-6


# ---------------------------------------------------------------------------------------------
# confounders

def cue_vector(cue: dict) -> np.ndarray:
    light = cue.get("light", {"angle_deg": 0.0, "strength": 0.0})
    head = cue.get("head", {"tx": 0.0, "ty": 0.0, "roll_deg": 0.0})
    a = np.radians(light["angle_deg"])
    return np.array([10 * light["strength"] * np.cos(a), 10 * light["strength"] * np.sin(a),
                     head["tx"], head["ty"], 5 * head["roll_deg"]])


def test_confounders_predict_the_label_within_a_subject_but_not_across():
    labels = LAYOUTS["casme2"].classes
    rng = np.random.default_rng(0)
    subjects = [pop.draw_confounders(np.random.default_rng(s), HARD.confounders, labels) for s in range(200)]
    subjects = [s for s in subjects if s["kind"] != "none"]
    assert 0.6 < len(subjects) / 200 < 0.9  # fraction 0.75 of subjects have cues
    # each subject: 3 clips per emotion (cues jittered per clip)
    data = [[(label, cue_vector(pop.clip_cue(rng, s, label, HARD.confounders.jitter))) for label in labels
             for _ in range(3)] for s in subjects]

    def nearest(centroids: dict, x):
        return min(centroids, key=lambda k: np.linalg.norm(centroids[k] - x))

    within = across = n = 0
    for i, clips in enumerate(data):
        for j, (label, x) in enumerate(clips):  # within: centroids from the subject's other clips
            others = [c for k, c in enumerate(clips) if k != j]
            centroids = {lab: np.mean([v for l2, v in others if l2 == lab], axis=0) for lab in labels}
            within += nearest(centroids, x) == label
            n += 1
        pooled = [c for k, d in enumerate(data) if k != i for c in d]  # across: other subjects only (LOSO)
        centroids = {lab: np.mean([v for l2, v in pooled if l2 == lab], axis=0) for lab in labels}
        across += sum(nearest(centroids, x) == label for label, x in clips)
    assert within / n > 0.9, within / n
    assert across / n < 1 / len(labels) + 0.1, across / n  # chance level


def onset_moved_to_apex(onset: np.ndarray, clip: dict) -> np.ndarray:
    """The onset frame moved as the truth says the apex frame is (planted field d, then the head's
    apex transform A): apex pixel y shows onset content at x = z - d(z), z = A^-1 y (first order in d)."""
    h, w = onset.shape
    inverse = np.linalg.inv(np.vstack([np.array(clip["head"]["apex_transform"]), [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    zx = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]).astype(np.float32)
    zy = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]).astype(np.float32)
    d = truth_field(clip)
    du, dv = (cv2.remap(d[k], zx, zy, cv2.INTER_LINEAR) for k in (0, 1))
    return cv2.remap(onset, zx - du, zy - dv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_confounders_are_recorded_and_rendered(tree):
    truth = load_truth(tree)
    lit = 0
    for clip in (c for c in truth["clips"] if c["on_disk"]):
        subject = truth["subjects"][f"casme2/{clip['subject']}"]["confounders"]
        if subject["kind"] == "none":
            assert clip["confounder"] is None and "pulses" not in clip["head"]
            continue
        cue, own = clip["confounder"], subject["cues"][clip["emotion"]]
        assert set(cue) == set(own)  # light and/or head, as the subject's kind says
        if "head" in cue:  # the nudge is part of the recorded head pose at apex
            (pulse,) = clip["head"]["pulses"]
            assert (pulse["onset"], pulse["apex"], pulse["offset"]) == (clip["onset"], clip["apex"], clip["offset"])
            assert np.hypot(cue["head"]["tx"] - own["head"]["tx"], cue["head"]["ty"] - own["head"]["ty"]) < \
                0.4 * np.hypot(own["head"]["tx"], own["head"]["ty"])
            still = {k: v for k, v in clip["head"].items() if k != "pulses"}
            moved = np.subtract(motion.head_pose(clip["head"], clip["apex"]), motion.head_pose(still, clip["apex"]))
            assert np.allclose(moved, [pulse["tx"], pulse["ty"], pulse["roll_deg"]], atol=1e-9)
        if "light" in cue:  # the apex frame is lit by the recorded gradient: compare blurred frames
            assert abs(cue["light"]["strength"] / own["light"]["strength"] - 1) <= HARD.confounders.jitter + 1e-3
            onset = cv2.imread(str(frame_path(tree, clip, clip["onset"])), cv2.IMREAD_GRAYSCALE).astype(np.float32)
            apex = cv2.imread(str(frame_path(tree, clip, clip["apex"])), cv2.IMREAD_GRAYSCALE).astype(np.float32)
            moved = onset_moved_to_apex(onset, clip)  # so that only the light differs
            ratio = cv2.GaussianBlur(apex, (0, 0), 30) / (cv2.GaussianBlur(moved, (0, 0), 30) + 1) - 1
            gain = motion.Expression(0, 1, 2, [], cue["light"]).light_gain(onset.shape)
            cx, cy = (int(v) for v in cue["light"]["centre"])
            r = int(cue["light"]["width"] * 0.35)
            window = (slice(cy - r, cy + r), slice(cx - r, cx + r))  # the inner face
            seen, planted = ratio[window].ravel(), gain[window].ravel()
            assert np.corrcoef(seen, planted)[0, 1] > 0.8, clip["sample_id"]
            assert 0.6 < np.polyfit(planted, seen, 1)[0] < 1.5, clip["sample_id"]  # about the planted gain
            lit += 1
    assert lit, "the small tree should have a clip with a lighting cue (choose another SMALL seed)"


def test_light_cue_scales_the_frame_by_its_gain_along_the_profile():
    base = np.full((120, 160, 3), 100, np.uint8)
    light = {"angle_deg": 30.0, "strength": 0.03, "centre": [80.0, 60.0], "width": 80.0}
    still = [{"au": 12, "side": "R", "x": 80.0, "y": 60.0, "sigma": 5.0, "u": 0.0, "v": 0.0}]
    expression = motion.Expression(10, 14, 20, still, light)
    head = motion.draw_head_motion(np.random.default_rng(0), (80, 60), 200.0, (0, 0), (0, 0), origin=10)
    renderer = motion.Renderer(base, np.ones((120, 160), np.float32), head, [expression], None, None, None)
    gain = expression.light_gain((120, 160))
    assert np.abs(gain).max() == pytest.approx(0.03)
    assert np.array_equal(renderer.clean(10), base) and np.array_equal(renderer.clean(20), base)
    expected = np.clip(np.rint(100 * (1 + gain)), 0, 255).astype(np.uint8)
    assert np.array_equal(renderer.clean(14), np.repeat(expected[..., None], 3, axis=2))
    assert np.abs(renderer.clean(12).astype(int) - 100).max() < np.abs(expected.astype(int) - 100).max()


# ---------------------------------------------------------------------------------------------
# faces, determinism, macro

@pytest.mark.slow
def test_dlib_finds_each_subject_on_its_onset_frame(tree):
    truth = load_truth(tree)
    seen = set()
    for clip in truth["clips"]:
        if not clip["on_disk"] or clip["subject"] in seen:
            continue
        seen.add(clip["subject"])
        grey = cv2.imread(str(frame_path(tree, clip, clip["onset"])), cv2.IMREAD_GRAYSCALE)
        faces = detect_faces(grey, 0)
        assert len(faces) == 1, (clip["sample_id"], len(faces))
        m = np.array(clip["head"]["onset_transform"])
        planted = np.array(truth["subjects"][f"casme2/{clip['subject']}"]["landmarks"]) @ m[:, :2].T + m[:, 2]
        assert np.median(np.linalg.norm(faces[0][1] - planted, axis=1)) < 3.0, clip["sample_id"]
    assert len(seen) == SMALL["subjects"]


def test_same_seed_same_bytes_other_seed_other_people(tmp_path):
    generate("casme2", tmp_path / "a", preset="hard", subjects=2, clips_per_subject=1, seed=11, workers=1)
    generate("casme2", tmp_path / "b", preset="hard", subjects=2, clips_per_subject=1, seed=11, workers=2)
    assert tree_hashes(tmp_path / "a") == tree_hashes(tmp_path / "b")
    rng = {s: pop.draw_traits(np.random.default_rng(s), HARD.traits) for s in (1, 2)}
    assert rng[1] != rng[2]


def test_macro_stays_clean_and_strong(tmp_path):
    generate("ckplus", tmp_path / "ck", preset="hard", subjects=2, clips_per_subject=2, seed=1)
    truth = load_truth(tmp_path / "ck")
    easy = PRESETS["easy"]
    assert not {"population", "traits", "confounders"} & set(truth["preset"])
    assert tuple(truth["preset"]["noise_sigma"]) == easy.noise_sigma
    assert tuple(truth["preset"]["head_translation"]) == easy.head_translation
    assert all("traits" not in s and "confounders" not in s for s in truth["subjects"].values())
    for clip in truth["clips"]:
        assert 5.0 - 1e-3 <= clip["amplitude"] <= 15.0 + 1e-3 and clip["noise_sigma"] <= easy.noise_sigma[1]
        assert "habit" not in clip and "pulses" not in clip["head"]


def test_default_sizes_are_casme2s_and_a_larger_ckplus():
    from mer_pipeline.synth.generate import _default_size

    assert _default_size(HARD, LAYOUTS["casme2"]) == (26, 10)  # 260 clips; CASME II has 255 over 26 subjects
    assert _default_size(HARD, LAYOUTS["ckplus"]) == (20, 6)
    assert _default_size(HARD, LAYOUTS["samm"]) == (LAYOUTS["samm"].default_subjects, LAYOUTS["samm"].default_clips)
    assert _default_size(PRESETS["default"], LAYOUTS["casme2"]) == (12, 6)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["samm", "casme3", "casme2", "mmew"])
def test_other_micro_layouts_parse_back_with_habits_in_their_sheets(tmp_path, dataset):
    from mer_pipeline.datasets import get_adapter

    raw = tmp_path / dataset
    generate(dataset, raw, preset="hard", subjects=2, clips_per_subject=3, seed=3, quirks=True, workers=1)
    truth = load_truth(raw)
    samples = {s.sample_id: s for s in get_adapter(dataset).scan(raw).samples}
    checked = 0
    for clip in truth["clips"]:
        if clip["sample_id"] not in samples:
            continue  # quirks the adapter rejects (tests/test_datasets_synth.py)
        sample, sheet = samples[clip["sample_id"]], clip["annotated"]
        assert sample.emotion == sheet["emotion"] and sample.action_units == sheet["action_units"]
        checked += bool(clip["habit"])
    assert checked, "some clip carries its subject's habitual AU in the sheet"


# ---------------------------------------------------------------------------------------------
# the micro/macro gap

def test_spontaneous_micro_aus_are_partial_one_sided_and_respect_dropout():
    gap = HARD.gap
    pool = dict(aus.MICRO_SPONTANEOUS["disgust"])
    rng = np.random.default_rng(0)
    draws = [aus.spontaneous_aus(rng, "disgust") for _ in range(4000)]
    numbers = Counter(aus.parse_au(t)[0] for d in draws for t in d)
    for au, p in pool.items():  # each AU of the pool about as often as its probability (+ the fallback)
        assert p - 0.04 < numbers[int(au)] / len(draws) < p + 0.1, au
    assert set(numbers) == {int(a) for a in pool} and {len(d) for d in draws} >= {1, 2, 3}  # partial subsets
    # a label the face does not show: a single `others` AU; 3 of its 5 options (1, R2, L2) are not disgust's
    strays = [aus.spontaneous_aus(rng, "disgust", off_prototype=gap.off_prototype) for _ in range(4000)]
    foreign = sum(d in {("1",), ("R2",), ("L2",)} for d in strays) / len(strays)
    assert abs(foreign - gap.off_prototype * 3 / 5) < 0.03, foreign
    tokens = [t for _ in range(2000) for t in aus.spontaneous_aus(rng, "happiness", unilateral=gap.unilateral)]
    assert abs(sum(t[0] in "LR" for t in tokens) / len(tokens) - gap.unilateral) < 0.04
    never = {4, 9}  # a subject who never shows the brow lowerer or the nose wrinkler
    shown = [aus.spontaneous_aus(rng, "disgust", never) for _ in range(500)]
    assert all(not {aus.parse_au(t)[0] for t in d} & never for d in shown)
    assert aus.spontaneous_aus(rng, "disgust", {4, 7, 9, 10}) == ("4",)  # shows nothing: the likeliest AU
    assert aus.spontaneous_aus(rng, "repression") in {tuple(o) for o in aus.EMOTION_AUS["repression"]}


def test_macro_is_posed_full_and_symmetric():
    truth = synth_truth("ckplus", preset="hard", subjects=2, clips_per_subject=4, seed=2)
    for clip in truth["clips"]:
        assert clip["expression"] == "posed"
        assert tuple(clip["au_tokens"]) in {tuple(o) for o in aus.MACRO_AUS[clip["prototype"]]}
        for au in {b["au"] for b in clip["field"]["bumps"]}:  # both sides of an AU move alike
            sides = {s: sum(np.hypot(b["u"], b["v"]) for b in clip["field"]["bumps"] if b["au"] == au and b["side"] == s)
                     for s in "RL"}
            if sides["R"] and sides["L"]:
                assert sides["R"] == pytest.approx(sides["L"], rel=1e-3), (clip["sample_id"], au)
        assert 5.0 - 1e-3 <= clip["amplitude"] <= 15.0 + 1e-3
    assert truth["factors"] == {"gap": True, "noise_floor": None, "imbalance": None, "traits": None,
                                "confounders": None, "confounders_by": None}  # micro-only factors: n/a
    assert "dropped_aus" not in next(iter(truth["subjects"].values()))


def test_micro_clips_show_their_spontaneous_aus_in_the_sheet(tree):
    truth = load_truth(tree)
    wb = openpyxl.load_workbook(tree / "CASME2-coding-20190701.xlsx")
    sheet = {(f"sub{str(r[0]).zfill(2)}", r[1]): r[7] for r in wb["Sheet1"].iter_rows(min_row=2, values_only=True)}
    one_sided = 0
    for clip in truth["clips"]:
        assert clip["expression"] == "spontaneous"
        subject = truth["subjects"][f"casme2/{clip['subject']}"]
        habit = clip["habit"]
        planted = {aus.parse_au(t)[0] for t in clip["au_tokens"] if t != habit}
        pool = {aus.parse_au(a)[0] for a, _ in aus.MICRO_SPONTANEOUS.get(clip["prototype"], ())}
        allowed = pool | {aus.parse_au(t)[0] for o in aus.EMOTION_AUS[clip["prototype"]] + aus.EMOTION_AUS["others"]
                          for t in o}
        assert planted <= allowed, clip["sample_id"]
        if pool and planted <= pool and len(planted) > 1:  # the subject's dropped AUs never show ...
            assert not planted & set(subject["dropped_aus"]), clip["sample_id"]
        one_sided += any(t[0] in "LR" for t in clip["au_tokens"] if t != habit)
        assert str(sheet[(clip["subject"], clip["clip"])]) == clip["action_units"]  # ... and the coder codes them
    assert one_sided, "some micro clip moves one side only"


@pytest.mark.slow
def test_template_oracle_is_far_from_perfect_with_the_gap_and_perfect_without():
    """The nearest macro template names a clean micro field's class (benchmarks/template_oracle.py):
    with the gap well below 100 % and above chance, without it (the same AU table) always."""
    oracle = template_oracle()
    scores = {}
    for gap in (True, False):
        micro = synth_truth("casme2", preset="hard", subjects=8, clips_per_subject=8, seed=21, gap=gap)
        macro = synth_truth("ckplus", preset="hard", subjects=6, clips_per_subject=7, seed=21, gap=gap)
        scores[gap] = {c: oracle.oracle_score(micro, macro, compete=c) for c in oracle.COMPETE}
    for compete, score in scores[True].items():
        assert score["chance"] + 0.1 < score["accuracy"] < 0.85, (compete, score["accuracy"])
        assert set(score["no_counterpart"]) == {"others", "repression"}
    for compete, score in scores[False].items():
        assert score["accuracy"] >= 0.95, (compete, score["accuracy"])
    counterparts = scores[True]["counterparts"]
    assert set(counterparts["classes"]) <= {"happiness", "surprise", "disgust", "sadness", "fear"}
    assert counterparts["chance"] == 1 / len(counterparts["classes"]) and scores[True]["all"]["chance"] == 1 / 7


def test_aligned_field_is_the_planted_field_seen_in_the_crop():
    from mer_pipeline.align import alignment_transform
    from mer_pipeline.face import dlib68_anchors

    oracle = template_oracle()
    truth = synth_truth("casme2", preset="hard", subjects=1, clips_per_subject=2, seed=4)
    clip = truth["clips"][0]
    landmarks = truth["subjects"][f"casme2/{clip['subject']}"]["landmarks"]
    size = 96
    field = oracle.aligned_field(clip, landmarks, size)
    # the same field by warping the raw one: crop point y sees raw point M^-1 y, and vectors scale by M
    m = alignment_transform(dlib68_anchors(np.asarray(landmarks)).astype(np.float64), size)
    raw = truth_field(clip).astype(np.float32)
    inverse = cv2.invertAffineTransform(m)
    warped = np.stack([cv2.warpAffine(raw[k], m, (size, size), flags=cv2.INTER_LINEAR) for k in (0, 1)])
    expected = np.einsum("ij,jhw->ihw", m[:, :2], warped)
    assert np.allclose(inverse[:, :2] @ m[:, :2], np.eye(2))
    assert oracle.cosine(field, expected) > 0.995
    assert np.abs(field).max() == pytest.approx(np.abs(expected).max(), rel=0.05)


# ---------------------------------------------------------------------------------------------
# factor switches

def test_factor_switches_take_hard_or_default_values():
    default = PRESETS["default"]
    off = with_factors(HARD, noise_floor=False, imbalance=False, traits=False, confounders=False, gap=False)
    assert off.factors == ()
    assert all(getattr(off, f) == getattr(default, f) for f in SIGNAL_FIELDS)
    assert (off.population, off.traits, off.confounders, off.gap, off.identity_strength) == (None, None, None, None, 1.0)
    assert with_factors(HARD) is HARD and with_factors(default) is default  # no switch: the preset itself
    on = with_factors(default, confounders=True, gap=True)
    assert on.factors == ("confounders", "gap") and on.confounders == HARD.confounders and on.gap == HARD.gap
    assert on.micro_amplitude == default.micro_amplitude and on.population is None
    by_session = with_factors(HARD, confounders_by="session")
    assert by_session.confounders.by == "session" and by_session.factors == FACTORS
    assert factor_state(by_session) == {**{f: True for f in FACTORS}, "confounders_by": "session"}
    with pytest.raises(SynthError, match="--confounders"):
        with_factors(default, confounders_by="session")
    with pytest.raises(SynthError, match="emotion, session"):
        with_factors(HARD, confounders_by="day")


def test_switching_a_factor_off_keeps_the_rest_of_the_tree():
    """Attribution needs paired trees: without confounders the same clips, labels, timing and AUs."""
    args = dict(preset="hard", subjects=3, clips_per_subject=4, seed=6)
    full, bare = synth_truth("casme2", **args), synth_truth("casme2", confounders=False, **args)
    assert bare["factors"] == {**{f: f != "confounders" for f in FACTORS}, "confounders_by": None}
    assert "confounders" not in bare["preset"] and all("confounders" not in s for s in bare["subjects"].values())
    same = ("sample_id", "emotion", "onset", "apex", "offset", "au_tokens", "amplitude", "noise_sigma")
    assert [{k: c[k] for k in same} for c in full["clips"]] == [{k: c[k] for k in same} for c in bare["clips"]]
    assert all(c["confounder"] is None and "pulses" not in c["head"] for c in bare["clips"])
    # micro-only factors leave a macro tree as it is
    ck = dict(preset="hard", subjects=1, clips_per_subject=2, seed=6)
    assert synth_truth("ckplus", confounders=False, traits=False, **ck) == synth_truth("ckplus", **ck)
    with pytest.raises(SynthError, match="unknown factor"):
        synth_truth("casme2", lighting=False, **args)


def test_session_cues_go_with_the_session_not_the_emotion():
    """Within a subject a session cue predicts the session; clusters of cues are not label-pure."""
    conf = replace(HARD.confounders, by="session", fraction=1.0)
    labels = LAYOUTS["casme2"].classes
    rng = np.random.default_rng(1)
    by_emotion = by_session = n = 0
    for s in range(60):
        ids = [f"c{k:02d}" for k in range(12)]
        emotion = {i: labels[int(rng.integers(len(labels)))] for i in ids}
        session = pop.deal_sessions(np.random.default_rng(100 + s), ids, conf)
        assert 1 <= len(set(session.values())) <= conf.sessions[1]
        cues = pop.draw_confounders(np.random.default_rng(s), conf, pop.session_names(conf))
        x = {i: cue_vector(pop.clip_cue(rng, cues, session[i], conf.jitter)) for i in ids}
        for i in ids:  # leave-one-out nearest centroid inside the subject
            rest = [j for j in ids if j != i]
            for key, hits in ((emotion, "emotion"), (session, "session")):
                groups = {v: np.mean([x[j] for j in rest if key[j] == v], axis=0) for v in {key[j] for j in rest}}
                right = min(groups, key=lambda v: np.linalg.norm(groups[v] - x[i])) == key[i]
                if hits == "emotion":
                    by_emotion += right
                else:
                    by_session += right
            n += 1
    assert by_session / n > 0.85, by_session / n
    assert by_emotion / n < 0.45, by_emotion / n  # emotions spread over sessions: near chance


def test_session_confounders_are_recorded_per_clip():
    truth = synth_truth("casme2", preset="hard", subjects=3, clips_per_subject=5, seed=8, confounders_by="session")
    assert truth["factors"]["confounders_by"] == "session" and truth["preset"]["confounders"]["by"] == "session"
    seen = 0
    for clip in truth["clips"]:
        cues = truth["subjects"][f"casme2/{clip['subject']}"]["confounders"]
        assert clip["session"].startswith("session")
        if cues["kind"] == "none" or not clip["on_disk"]:
            continue
        own = cues["cues"][clip["session"]]
        assert set(clip["confounder"]) == set(own)
        seen += 1
    assert seen


def test_cli_switches_reach_the_truth(tmp_path):
    from click.testing import CliRunner

    from mer_pipeline.synth.cli import synth

    out = tmp_path / "t"
    result = CliRunner().invoke(synth, ["casme2", str(out), "--preset", "hard", "--subjects", "1",
                                        "--clips-per-subject", "1", "--no-confounders", "--no-gap", "-q"])
    assert result.exit_code == 0, result.output
    factors = load_truth(out)["factors"]
    assert factors == {"noise_floor": True, "imbalance": True, "traits": True, "confounders": False, "gap": False,
                       "confounders_by": None}
    bad = CliRunner().invoke(synth, ["casme2", str(tmp_path / "u"), "--confounders-by", "session"])
    assert bad.exit_code != 0 and "--confounders" in bad.output
