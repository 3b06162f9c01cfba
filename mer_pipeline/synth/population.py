"""The people of a hard synthetic set: who shows which emotion how often, how each person expresses,
and which cues go with a label inside one person only.

Three parts, each a preset knob (`presets.Population`, `Traits`, `Confounders`; off in `easy` and
`default`), each drawn here by pure functions of a numpy Generator:

- `plan_labels`: the labels of every subject. Overall class proportions follow a table (CASME II's);
  clips per subject are uneven (gamma-distributed, at least one); each subject has its own emotion
  mix (a Dirichlet draw), so some subjects show mostly one emotion and a few clips in all.
- `draw_traits`: per subject an amplitude scale, a weaker side of the face, and a habitual AU that
  this subject adds to every expression. A model that memorises people learns these and fails on
  new people.
- `draw_confounders` / `clip_cue`: per (subject, emotion) a lighting-gradient change and/or a head
  nudge that rise and fall with the expression. Inside a subject the cue predicts the label; its
  direction is drawn anew for every subject, so across subjects it predicts nothing (the
  "superficial connection" a model must not learn).

With `Confounders.by = "session"` a cue goes with a (subject, recording session) instead: a subject's
clips are dealt to 2-4 sessions at random (`deal_sessions`), whatever their label, so inside a
subject the cue predicts the session and not the emotion, and clusters of cues are not label-pure.
The micro/macro gap (`presets.Gap`) adds a per-subject AU dropout (`draw_dropout`).

`generate()` applies them and records every value in synth_truth.json.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import aus
from .presets import Confounders, Gap, Population, Traits

CUE_KINDS = ("light", "head", "both")


# ---------------------------------------------------------------------------------------------
# labels

def class_weights(layout, counts: Sequence[tuple[str, int]]) -> dict[str, float]:
    """Relative frequency of each label of `layout` from a table keyed by prototype emotion.

    A label weighs the sum of its prototypes' counts (SMIC `negative` = disgust + sadness + ...);
    a label with no prototype in the table weighs the table's median. Rare labels of the layout
    never weigh more than a third of its least frequent regular class, so they stay rare.
    """
    table = dict(counts)
    median = float(np.median(list(table.values())))

    def weight(label):
        found = [table[p] for p in layout.prototype_options(label) if p in table]
        return float(sum(found)) if found else median

    weights = {label: weight(label) for label in layout.classes}
    floor = min(weights.values()) / 3
    weights.update({label: min(weight(label), floor) for label in layout.rare if label not in weights})
    return weights


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder; ties go to the earlier weight)."""
    w = np.asarray(weights, dtype=np.float64)
    quota = total * w / w.sum()
    counts = np.floor(quota).astype(int)
    remainder = quota - counts
    for i in sorted(range(len(w)), key=lambda i: (-remainder[i], i))[: total - int(counts.sum())]:
        counts[i] += 1
    return [int(c) for c in counts]


def subject_sizes(rng: np.random.Generator, n_subjects: int, total: int, cv: float) -> list[int]:
    """Clips per subject: `total` in all, at least one each, gamma-distributed with this coefficient
    of variation (CASME II: 2 to ~35 clips per subject, cv ~0.75)."""
    if total < n_subjects:
        raise ValueError(f"{total} clips cannot give {n_subjects} subjects one clip each")
    weights = rng.gamma(1.0 / cv**2, size=n_subjects) if cv > 0 else np.ones(n_subjects)
    return [1 + k for k in apportion(total - n_subjects, weights)]


def deal_labels(rng: np.random.Generator, sizes: Sequence[int], counts: dict[str, int],
                concentration: float) -> list[list[str]]:
    """Fill each subject's `sizes[s]` slots so that label k is used exactly `counts[k]` times overall,
    each subject favouring the labels of its own Dirichlet(`concentration`) mix."""
    labels = list(counts)
    remaining = np.array([counts[k] for k in labels], dtype=np.float64)
    affinity = rng.dirichlet(np.full(len(labels), concentration), size=len(sizes))  # (S, K)
    rows: list[list[str]] = [[] for _ in sizes]
    slots = np.repeat(np.arange(len(sizes)), sizes)
    for s in slots[rng.permutation(len(slots))]:  # random order: no subject is left the leftovers
        p = remaining * affinity[s]
        if p.sum() <= 0:  # the subject's favourites are used up
            p = remaining.copy()
        k = int(rng.choice(len(labels), p=p / p.sum()))
        remaining[k] -= 1
        rows[s].append(labels[k])
    return rows


def plan_labels(rng: np.random.Generator, layout, population: Population, n_subjects: int,
                clips_per_subject: int) -> list[list[str]]:
    """Labels per subject: n_subjects * clips_per_subject clips in the table's proportions, uneven
    in number and emotion per subject."""
    total = n_subjects * clips_per_subject
    weights = class_weights(layout, population.class_counts)
    counts = dict(zip(weights, apportion(total, list(weights.values()))))
    sizes = subject_sizes(rng, n_subjects, total, population.clips_cv)
    return deal_labels(rng, sizes, counts, population.emotion_concentration)


# ---------------------------------------------------------------------------------------------
# traits

def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_traits(rng: np.random.Generator, traits: Traits) -> dict:
    """One subject's way of expressing (stored in the truth file as `subjects[...]["traits"]`)."""
    return {
        "amplitude_scale": round(_log_uniform(rng, traits.amplitude_scale), 4),
        "weak_side": "RL"[int(rng.integers(2))],  # FACS side: R = image left
        "asymmetry": round(float(rng.uniform(*traits.asymmetry)), 4),  # weak side moves (1 - a) as much
        "habitual_au": str(traits.habitual_aus[int(rng.integers(len(traits.habitual_aus)))]),
        "habit_strength": round(float(rng.uniform(*traits.habit_strength)), 4),
    }


def add_habit(tokens: tuple[str, ...], habit: str) -> tuple[str, ...]:
    """The clip's AUs with the subject's habitual AU, unless that AU already moves."""
    if aus.parse_au(habit)[0] in {aus.parse_au(t)[0] for t in tokens}:
        return tuple(tokens)
    return tuple(sorted((*tokens, habit), key=lambda t: (aus.parse_au(t)[0], t)))


def apply_traits(bumps: list[dict], traits: dict, habit: str | None) -> list[dict]:
    """Unscaled AU bumps as this subject makes them: the habitual AU (`habit`, if the clip got it)
    at its strength, the weak side weaker. (The amplitude scale multiplies the clip's amplitude.)"""
    habit_au = aus.parse_au(habit)[0] if habit else None
    out = []
    for b in bumps:
        gain = traits["habit_strength"] if b["au"] == habit_au else 1.0
        if b["side"] == traits["weak_side"]:
            gain *= 1.0 - traits["asymmetry"]
        out.append({**b, "u": b["u"] * gain, "v": b["v"] * gain})
    return out


# ---------------------------------------------------------------------------------------------
# confounders

def draw_confounders(rng: np.random.Generator, confounders: Confounders, labels: Sequence[str]) -> dict:
    """One subject's label cues: {kind: none|light|head|both, cues: {label: {light?, head?}}}.

    Every value is drawn for every label whatever the outcome, so a subject's cues depend on the
    seed and its name only."""
    confounded = bool(rng.random() < confounders.fraction)
    kind = CUE_KINDS[int(rng.integers(len(CUE_KINDS)))]
    cues = {}
    for label in sorted(labels):
        light = {"angle_deg": round(float(rng.uniform(0, 360)), 3),
                 "strength": round(float(rng.uniform(*confounders.light)), 4)}
        shift, angle = float(rng.uniform(*confounders.head_shift)), float(rng.uniform(0, 2 * np.pi))
        roll = float(rng.uniform(*confounders.head_roll_deg)) * (1 if rng.random() < 0.5 else -1)
        head = {"tx": round(shift * np.cos(angle), 4), "ty": round(shift * np.sin(angle), 4),
                "roll_deg": round(roll, 5)}
        cues[label] = {**({"light": light} if kind != "head" else {}), **({"head": head} if kind != "light" else {})}
    if not confounded:
        return {"kind": "none", "cues": {}}
    return {"kind": kind, "cues": cues}


def clip_cue(rng: np.random.Generator, subject_cues: dict, label: str, jitter: float) -> dict | None:
    """The cue one clip shows: its (subject, emotion) cue with magnitudes varied by +-`jitter`
    (relative) and directions by +-`jitter` * 60 degrees; None for a subject without cues."""
    cue = subject_cues["cues"].get(label)
    if not cue:
        return None
    out = {}
    if "light" in cue:
        out["light"] = {
            "angle_deg": round((cue["light"]["angle_deg"] + jitter * 60 * rng.uniform(-1, 1)) % 360, 3),
            "strength": round(cue["light"]["strength"] * (1 + jitter * rng.uniform(-1, 1)), 4),
        }
    if "head" in cue:
        h = cue["head"]
        turn = np.radians(jitter * 60 * rng.uniform(-1, 1))
        gain = 1 + jitter * rng.uniform(-1, 1)
        c, s = np.cos(turn), np.sin(turn)
        out["head"] = {"tx": round(gain * (c * h["tx"] - s * h["ty"]), 4),
                       "ty": round(gain * (s * h["tx"] + c * h["ty"]), 4),
                       "roll_deg": round(h["roll_deg"] * (1 + jitter * rng.uniform(-1, 1)), 5)}
    return out


def session_names(confounders: Confounders) -> tuple[str, ...]:
    """The session keys a subject's cues are drawn for (as many as the most sessions a subject has)."""
    return tuple(f"session{k}" for k in range(1, confounders.sessions[1] + 1))


def deal_sessions(rng: np.random.Generator, clip_ids: Sequence[str], confounders: Confounders) -> dict[str, str]:
    """One subject's clips (ids) -> recording session: 2-4 sessions (never more than clips), each clip
    in one at random, independently of its label."""
    lo, hi = confounders.sessions
    n = min(int(rng.integers(lo, hi + 1)), max(len(clip_ids), 1))
    picks = rng.integers(n, size=len(clip_ids))
    return {cid: f"session{int(k) + 1}" for cid, k in zip(sorted(clip_ids), picks)}


# ---------------------------------------------------------------------------------------------
# the micro/macro gap

def draw_dropout(rng: np.random.Generator, gap: Gap) -> list[int]:
    """The AU numbers one subject never shows in a micro-expression (each with probability
    `gap.subject_dropout`; one draw per AU of the catalogue, so the result depends on the seed and
    the subject's name only)."""
    numbers = sorted(aus.AU_CATALOGUE)
    draws = rng.random(len(numbers))
    return [n for n, r in zip(numbers, draws) if r < gap.subject_dropout]
