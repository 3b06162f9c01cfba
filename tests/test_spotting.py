"""Spotting in long videos: the peak rule on planted signals, the synthetic long-video layouts and
their truth, and end to end (synthetic long video -> mer-prep spot with dlib and real flow ->
intervals.csv + shards -> mer-prep spot-eval)."""
import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from mer_pipeline.cli import _add_synth, cli
from mer_pipeline.spotting import LongVideo, SpotConfig, find_intervals, find_long_videos
from mer_pipeline.spotting.spot import REGIONS, Signals
from mer_pipeline.synth.long import generate_long, small_spec

NAMES = list(REGIONS)
FPS = 30.0


def _signals(events, frames=600, seed=0):
    """Region magnitudes at the two default scales (k = 6 and 18 frames at 30 fps): noise, plus a
    Gaussian bump of `height` px in the listed regions at each planted frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)
    regions = {}
    for k in (6, 18):
        values = 0.05 + 0.01 * rng.standard_normal((frames, len(NAMES)))
        for centre, names, height, width in events:
            for name in names:
                values[:, NAMES.index(name)] += height * np.exp(-0.5 * ((t - centre) / width) ** 2)
        regions[k] = values.astype(np.float32)
    return Signals(t, 1, regions, FPS)


def _video(frames=600):
    return LongVideo("videos", "v", "v", FPS, None, {n: None for n in range(frames)})


def test_a_brief_movement_is_a_micro_interval_around_its_peak():
    signals = _signals([(100, ("brow_right", "brow_left", "nose"), 0.5, 2.0)])
    found = find_intervals(_video(), signals, SpotConfig())
    assert len(found) == 1
    interval = found[0]
    assert interval.kind == "micro" and interval.apex == 100
    assert interval.onset < 100 < interval.offset and interval.offset - interval.onset + 1 <= 15


def test_a_long_movement_is_macro():
    signals = _signals([(300, ("mouth", "cheek_right", "cheek_left"), 0.5, 10.0)])
    found = find_intervals(_video(), signals, SpotConfig())
    assert [i.kind for i in found] == ["macro"]
    assert found[0].onset < 300 < found[0].offset and found[0].offset - found[0].onset + 1 > 15


def test_blinks_and_talking_are_not_reported_but_an_isolated_mouth_movement_is():
    events = [(100, ("eye_right", "eye_left"), 0.8, 1.5)]  # a blink
    events += [(200 + 9 * n, ("mouth", "chin"), 0.5, 1.5) for n in range(6)]  # syllables
    events += [(450, ("mouth",), 0.5, 2.0)]  # one mouth movement, alone
    found = find_intervals(_video(), _signals(events), SpotConfig())
    assert [i.apex for i in found] == [450]


def test_noise_alone_gives_nothing_and_the_floor_is_what_decides():
    signals = _signals([])
    assert find_intervals(_video(), signals, SpotConfig()) == []
    weak = _signals([(100, ("brow_right", "brow_left", "nose"), 0.05, 2.0)])  # 5 noise sd, below the default 6
    assert find_intervals(_video(), weak, SpotConfig()) == []
    found = find_intervals(_video(), weak, replace(SpotConfig(), min_score=4.0))
    assert len(found) == 1 and abs(found[0].apex - 100) <= 1


@pytest.fixture(scope="module")
def cas2_long(tmp_path_factory):
    out = tmp_path_factory.mktemp("cas2-long")
    spec = small_spec(videos=1, seconds=14.0, micro_per_video=2, macro_per_video=1, talking_s=(1.5, 2.0),
                      macro_duration_s=(0.8, 1.5))
    summary = generate_long("cas2", out, seed=3, spec=spec)
    return out, summary


def test_synthetic_cas2_long_videos_carry_their_truth_in_the_real_sheet(cas2_long):
    out, summary = cas2_long
    truth = json.loads(summary["truth"].read_text())
    planted = [e for v in truth["videos"] for e in v["expressions"]]
    assert summary["videos"] == 2 and summary["micro"] == 2 and summary["macro"] == 1
    videos = {v.name: v for v in find_long_videos("cas2", out)}
    assert sorted(videos) == sorted(v["video"] for v in truth["videos"])
    from_sheet = sorted((t.video, t.onset, t.apex, t.offset, t.kind) for v in videos.values() for t in v.truth)
    assert from_sheet == sorted((v["video"], e["onset"], e["apex"], e["offset"], e["kind"])
                                for v in truth["videos"] for e in v["expressions"])
    assert len(from_sheet) == len(planted)
    quiet = [v for v in truth["videos"] if not v["expressions"]]
    assert len(quiet) == 1
    assert {d["kind"] for d in quiet[0]["distractors"]} >= {"blink", "talking", "head_turn", "light"}
    assert not videos[quiet[0]["video"]].truth
    for video in videos.values():  # frames numbered from 1 in every video, as CAS(ME)^2 numbers them
        assert video.numbers[0] == 1 and len(video.numbers) == 420


def test_the_clip_adapter_reads_the_long_sheet_too(cas2_long):
    from mer_pipeline.datasets import get_adapter

    out, summary = cas2_long
    micro = get_adapter("cas2").scan(out)
    macro = get_adapter("cas2").scan(out, macro=True)
    assert len(micro.samples) == summary["micro"] and len(macro.samples) == summary["macro"]
    assert not micro.failures and not macro.failures


def test_synth_long_refuses_a_dataset_without_a_long_layout(tmp_path):
    _add_synth()
    result = CliRunner().invoke(cli, ["synth", "casme2", str(tmp_path / "x"), "--long"])
    assert result.exit_code != 0 and "--long is available for cas2, videos" in result.output


def test_spot_refuses_an_unknown_dataset(tmp_path):
    result = CliRunner().invoke(cli, ["spot", "casme2", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code == 2 and "'videos', 'cas2', 'samm-lv'" in result.output


def test_videos_source_needs_a_frame_rate_for_frame_folders(tmp_path):
    import cv2

    folder = tmp_path / "raw" / "take1"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "img001.png"), np.zeros((8, 8), np.uint8))
    from mer_pipeline.errors import DatasetLayoutError

    with pytest.raises(DatasetLayoutError, match="--fps"):
        find_long_videos("videos", tmp_path / "raw")
    assert find_long_videos("videos", tmp_path / "raw", fps=25)[0].fps == 25


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_end_to_end_synth_spot_shards_eval(cas2_long, tmp_path):
    """Real dlib, real DIS scan and TV-L1 shards, on a local Dask cluster and in-process; the planted
    expressions are found, the distractor-only video stays almost quiet, and every interval becomes
    a shard sample."""
    from mer_pipeline.shards import open_shards

    raw, summary = cas2_long
    out = tmp_path / "spot"
    runner = CliRunner()
    result = runner.invoke(cli, ["spot", "cas2", str(raw), str(out), "-q"])
    assert result.exit_code == 0, result.output
    intervals = _rows(out / "intervals.csv")
    assert list(intervals[0]) == ["video", "onset", "apex", "offset", "kind", "score", "sample_id"]
    shards = open_shards(out)
    assert sorted(shards.meta["sample_id"]) == sorted(r["sample_id"] for r in intervals)
    prep = shards.manifest["config"]["prep"]  # what readers check before they label the samples
    assert (prep["size"], prep["flow"], prep["backend"], prep["stabilize"]) == (128, "tvl1", "dlib", True)
    assert set(shards.meta["emotion"]) == {""} and set(shards.meta["apex_source"]) == {"spotted"}
    assert shards.arrays["flow"].shape[1:] == (2, 128, 128) and np.isfinite(shards.arrays["flow"]).all()
    by_id = {r["sample_id"]: r for r in intervals}
    for i, sample_id in enumerate(shards.meta["sample_id"]):
        row = by_id[sample_id]
        assert (shards.meta["onset_frame"][i], shards.meta["apex_frame"][i], shards.meta["kind"][i]) == (
            int(row["onset"]), int(row["apex"]), row["kind"])

    # the two videos ran as Dask tasks (one per video); in this process the bytes are the same
    here = tmp_path / "spot-here"
    result = runner.invoke(cli, ["spot", "cas2", str(raw), str(here), "-q", "--scheduler", "synchronous"])
    assert result.exit_code == 0, result.output
    assert (here / "intervals.csv").read_text() == (out / "intervals.csv").read_text()
    assert [s["sha256"] for s in json.loads((here / "manifest.json").read_text())["shards"]] == [
        s["sha256"] for s in json.loads((out / "manifest.json").read_text())["shards"]]

    result = runner.invoke(cli, ["spot-eval", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "spotting_metrics.json").read_text())
    overall = metrics["counts"]["overall"]
    assert overall["tp"] >= 2, metrics["counts"]  # of the 3 planted expressions
    assert metrics["distractor_only"]["false_positives"] <= 2, metrics["per_video"]
    tp, fp, fn = overall["tp"], overall["fp"], overall["fn"]
    assert metrics["f1_overall"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_samm_long_videos_layout_and_sheet(tmp_path):
    """SAMM_longvideos/006_1/006_1_0001.jpg + SAMM_LongVideos_V3_Release.xlsx (notes above the header)."""
    import cv2
    import openpyxl

    root = tmp_path / "SAMMLV"
    for video in ("006_1", "007_3"):
        folder = root / "SAMM_longvideos" / video
        folder.mkdir(parents=True)
        for n in range(1, 6):
            cv2.imwrite(str(folder / f"{video}_{n:04d}.jpg"), np.full((8, 8), 128, np.uint8))
    book = openpyxl.Workbook()
    sheet = book.active
    for n in range(9):
        sheet.append([f"note {n}"])
    sheet.append(["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"])
    sheet.append(["006", "006_1_1", 1, 2, 3, 4, 3, "Micro - 1/2", "R12", ""])
    sheet.append(["006", "006_1_2", 1, 1, 3, 5, 5, "Macro", "12", ""])
    sheet.append(["007", "007_3_1", 3, 2, "-", 3, 2, "Micro - 1/2", "4", ""])
    sheet.append(["009", "009_1_1", 3, 2, 3, 4, 2, "Macro", "4", ""])  # a video that is not on disk
    book.save(root / "SAMM_LongVideos_V3_Release.xlsx")
    videos = {v.name: v for v in find_long_videos("samm-lv", root)}
    assert sorted(videos) == ["006_1", "007_3"]
    first = videos["006_1"]
    assert (first.fps, first.subject, first.numbers) == (200.0, "006", [1, 2, 3, 4, 5])
    assert sorted((t.onset, t.apex, t.offset, t.kind) for t in first.truth) == [(1, 3, 5, "macro"), (2, 3, 4, "micro")]
    assert [(t.onset, t.apex, t.offset) for t in videos["007_3"].truth] == [(2, None, 3)]


def test_videos_source_reads_video_files_from_frame_0_with_their_truth(tmp_path):
    import cv2

    raw = tmp_path / "raw"
    (raw / "videos").mkdir(parents=True)
    writer = cv2.VideoWriter(str(raw / "videos" / "take1.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    for n in range(20):
        writer.write(np.full((48, 64, 3), 10 * n, np.uint8))
    writer.release()
    (raw / "spot_truth.csv").write_text("video,onset,apex,offset,kind\ntake1,3,5,8,micro\nother,1,2,3,macro\n")
    (video,) = find_long_videos("videos", raw)
    assert (video.name, video.fps, video.numbers[0], len(video.numbers)) == ("take1", 25.0, 0, 20)
    assert [(t.onset, t.apex, t.offset, t.kind) for t in video.truth] == [(3, 5, 8, "micro")]
    greys = [grey for _, grey in video.iter_grey()]
    assert len(greys) == 20 and greys[0].shape == (48, 64)
    assert abs(float(greys[10].mean()) - 100) < 8  # decoded in order: frame 10 is the one written 10th


def test_spot_refuses_to_replace_a_clip_shard_set(tmp_path):
    from mer_pipeline.errors import MerError
    from mer_pipeline.shards import write_manifest
    from mer_pipeline.spotting import spot

    out = tmp_path / "casme2-shards"
    write_manifest(out.mkdir() or out, dataset="casme2", config={"dataset": "casme2", "prep": {}}, shards=[],
                   failed=0, class_counts={}, pipeline_version="0")
    with pytest.raises(MerError, match="made by `mer-prep casme2`"):
        spot("videos", tmp_path, out)


def test_a_broken_video_is_a_failure_line_not_a_crash(tmp_path):
    from mer_pipeline.spotting import spot

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "empty.mp4").write_bytes(b"")
    (raw / "spot_truth.csv").write_text("video,onset,apex,offset,kind\n")  # a sheet with nothing to find
    summary = spot("videos", raw, tmp_path / "out", scheduler="synchronous")
    assert (tmp_path / "out" / "ground_truth.csv").read_text() == "video,onset,apex,offset,kind,emotion\n"
    assert summary.failed == 1 and summary.intervals == 0
    (line,) = [json.loads(x) for x in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert line["sample_id"] == "videos/empty" and line["stage"] == "read" and "empty (0 bytes)" in line["message"]
    assert _rows(tmp_path / "out" / "videos.csv")[0]["status"] == "failed"


def test_a_200_fps_video_is_scored_at_a_stride_and_reported_in_its_own_frame_numbers():
    """SAMM-LV: 200 fps, every 7th frame scanned (scan_fps 30); k = 42 and 119 frames."""
    rng = np.random.default_rng(1)
    positions = np.arange(0, 4200, 7)
    t = np.arange(len(positions))
    regions = {}
    for k in (42, 119):
        values = 0.05 + 0.01 * rng.standard_normal((len(positions), len(NAMES)))
        for name in ("brow_right", "brow_left", "nose"):
            values[:, NAMES.index(name)] += 0.5 * np.exp(-0.5 * ((t - 50) / 1.5) ** 2)
        regions[k] = values.astype(np.float32)
    video = LongVideo("samm-lv", "006_1", "006", 200.0, None, {n + 1: None for n in range(4200)})  # files from 1
    (found,) = find_intervals(video, Signals(positions, 7, regions, 200.0), SpotConfig())
    assert found.apex == 351 and found.kind == "micro"  # position 350 is frame number 351
    assert found.onset < 351 < found.offset and found.offset - found.onset + 1 <= 100
