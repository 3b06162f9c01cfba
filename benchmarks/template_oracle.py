"""The template oracle: how much a macro-expression template tells about a micro-expression's class.

    python benchmarks/template_oracle.py                          # hard preset, generator seeds 0 1 2
    python benchmarks/template_oracle.py --preset hard --seeds 5 --no-gap

Definition (docs/synth.md, "The micro/macro gap"). From the planted fields of synth_truth.json, no
frames and no face detection:
1. every planted apex field d (`truth_field`, facial motion only: no head motion, noise or light)
   is mapped into the aligned S x S crop of stage one (the similarity transform that
   `mer_pipeline.align.alignment_transform` computes from the subject's five dlib anchors in the
   onset frame; a similarity maps a sum of isotropic Gaussian bumps onto another such sum exactly);
2. the template of a macro class is the mean of its clips' aligned fields, each scaled to unit L2 norm;
3. a micro clip whose class has a macro counterpart (its label's single prototype emotion is a macro
   class's prototype: casme2 happiness, surprise, disgust, sadness, fear; not repression, others)
   is assigned the macro class whose template has the largest cosine with its aligned field, among
   all macro classes ("all", as the trainer's nearest macro prototype: chance 1/7 for CK+) or among
   the counterpart classes only ("counterparts": chance 1 / their number).
The score is the accuracy of that assignment and its UAR (mean recall over the counterpart classes,
CASME II's classes being imbalanced). A bench whose oracle is near 1.0 hands the auxiliary branch
the answer; real posed CK+ templates and spontaneous micro-expressions are far from that.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mer_pipeline.align import alignment_transform
from mer_pipeline.face import dlib68_anchors
from mer_pipeline.synth import aus
from mer_pipeline.synth.layouts import get_layout

SIZE = 64  # side of the aligned crop the fields are compared on (stage one's default is 128)


def aligned_bumps(entry: dict, landmarks, size: int = SIZE) -> list[dict]:
    """The clip's planted bumps in the coordinates of stage one's `size` x `size` aligned crop.

    `landmarks`: the subject's 68 landmarks as synth_truth.json stores them (neutral frame); the
    clip's `head.onset_transform` takes them into its onset frame, where the bumps are."""
    onset = np.asarray(entry["head"]["onset_transform"], dtype=np.float64)
    points = np.asarray(landmarks, dtype=np.float64) @ onset[:, :2].T + onset[:, 2]
    matrix = alignment_transform(dlib68_anchors(points).astype(np.float64), size)  # onset frame -> crop
    linear, shift = matrix[:, :2], matrix[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    out = []
    for b in entry["field"]["bumps"]:
        x, y = linear @ (b["x"], b["y"]) + shift
        u, v = linear @ (b["u"], b["v"])
        out.append({**b, "x": float(x), "y": float(y), "u": float(u), "v": float(v), "sigma": b["sigma"] * scale})
    return out


def aligned_field(entry: dict, landmarks, size: int = SIZE) -> np.ndarray:
    """(2, size, size) float64: the planted apex field as stage one's aligned crop would show it."""
    return aus.field_on_grid(aligned_bumps(entry, landmarks, size), (size, size))


def _unit(field: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(field))
    return field / norm if norm > 0 else field


def class_of(truth: dict, entry: dict) -> str | None:
    """A clip's class as the oracle matches it: the single prototype emotion of its label, or None
    when the label has several (SMIC `negative`)."""
    options = get_layout(truth["dataset"]).prototype_options(entry["emotion"])
    return options[0] if len(options) == 1 else None


def aligned_fields(truth: dict, size: int = SIZE) -> tuple[list[dict], np.ndarray]:
    """(clips, fields (N, 2, size, size)) of every clip of a truth document, unit L2 norm each."""
    clips = list(truth["clips"])
    fields = np.stack([_unit(aligned_field(c, truth["subjects"][f"{c['dataset']}/{c['subject']}"]["landmarks"],
                                           size)) for c in clips]) if clips else np.zeros((0, 2, size, size))
    return clips, fields


def macro_templates(macro_truth: dict, size: int = SIZE) -> dict[str, np.ndarray]:
    """Class (prototype emotion) -> mean of its clips' unit-norm aligned fields, (2, size, size)."""
    clips, fields = aligned_fields(macro_truth, size)
    by_class: dict[str, list[np.ndarray]] = {}
    for clip, field in zip(clips, fields):
        key = class_of(macro_truth, clip)
        if key is not None:
            by_class.setdefault(key, []).append(field)
    return {key: np.mean(group, axis=0) for key, group in sorted(by_class.items())}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float((a * b).sum() / (na * nb)) if na > 0 and nb > 0 else 0.0


COMPETE = ("all", "counterparts")


def oracle_score(micro_truth: dict, macro_truth: dict, size: int = SIZE, compete: str = "all") -> dict:
    """The template oracle of a micro tree against a macro tree (module docstring).

    `compete`: which macro templates a clip is assigned among: "all" (every macro class, as the
    trainer's nearest macro prototype; chance 1 / macro classes) or "counterparts" (only the macro
    classes that are also micro classes; chance 1 / their number).
    Returns {accuracy, uar, chance, n, compete, classes (the counterpart classes scored),
    templates (the competing classes), no_counterpart (micro classes left out, with their clip
    counts), per_class {class: {n, recall, own_cosine}}, confusion {true: {predicted: count}}};
    own_cosine is the mean cosine of a class's clips with their own class's template."""
    if compete not in COMPETE:
        raise ValueError(f"compete must be one of {', '.join(COMPETE)}, not {compete!r}")
    templates = macro_templates(macro_truth, size)
    clips, fields = aligned_fields(micro_truth, size)
    keys = [class_of(micro_truth, c) for c in clips]
    scored_classes = sorted({k for k in keys if k in templates})
    if not scored_classes:
        raise ValueError("no micro class has a macro counterpart: compare a micro tree with a macro tree "
                         "(e.g. casme2 against ckplus)")
    candidates = sorted(templates) if compete == "all" else scored_classes
    bank = np.stack([templates[k].ravel() for k in candidates])  # (K, 2 S S)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    confusion = {k: {p: 0 for p in candidates} for k in scored_classes}
    own: dict[str, list[float]] = {k: [] for k in scored_classes}
    left_out: dict[str, int] = {}
    for key, field in zip(keys, fields):
        if key not in templates:
            left_out[str(key)] = left_out.get(str(key), 0) + 1
            continue
        cosines = bank @ field.ravel()  # fields are unit norm already
        confusion[key][candidates[int(np.argmax(cosines))]] += 1
        own[key].append(float(cosines[candidates.index(key)]))
    per_class = {k: {"n": sum(confusion[k].values()), "recall": confusion[k][k] / sum(confusion[k].values()),
                     "own_cosine": round(float(np.mean(own[k])), 4)}
                 for k in scored_classes}
    n = sum(m["n"] for m in per_class.values())
    return {
        "accuracy": sum(confusion[k][k] for k in scored_classes) / n,
        "uar": float(np.mean([m["recall"] for m in per_class.values()])),
        "chance": 1.0 / len(candidates),
        "n": n,
        "compete": compete,
        "classes": scored_classes,
        "templates": candidates,
        "no_counterpart": dict(sorted(left_out.items())),
        "per_class": per_class,
        "confusion": confusion,
    }


def template_similarity(micro_truth: dict, macro_truth: dict, size: int = SIZE) -> dict[str, dict[str, float]]:
    """Cosine between class means: micro class (mean of unit-norm fields) -> macro class -> cosine."""
    templates = macro_templates(macro_truth, size)
    clips, fields = aligned_fields(micro_truth, size)
    groups: dict[str, list[np.ndarray]] = {}
    for clip, field in zip(clips, fields):
        groups.setdefault(str(class_of(micro_truth, clip)), []).append(field)
    return {k: {m: round(cosine(np.mean(g, axis=0), t), 4) for m, t in templates.items()}
            for k, g in sorted(groups.items())}


# ---------------------------------------------------------------------------------------------
# command line

def main(argv=None) -> None:
    from mer_pipeline.synth.generate import synth_truth

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--micro", default="casme2", help="micro-expression layout [casme2]")
    parser.add_argument("--macro", default="ckplus", help="macro-expression layout [ckplus]")
    parser.add_argument("--preset", default="hard")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="generator seeds [0 1 2]")
    parser.add_argument("--gap", action=argparse.BooleanOptionalAction, default=None,
                        help="the realistic micro/macro gap on/off [default: the preset's]")
    parser.add_argument("--size", type=int, default=SIZE, help=f"aligned crop side [{SIZE}]")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    factors = {} if args.gap is None else {"gap": args.gap}
    results = []
    for seed in args.seeds:
        started = time.perf_counter()
        micro = synth_truth(args.micro, seed=seed, preset=args.preset, **factors)
        macro = synth_truth(args.macro, seed=seed, preset=args.preset, **factors)
        for compete in COMPETE:
            score = oracle_score(micro, macro, args.size, compete)
            score.update(seed=seed, seconds=round(time.perf_counter() - started, 1))
            results.append(score)
            own = ", ".join(f"{k} {m['own_cosine']:.2f}" for k, m in score["per_class"].items())
            print(f"seed {seed}, {compete} templates: accuracy {score['accuracy']:.3f}, UAR {score['uar']:.3f} "
                  f"(chance {score['chance']:.3f}, {score['n']} clips; left out {score['no_counterpart']}); "
                  f"own-template cosine {own}")
    for compete in COMPETE:
        accuracy = [r["accuracy"] for r in results if r["compete"] == compete]
        uar = [r["uar"] for r in results if r["compete"] == compete]
        print(f"{compete} templates, mean over {len(accuracy)} seeds: accuracy {np.mean(accuracy):.3f} "
              f"({min(accuracy):.3f}-{max(accuracy):.3f}), UAR {np.mean(uar):.3f} ({min(uar):.3f}-{max(uar):.3f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
