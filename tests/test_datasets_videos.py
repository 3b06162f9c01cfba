"""`mer-prep videos`: own recordings (video files through OpenCV's FFmpeg, frame folders) + a CSV.

Fast tests write tiny videos of numbered grey levels; the slow one runs the real pipeline (dlib,
TV-L1, HDF5) on synthetic mp4 recordings and reads the ststnet export back as STSTNet does."""
from __future__ import annotations

import json
import logging
import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mer_pipeline.errors import AnnotationError, DatasetLayoutError, FrameError
from mer_pipeline.frames import VideoFrame, probe_video, read_grey
from mer_train.errors import LabelSetError
from mer_train.labels import AS_WRITTEN, as_written_class_set, get_class_set, infer_class_set


def scan(raw, annotations=None):
    from mer_pipeline.datasets import get_adapter

    return get_adapter("videos").scan(raw, annotations)


def level(n):
    """The grey level written into frame n of the test videos (decoded within a few levels)."""
    return 20 + (7 * n) % 220


def write_video(path, n_frames=20, fps=25.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48), True)
    for n in range(n_frames):
        writer.write(np.full((48, 64, 3), level(n), np.uint8))
    writer.release()
    return path


def write_csv(raw, text):
    (raw / "labels.csv").write_text(text)


def test_frame_n_of_a_video_is_decoded_in_any_order(tmp_path):
    video = write_video(tmp_path / "a.mp4", 20, fps=25.0)
    info = probe_video(video)
    assert (info.fps, info.frame_count, info.size) == (25.0, 20, (64, 48))
    for n in (0, 7, 19, 3, 3, 12):  # forward, back (reopened), repeated (cached)
        frame = read_grey(VideoFrame(video, n))
        assert frame.shape == (48, 64) and abs(float(frame.mean()) - level(n)) < 3, n
    with pytest.raises(FrameError, match=rf"{video}: frame 20 cannot be decoded"):
        read_grey(VideoFrame(video, 20))


@pytest.mark.parametrize("damage, words", [("truncate", "cannot decode the video"), ("empty", r"empty \(0 bytes\)"),
                                           ("text", "cannot decode the video")])
def test_a_video_that_cannot_be_decoded_raises_frame_error_naming_it(tmp_path, damage, words):
    video = write_video(tmp_path / "a.mp4")
    data = video.read_bytes()
    video.write_bytes({"truncate": data[: len(data) // 3], "empty": b"", "text": b"not a video"}[damage])
    with pytest.raises(FrameError, match=words) as caught:
        probe_video(video)
    assert str(caught.value).startswith(str(video))


def test_csv_rows_become_samples_as_documented(tmp_path, caplog):
    raw = tmp_path / "raw"
    write_video(raw / "rec" / "p1_a.mp4", 20, fps=25.0)
    write_video(raw / "rec" / "p1_b.mov", 30, fps=25.0)
    write_video(raw / "rec" / "solo.mp4", 12, fps=25.0)
    folder = raw / "rec" / "p2_frames"
    folder.mkdir()
    for n in range(1, 11):
        cv2.imwrite(str(folder / f"{n:05d}.png"), np.full((48, 64), level(n), np.uint8))
    write_csv(raw, "subject,clip,onset,apex,offset,emotion,onset_s,apex_s,offset_s,fps\n"
                   "p1,p1_a.mp4,2,5,9,Happy,,,,\n"           # frames, with extension
                   "p1,p1_b,,,,surprise,0.2,,0.8,\n"          # seconds, without extension, apex spotted
                   "p2,p2_frames,3,,8,disgust,,,,50\n"        # a frame folder with its fps
                   ",solo,,,,happy,,,,\n")                    # no subject, the whole recording
    with caplog.at_level(logging.WARNING, logger="mer_pipeline"):
        result = scan(raw)
    assert result.failures == []
    got = {s.sample_id: s for s in result.samples}
    assert sorted(got) == ["videos/p1/p1_a", "videos/p1/p1_b", "videos/p2/p2_frames", "videos/solo/solo"]
    a, b, f, solo = (got[k] for k in sorted(got))
    assert (a.onset, a.apex, a.offset, a.fps, a.emotion) == (2, 5, 9, 25.0, "Happy")
    assert sorted(a.frames) == list(range(2, 10)) and a.frames[5] == VideoFrame(raw / "rec" / "p1_a.mp4", 5)
    assert (b.onset, b.apex, b.offset) == (5, None, 20)  # 0.2 s and 0.8 s at 25 fps
    assert (f.onset, f.apex, f.offset, f.fps) == (3, None, 8, 50.0) and f.frames[3].name == "00003.png"
    assert (solo.subject, solo.onset, solo.offset) == ("solo", 0, 11)
    assert "1 row(s) have no subject" in caplog.text and "leave-one-subject-out" in caplog.text
    assert abs(float(read_grey(a.frames[5]).mean()) - level(5)) < 3


@pytest.mark.parametrize("row, words", [
    ("p1,p1_a,2a,,9,happy", "labels.csv row 2, column onset: '2a' is not a frame number"),
    ("p1,p1_a,2,,90,happy", "labels.csv row 2, column offset: frame 90 lies outside the recording's frames 0..19"),
    ("p1,p1_a,,,,happy,x", "labels.csv row 2, column kind: 'x' is not one of micro, macro"),
    ("p1,nothing.mp4,2,,9,happy", "labels.csv row 2, column clip: no recording called 'nothing.mp4'"),
    ("p1,,2,,9,happy", "labels.csv row 2, column clip: empty"),
    ("p1,p1_a,9,,2,happy", "labels.csv row 2: offset 2 lies before onset 9"),
])
def test_a_bad_row_fails_only_its_clip_naming_file_row_and_column(tmp_path, row, words):
    raw = tmp_path / "raw"
    write_video(raw / "p1_a.mp4")
    write_video(raw / "p1_ok.mp4")
    write_csv(raw, f"subject,clip,onset,apex,offset,emotion,kind\n{row}\np1,p1_ok,1,3,6,happy,\n")
    result = scan(raw)
    assert [s.sample_id for s in result.samples] == ["videos/p1/p1_ok"]
    row_failure, *others = result.failures
    assert words in row_failure.message, row_failure.message
    assert all("recording has no row" in f.message for f in others)  # p1_a, when the row named another clip


def test_broken_videos_unlisted_recordings_and_several_expressions_per_video(tmp_path):
    raw = tmp_path / "raw"
    write_video(raw / "long.mp4", 40)
    broken = write_video(raw / "broken.mp4")
    broken.write_bytes(broken.read_bytes()[:500])
    write_video(raw / "forgotten.mp4")
    write_csv(raw, "subject,clip,onset,apex,offset,emotion\np1,long,2,,10,happy\np1,long,20,25,30,sad\n"
                   "p1,broken,1,2,3,happy\n")
    result = scan(raw)
    assert sorted(s.sample_id for s in result.samples) == ["videos/p1/long_f2", "videos/p1/long_f20"]
    failures = {f.sample_id: f for f in result.failures}
    assert failures["videos/p1/broken"].error == "FrameError"
    assert failures["videos/p1/broken"].message.startswith(f"labels.csv row 4: {broken}: cannot decode the video")
    assert "recording has no row in labels.csv" in failures["videos/forgotten/forgotten"].message


def test_without_a_csv_every_recording_is_an_unlabelled_whole_clip(tmp_path, caplog):
    raw = tmp_path / "raw"
    write_video(raw / "x.mp4", 15)
    with caplog.at_level(logging.WARNING, logger="mer_pipeline"):
        result = scan(raw)
    [sample] = result.samples
    assert (sample.sample_id, sample.onset, sample.apex, sample.offset, sample.emotion) == ("videos/x/x", 0, None, 14, "")
    assert "no CSV of labels" in caplog.text


def test_layout_errors_say_what_was_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no recordings found"):
        scan(tmp_path / "empty")
    write_video(tmp_path / "two" / "a.mp4")
    write_csv(tmp_path / "two", "clip\na\n")
    (tmp_path / "two" / "other.csv").write_text("clip\na\n")
    with pytest.raises(AnnotationError, match="several CSV files .* pass the one with the labels with --annotations"):
        scan(tmp_path / "two")
    assert [s.sample_id for s in scan(tmp_path / "two", tmp_path / "two" / "labels.csv").samples] == ["videos/a/a"]


def test_as_written_class_set():
    classes = as_written_class_set(["Happy", "surprise", "", "happiness", "Disgust", "disgust "])
    assert classes.name == AS_WRITTEN and classes.classes == ("disgust", "happiness", "surprise")
    assert [classes.index(e) for e in ("HAPPY", "Surprise", "fear", "")] == [1, 2, None, None]
    assert get_class_set("as-written", ["b", "a"]).classes == ("a", "b")
    assert infer_class_set(["videos"]) == "as-written"
    assert infer_class_set(["videos", "casme2"]) == "megc2019-3"
    with pytest.raises(LabelSetError, match="every sample's emotion is empty"):
        as_written_class_set(["", " "])


@pytest.mark.slow
def test_synthetic_recordings_to_shards_to_an_ststnet_export(tmp_path):
    """mp4 recordings + CSV (rows without apex, without subject, one broken video, one bad row) ->
    `mer-prep videos` -> every row accounted for -> `mer-prep export --format ststnet` read back as
    STSTNet's main.py reads it: the same samples and labels as the shards."""
    from mer_pipeline.cli import cli
    from mer_pipeline.shards import open_shards, verify_shards
    from mer_pipeline.synth import TRUTH_FILE, generate

    raw, out, dest = tmp_path / "raw", tmp_path / "out", tmp_path / "ststnet"
    generate("videos", raw, subjects=3, clips_per_subject=2, seed=0, quirks=True)
    rows = (raw / "labels.csv").read_text().splitlines()[1:]
    truth = json.loads((raw / TRUTH_FILE).read_text())
    assert {q["kind"] for q in truth["quirks"]} == {"broken-video", "bad-row"}
    assert any(r.startswith(",") for r in rows), "a row without subject"
    assert list((raw / "recordings").glob("*.mp4"))

    runner = CliRunner()
    result = runner.invoke(cli, ["videos", str(raw), str(out), "--size", "64", "--scheduler", "synchronous", "-q"])
    assert result.exit_code == 0, result.output
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    shards = open_shards(out)
    assert verify_shards(out) == []
    assert len(shards) + len(failures) == len(rows)  # every row accounted for
    by_kind = {q["kind"]: q["sample_id"] for q in truth["quirks"]}
    reasons = {f["sample_id"]: f for f in failures}
    assert reasons[by_kind["broken-video"]]["error"] == "FrameError"
    assert "cannot decode the video" in reasons[by_kind["broken-video"]]["message"]
    assert "column onset" in reasons[by_kind["bad-row"]]["message"] and "labels.csv row" in reasons[by_kind["bad-row"]]["message"]
    meta = shards.rows()
    assert {r["apex_source"] for r in meta} >= {"spotted", "annotated"}
    assert any(r["subject"] == r["clip"] for r in meta), "a sample whose row had no subject"
    assert {r["fps"] for r in meta} == {30.0}
    assert np.isfinite(shards.arrays["flow"]).all()

    result = runner.invoke(cli, ["export", str(out), str(dest), "--format", "ststnet", "--classes", "megc2019-3"])
    assert result.exit_code == 0, result.output
    megc = {"happy": 1, "disgust": 0, "surprise": 2}
    expected = {(r["subject"], f"{r['subject']}_{r['clip']}.png", megc[r["emotion"]]) for r in meta}
    seen = set()
    for subject in os.listdir(dest):  # as christy1206/STSTNet main.py: listdir, int(folder), cv2.imread
        for split in ("u_train", "u_test"):
            for expression in os.listdir(dest / subject / split):
                for name in os.listdir(dest / subject / split / expression):
                    image = cv2.imread(str(dest / subject / split / expression / name))
                    assert image.shape == (28, 28, 3)
                    owner = next(s for s, n, _ in expected if n == name)
                    assert (split == "u_test") == (owner == subject)
                    seen.add((owner, name, int(expression)))
    assert seen == expected


def test_a_folder_of_videos_with_a_thumbnail_is_searched_not_taken_for_frames(tmp_path):
    raw = tmp_path / "raw"
    write_video(raw / "day1" / "p1_a.mp4")
    cv2.imwrite(str(raw / "day1" / "cover1.jpg"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(raw / "day1" / "cover2.jpg"), np.zeros((8, 8), np.uint8))
    assert [s.sample_id for s in scan(raw).samples] == ["videos/p1_a/p1_a"]
