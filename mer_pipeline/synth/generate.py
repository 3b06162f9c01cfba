"""`generate()`: plan a dataset's raw tree, make its subjects, render every video, write the sheets
and `synth_truth.json`.

`synth_truth()` is the same planning without pixels: the truth document of a tree, for measurements
on the planted fields (benchmarks/template_oracle.py, benchmarks/stratify.py).

Determinism: every random draw comes from a numpy Generator seeded by (seed, dataset, stream, index);
frames are encoded by OpenCV with fixed parameters; the truth file has sorted keys and no
timestamps; xlsx files get fixed dates. The same arguments give byte-identical trees, whatever the
number of worker processes.
"""
from __future__ import annotations

import json
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..sample import subject_id
from . import aus, motion
from . import faces as facelib
from . import population as pop
from .errors import SynthError
from .layouts import LAYOUTS, get_layout
from .layouts._base import Clip, Layout, Video, schedule
from .presets import MACRO_FACTORS, Preset, effective_preset, factor_state, get_preset, with_factors

GENERATOR_VERSION = "1"  # the generator's version, recorded in every synth_truth.json
TRUTH_FILE = "synth_truth.json"  # written at the root of every synthetic tree: what was planted, per clip
TRUTH_SCHEMA = "mer-synth-truth/1"


def _rng(seed: int, *key) -> np.random.Generator:
    """A Generator for one stream: key parts are ints or strings (strings hashed with crc32)."""
    parts = [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key]
    return np.random.default_rng(np.random.SeedSequence(parts))


def generate(dataset: str, out: Path, *, subjects: int | None = None, clips_per_subject: int | None = None,
             seed: int = 0, quirks: bool = False, faces: Path | None = None, preset: str = "default",
             workers: int | None = None, overwrite: bool = False,
             progress: Callable[[int, int], None] | None = None, noise_floor: bool | None = None,
             imbalance: bool | None = None, traits: bool | None = None, confounders: bool | None = None,
             gap: bool | None = None, confounders_by: str | None = None) -> dict:
    """Write a synthetic raw tree of `dataset` in its real on-disk layout under `out`.

    Returns a summary: dataset, clips (truth entries), clips_on_disk, videos, frames, bytes, seconds,
    roots (paths written), truth (path of synth_truth.json), quirks (kinds planted).
    `workers`: processes that render videos (default: the CPU count for large trees, 1 for small
    ones; the bytes never depend on it). `overwrite`: replace the paths this layout writes if they
    exist (otherwise refuse). `progress(done, total)` is called with clips rendered so far / in all.
    `noise_floor`, `imbalance`, `traits`, `confounders`, `gap`: switch a difficulty factor of the
    preset on (True) or off (False), None keeps the preset's (`presets.with_factors`; micro-only
    factors leave a macro-expression tree as it is); `confounders_by`: "emotion" | "session".
    """
    started = time.perf_counter()
    layout = get_layout(dataset)
    tree = _plan_tree(layout, subjects, clips_per_subject, seed, quirks, faces, preset,
                      dict(noise_floor=noise_floor, imbalance=imbalance, traits=traits, confounders=confounders,
                           gap=gap, confounders_by=confounders_by))
    out = Path(out)
    _clear(out, layout, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for job in tree["jobs"]:
        job["root"] = str(out)

    n_frames = n_bytes = 0
    for written, size in _run_jobs(tree["jobs"], _auto_workers(workers, len(tree["jobs"])), progress):
        n_frames += written
        n_bytes += size
    plan = tree["plan"]
    for relative, content in sorted(plan.extra_files.items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        n_bytes += len(content)
    sheets = layout.write_annotations(out, plan)
    n_bytes += sum(p.stat().st_size for p in sheets)

    truth_path = out / TRUTH_FILE
    text = json.dumps(tree["truth"], sort_keys=True, indent=1)
    truth_path.write_text(text + "\n", encoding="utf-8")
    return {
        "dataset": layout.name,
        "out": out,
        "roots": [out / r for r in layout.roots],
        "truth": truth_path,
        "clips": len(tree["truth"]["clips"]),
        "clips_on_disk": sum(1 for e in tree["truth"]["clips"] if e["on_disk"]),
        "videos": len(plan.videos),
        "subjects": len(tree["truth"]["subjects"]),
        "frames": n_frames,
        "bytes": n_bytes,
        "seconds": round(time.perf_counter() - started, 2),
        "quirks": sorted({q["kind"] for q in plan.quirks}),
    }


def synth_truth(dataset: str, *, subjects: int | None = None, clips_per_subject: int | None = None, seed: int = 0,
                quirks: bool = False, faces: Path | None = None, preset: str = "default", **factors) -> dict:
    """The content of the synth_truth.json that `generate` with the same arguments writes, without
    rendering or writing anything (the subjects' faces are still made: their landmarks are in it).
    `factors`: the factor switches of `generate`. For measurements on planted fields, e.g.
    benchmarks/template_oracle.py."""
    layout = get_layout(dataset)
    switches = {k: factors.pop(k, None) for k in ("noise_floor", "imbalance", "traits", "confounders", "gap",
                                                  "confounders_by")}
    if factors:
        raise SynthError(f"unknown factor switch(es) {', '.join(sorted(factors))}; known: {', '.join(switches)}")
    return _plan_tree(layout, subjects, clips_per_subject, seed, quirks, faces, preset, switches)["truth"]


def _plan_tree(layout: Layout, subjects, clips_per_subject, seed: int, quirks: bool, faces, preset: str,
               switches: dict) -> dict:
    """Everything of a tree but its pixels: {plan, jobs (render jobs without root), truth (document)}."""
    dataset = layout.name
    if layout.kind == "macro":  # the micro-only factors never change a macro-expression tree
        switches = {"gap": switches.get("gap")}
    difficulty = effective_preset(with_factors(get_preset(preset), **switches), layout.kind)
    default_subjects, default_clips = _default_size(difficulty, layout)
    n_subjects = default_subjects if subjects is None else int(subjects)
    per_subject = default_clips if clips_per_subject is None else int(clips_per_subject)
    if n_subjects < 1 or per_subject < 1:
        raise SynthError("subjects and clips_per_subject must be at least 1")

    plan_rng = _rng(seed, dataset, "plan")
    names = layout.subject_names(plan_rng, n_subjects)
    if difficulty.population:  # imbalanced and uneven, in the table's proportions
        labels = pop.plan_labels(_rng(seed, dataset, "population"), layout, difficulty.population, n_subjects,
                                 per_subject)
    else:
        labels = schedule(plan_rng, n_subjects, per_subject, layout.classes, layout.rare)
    plan = layout.plan(plan_rng, names, labels, difficulty)
    manners = _manners(difficulty, layout, seed, names)
    _apply_gap(plan, layout, difficulty, manners, seed)
    _add_habits(plan, layout, manners)
    if quirks:
        layout.plant_quirks(_rng(seed, dataset, "quirks"), plan, difficulty)
        _apply_gap(plan, layout, difficulty, manners, seed)  # clips that quirks added (a folder without sheet row, ...)
        _add_habits(plan, layout, manners)
    _deal_sessions(plan, layout, difficulty, seed)

    photos = facelib.load_photos(faces)
    people = {  # a subject's identity depends on its name and the seed only, not on the tree's size
        name: facelib.make_subject(subject_id(layout.name, name), photos,
                                   _rng(seed, layout.identity_stream, "identity", subject_id(layout.name, name)),
                                   layout.frame_size, layout.face_width, layout.grey, difficulty.identity_strength)
        for name in sorted({c.subject for c in plan.clips()})
    }

    jobs, entries = [], []
    for video in plan.videos:
        cues = [_clip_cue(difficulty, manners, clip, _rng(seed, dataset, "cue", str(video.folder), clip.onset))
                for clip in video.clips]
        job, video_entries = _prepare_video(layout, difficulty, video, people[video.subject],
                                            _rng(seed, dataset, "video", str(video.folder)),
                                            manners.get(video.subject), cues)
        jobs.append(job)
        entries += video_entries
    for clip in plan.orphans:
        entries.append(_orphan_entry(layout, difficulty, clip, people[clip.subject],
                                     _rng(seed, dataset, "orphan", clip.subject, clip.clip),
                                     manners.get(clip.subject)))

    arguments = {"dataset": dataset, "subjects": n_subjects, "clips_per_subject": per_subject, "seed": seed,
                 "quirks": quirks, "faces": [p.name for p in photos] if faces else None, "preset": difficulty.name}
    truth = _truth_document(layout, difficulty, arguments, people, entries, plan.quirks, manners)
    return {"plan": plan, "jobs": jobs, "truth": truth}


def _truth_document(layout: Layout, preset: Preset, arguments: dict, people: dict, entries: list[dict],
                    quirks: list[dict], manners: dict) -> dict:
    """The content of synth_truth.json (schema in docs/synth.md)."""
    document = {
        "schema": TRUTH_SCHEMA,
        "generator": {"module": "mer_pipeline.synth", "version": GENERATOR_VERSION},
        "arguments": arguments,
        "dataset": layout.name,
        "layout": {"fps": layout.fps, "frame_size": list(layout.frame_size), "grey": layout.grey,
                   "kind": layout.kind, "image_format": layout.image_format, "roots": list(layout.roots)},
        "preset": _preset_dict(preset),
        "subjects": {subject_id(layout.name, name): {"subject": name, "landmarks": _round(s.landmarks, 3),
                                               "identity": _jsonable(s.identity)}
                     for name, s in sorted(people.items())},
        "clips": sorted(entries, key=lambda e: e["sample_id"]),
        "quirks": sorted(quirks, key=lambda q: (q["kind"], q.get("sample_id", q.get("path", "")))),
    }
    factors = factor_state(preset)
    if factors is not None:  # the factor switches (hard preset, or any switch given)
        if layout.kind == "macro":  # micro-only factors do not apply to a macro-expression tree: null
            factors = {k: (v if k in MACRO_FACTORS else None) for k, v in factors.items()}
        document["factors"] = factors
    for name, manner in manners.items():  # hard preset: traits and confounders per subject
        document["subjects"][subject_id(layout.name, name)].update(_jsonable(manner))
    if preset.population:
        counts: dict = {}
        for e in entries:
            counts.setdefault(e["subject"], {}).setdefault(e["emotion"], 0)
            counts[e["subject"]][e["emotion"]] += 1
        document["population"] = {"emotions_per_subject": counts,
                                  "class_weights": _jsonable(pop.class_weights(layout, preset.population.class_counts))}
    return document


def _clear(out: Path, layout: Layout, overwrite: bool) -> None:
    """Refuse to mix two trees in one folder; with `overwrite`, remove what this layout writes."""
    import shutil

    existing = [out / r for r in (*layout.roots, TRUTH_FILE) if (out / r).exists()]
    if existing and not overwrite:
        raise SynthError(f"{out} already holds {', '.join(p.name for p in existing)}; "
                         "use --overwrite (overwrite=True) to replace it, or choose another OUT")
    for path in existing:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _default_size(preset: Preset, layout: Layout) -> tuple[int, int]:
    """(subjects, clips per subject) when not given: the preset's size for this dataset, else the layout's."""
    for dataset, n_subjects, per_subject in preset.default_sizes or ():
        if dataset == layout.name:
            return n_subjects, per_subject
    return layout.default_subjects, layout.default_clips


def _manners(preset: Preset, layout: Layout, seed: int, names: list[str]) -> dict[str, dict]:
    """Per subject {traits, confounders, dropped_aus} when the preset has them (hard), else {}. A
    subject's manner depends on the seed, the dataset and its name only."""
    dropout = preset.gap is not None and layout.kind == "micro"
    if not (preset.traits or preset.confounders or dropout):
        return {}
    if preset.confounders and preset.confounders.by == "session":
        keys = pop.session_names(preset.confounders)
    else:
        keys = (*layout.classes, *layout.rare)
    manners = {}
    for name in names:
        manner = {}
        if preset.traits:
            manner["traits"] = pop.draw_traits(_rng(seed, layout.name, "traits", name), preset.traits)
        if preset.confounders:
            manner["confounders"] = pop.draw_confounders(_rng(seed, layout.name, "confounders", name),
                                                         preset.confounders, keys)
        if dropout:
            manner["dropped_aus"] = pop.draw_dropout(_rng(seed, layout.name, "dropout", name), preset.gap)
        manners[name] = manner
    return manners


def _recode(layout: Layout, clip: Clip, tokens: tuple[str, ...]) -> None:
    """Set a clip's planted AUs and the sheet's AU cell with them (a coder codes what moves), in the
    cell's notation: the layout's (`Layout.au_cell`), or MMEW's side-after-number '4+12R' when the
    cell was written so."""
    old = aus.au_label(clip.aus)
    clip.aus = tuple(tokens)
    cell = clip.annotated.get("action_units") if clip.annotated else None
    if cell is None:
        return
    if cell != old and cell == _side_after(old):
        clip.annotated["action_units"] = _side_after(aus.au_label(tokens))
    else:
        clip.annotated["action_units"] = layout.au_cell(tokens)


def _side_after(label: str) -> str:
    return "+".join(f"{aus.parse_au(t)[0]}{aus.parse_au(t)[1]}" for t in label.split("+"))


def _apply_gap(plan, layout: Layout, preset: Preset, manners: dict, seed: int) -> None:
    """The micro/macro gap (`presets.Gap`): a macro clip shows its emotion's posed AU set
    (`aus.MACRO_AUS`), a micro clip a spontaneous subset (`aus.spontaneous_aus`) without the AUs its
    subject never shows. Each clip draws from a stream of its own (the plan's draws, labels and
    timing, are those of the same tree without the gap); idempotent, for clips that quirks add."""
    if preset.gap is None:
        return
    for clip in plan.clips():
        if clip.expression is not None:
            continue
        rng = _rng(seed, layout.name, "gap", layout.sample_id(clip))
        if layout.kind == "macro":
            options = aus.MACRO_AUS.get(clip.prototype, aus.EMOTION_AUS[clip.prototype])
            tokens, clip.expression = tuple(options[int(rng.integers(len(options)))]), "posed"
        else:
            dropped = set(manners.get(clip.subject, {}).get("dropped_aus", ()))
            tokens = aus.spontaneous_aus(rng, clip.prototype, dropped, preset.gap.unilateral,
                                          preset.gap.off_prototype)
            clip.expression = "spontaneous"
        _recode(layout, clip, tokens)


def _add_habits(plan, layout: Layout, manners: dict) -> None:
    """Give every clip its subject's habitual AU (in `aus`, hence in the sheet: a coder codes what
    moves); idempotent, so that clips added by quirks get it too."""
    for clip in plan.clips():
        traits = manners.get(clip.subject, {}).get("traits")
        if traits is None or clip.habit is not None:
            continue
        tokens = pop.add_habit(clip.aus, traits["habitual_au"])
        if tokens == tuple(clip.aus):
            continue  # the habit's AU is part of this emotion already
        _recode(layout, clip, tokens)
        clip.habit = traits["habitual_au"]


def _deal_sessions(plan, layout: Layout, preset: Preset, seed: int) -> None:
    """With confounders by session: every clip's recording session, dealt per subject at random."""
    if layout.kind != "micro" or not preset.confounders or preset.confounders.by != "session":
        return
    by_subject: dict[str, list[Clip]] = {}
    for clip in plan.clips():
        by_subject.setdefault(clip.subject, []).append(clip)
    for subject, clips in sorted(by_subject.items()):
        ids = {layout.sample_id(c): c for c in clips}
        for sid, session in pop.deal_sessions(_rng(seed, layout.name, "sessions", subject), list(ids),
                                              preset.confounders).items():
            ids[sid].session = session


def _clip_cue(preset: Preset, manners: dict, clip: Clip, rng: np.random.Generator) -> dict | None:
    confounders = manners.get(clip.subject, {}).get("confounders")
    if confounders is None:
        return None
    key = clip.session if preset.confounders.by == "session" else clip.label
    return pop.clip_cue(rng, confounders, key, preset.confounders.jitter)


def _auto_workers(workers: int | None, n_videos: int) -> int:
    if workers is not None:
        return max(1, int(workers))
    if n_videos < 24:  # process start-up would cost more than it saves
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


# ---------------------------------------------------------------------------------------------
# per video

def _prepare_video(layout: Layout, preset: Preset, video: Video, subject: facelib.Subject,
                   rng: np.random.Generator, manner: dict | None = None, cues: list | None = None):
    """Draw the video's nuisances and every clip's field; return (render job, truth entries).
    `manner`: the subject's traits/confounders (hard preset); `cues`: per clip, its confounder."""
    h, w = subject.base.shape[:2]
    single = len(video.clips) == 1
    head = motion.draw_head_motion(rng, subject.landmarks[30], layout.fps, preset.head_translation,
                                   preset.head_rotation_deg, origin=video.clips[0].onset if single else None)
    cues = cues or [None] * len(video.clips)
    for clip, cue in zip(video.clips, cues):
        if cue and "head" in cue:
            motion.add_pulse(head, clip.onset, clip.apex, clip.offset, **cue["head"])
    noise_sigma = round(float(rng.uniform(*preset.noise_sigma)), 3)
    quality = int(rng.integers(preset.jpeg_quality[0], preset.jpeg_quality[1] + 1))
    traits = (manner or {}).get("traits")
    expressions, entries = [], []
    for clip, cue in zip(video.clips, cues):
        bumps = _clip_bumps(layout, preset, clip, subject, rng, traits)
        light = _light(cue, subject)
        expressions.append(motion.Expression(clip.onset, clip.apex, clip.offset, bumps, light))
        entry = _entry(layout, clip, video, subject, bumps, head, noise_sigma, quality)
        if manner is not None:
            entry.update(habit=clip.habit, confounder=None if cue is None else {**cue, **({"light": light}
                                                                                           if light else {})})
        _gap_fields(entry, clip, preset)
        entries.append(entry)
    job = {
        "video": video, "base": subject.base, "weight": subject.motion_weight, "head": head,
        "expressions": expressions,
        "noise_sigma": noise_sigma, "quality": quality, "seed": int(rng.integers(2**63)),
        "layout": layout.name, "files": [(n, str(layout.frame_file(video, n))) for n in video.frames
                                         if n not in video.missing],
    }
    return job, entries


def _gap_fields(entry: dict, clip: Clip, preset: Preset) -> None:
    """Truth fields of the gap and of session confounders, only in trees that have them."""
    if clip.expression is not None:
        entry["expression"] = clip.expression
    if preset.confounders is not None and preset.confounders.by == "session":
        entry["session"] = clip.session


def _clip_bumps(layout, preset, clip: Clip, subject, rng, traits: dict | None = None) -> list[dict]:
    shape = subject.base.shape[:2]
    style = {}
    if preset.gap is not None:  # posed: strong and symmetric; spontaneous: weak to strong, sides differ
        style = (dict(intensity=preset.gap.macro_intensity, symmetric=True) if layout.kind == "macro"
                 else dict(intensity=preset.gap.micro_intensity))
    raw = aus.bumps_for(clip.aus, subject.landmarks.astype(np.float64), rng, **style)
    if layout.kind == "macro":
        amplitude = rng.uniform(*preset.macro_amplitude)
        raw = [{**b, "sigma": b["sigma"] * 1.5} for b in raw]  # macro movements spread wider
    elif preset.micro_amplitude_spacing == "log":  # as many clips at 0.15-0.5 px as at 0.5-2 px
        amplitude = float(np.exp(rng.uniform(*np.log(preset.micro_amplitude))))
    else:
        amplitude = rng.uniform(*preset.micro_amplitude)
    if traits is not None:
        raw = pop.apply_traits(raw, traits, clip.habit)
        amplitude *= traits["amplitude_scale"]
    bumps = aus.scale_bumps(raw, amplitude, shape)
    slope = motion.max_gradient(bumps, shape)
    if slope > 0.45:  # keep the warp smooth and invertible (no folds): shrink rather than tear
        bumps = aus.scale_bumps(raw, amplitude * 0.45 / slope, shape)
    return bumps


def _entry(layout, clip: Clip, video: Video | None, subject, bumps, head, noise_sigma, quality) -> dict:
    onset_m = motion.head_matrix(head, clip.onset)
    apex_m = motion.head_matrix(head, clip.apex)
    truth_bumps = aus.transform_bumps(bumps, onset_m)  # onset-frame coordinates
    shape = subject.base.shape[:2]
    amplitude = float(np.sqrt((aus.field_on_grid(truth_bumps, shape) ** 2).sum(axis=0)).max())
    frames = [n for n in (video.frames if video else []) if clip.onset - 20 <= n <= clip.offset + 20]
    poses = [motion.head_pose(head, n) for n in frames]
    return {
        "sample_id": layout.sample_id(clip),
        "dataset": layout.name,
        "subject": clip.subject,
        "clip": clip.clip,
        "kind": layout.kind,
        "fps": layout.fps,
        "frame_size": list(layout.frame_size),
        "emotion": clip.label,
        "prototype": clip.prototype,
        "action_units": aus.au_label(clip.aus),
        "au_tokens": list(clip.aus),
        "objective_class": aus.objective_class(clip.aus),
        "onset": clip.onset,
        "apex": clip.apex,
        "offset": clip.offset,
        "annotated": clip.annotated,
        "on_disk": clip.on_disk,
        "folder": str(video.folder) if video else None,
        "frames": [video.frames[0], video.frames[-1]] if video else None,
        "missing_frames": list(video.missing) if video else [],
        "quirks": list(clip.quirks),
        "extra": _jsonable(clip.extra),
        "amplitude": round(amplitude, 4),
        "field": {"model": "d(x) = sum_k (u_k, v_k) * exp(-|x - (x_k, y_k)|^2 / (2 sigma_k^2)), "
                           "0 where |x - (x_k, y_k)| >= truncate * sigma_k; raw px, onset-frame coordinates",
                  "truncate": aus.TRUNCATE, "bumps": truth_bumps},
        "head": {
            **head,
            "onset_transform": _round(onset_m, 6),  # subject landmarks (base) -> this onset frame
            "apex_transform": _round(motion.relative_transform(onset_m, apex_m), 6),  # onset -> apex frame
            "per_frame": {"frame": frames, "tx": [round(p[0], 4) for p in poses],
                          "ty": [round(p[1], 4) for p in poses], "roll_deg": [round(p[2], 5) for p in poses]},
        },
        "noise_sigma": noise_sigma,
        "jpeg_quality": quality if layout.image_format == "jpg" else None,
    }


def _orphan_entry(layout, preset, clip: Clip, subject, rng, manner: dict | None = None) -> dict:
    """Truth for a sheet row whose folder is absent: nothing is rendered, the field is still known."""
    bumps = _clip_bumps(layout, preset, clip, subject, rng, (manner or {}).get("traits"))
    head = motion.draw_head_motion(rng, subject.landmarks[30], layout.fps, (0.0, 0.0), (0.0, 0.0), clip.onset)
    entry = _entry(layout, clip, None, subject, bumps, head, 0.0, None)
    if manner is not None:
        entry.update(habit=clip.habit, confounder=None)
    _gap_fields(entry, clip, preset)
    return entry


def _light(cue: dict | None, subject) -> dict | None:
    """A clip's lighting confounder, placed on the subject's face (centre: nose tip; width: jaw)."""
    if not cue or "light" not in cue:
        return None
    lm = subject.landmarks.astype(np.float64)
    return {**cue["light"], "centre": _round(lm[30], 3), "width": round(float(np.linalg.norm(lm[16] - lm[0])), 3),
            "model": "gain(x, y, frame) = 1 + profile(frame) * strength * clip(((x, y) - centre) . "
                     "(cos angle, sin angle) / width, -1, 1), on the whole frame"}


# ---------------------------------------------------------------------------------------------
# rendering (possibly in worker processes)

_OUT: Path | None = None


def _run_jobs(jobs, workers, progress):
    """Render every job, here or in `workers` processes; yields (frames, bytes) per video, in order."""
    total = sum(len(job["expressions"]) for job in jobs)
    done = 0
    if workers == 1:
        results = map(render_video_job, jobs)
    else:
        import multiprocessing

        pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker)
        results = pool.map(render_video_job, jobs)
    try:
        for job, result in zip(jobs, results):
            done += len(job["expressions"])
            if progress:
                progress(done, total)
            yield result
    finally:
        if workers != 1:
            pool.shutdown(cancel_futures=True)


def _init_worker():
    cv2.setNumThreads(1)


@lru_cache(maxsize=4)
def _noise_bank(shape: tuple[int, ...], seed: int) -> motion.NoiseBank:
    return motion.NoiseBank(shape, _rng(seed, "noise-bank"))


def render_video_job(job: dict) -> tuple[int, int]:
    """Render and write one video's frames; returns (frames written, bytes written)."""
    layout = LAYOUTS[job["layout"]]
    rng = np.random.default_rng(job["seed"])
    bank = _noise_bank(job["base"].shape, 0)
    renderer = motion.Renderer(job["base"], job["weight"], job["head"], job["expressions"],
                               bank.for_sigma(job["noise_sigma"]), rng, bank)
    ext, params = layout.encode_params(job["quality"])
    folder = Path(job["root"]) / job["video"].folder
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    for number, relative in job["files"]:
        ok, buf = cv2.imencode(ext, renderer.noisy(number), params)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {relative}")
        (Path(job["root"]) / relative).write_bytes(buf.tobytes())
        size += buf.size
    return len(job["files"]), size


# ---------------------------------------------------------------------------------------------
# JSON helpers

def _round(a, digits):
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return round(float(value), 6)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def _preset_dict(preset: Preset) -> dict:
    """The preset's fields; knobs that are off (None) are left out, so that presets without them
    write the same truth file as before those knobs existed."""
    from dataclasses import asdict

    return _jsonable({k: v for k, v in asdict(preset).items() if v is not None})
