"""The MEGC spotting metric and the spot-then-recognise score, on hand-computed cases."""
import csv
import json

import pytest
from click.testing import CliRunner

from mer_pipeline.cli import cli
from mer_pipeline.spotting import Interval, evaluate, iou, match, recognition_f1, spot_then_recognise, spotting_metrics


def I(onset, offset, kind="micro", video="v1", score=0.0, label=""):  # noqa: E743 - short on purpose
    return Interval(video, onset, offset, kind, score=score, label=label)


def test_iou_counts_frames_with_both_ends():
    assert iou(I(10, 19), I(15, 24)) == pytest.approx(5 / 15)  # 15..19 shared, 10..24 in all
    assert iou(I(0, 9), I(0, 4)) == pytest.approx(0.5)
    assert iou(I(0, 9), I(10, 19)) == 0.0
    assert iou(I(3, 3), I(3, 3)) == 1.0


def test_iou_of_exactly_one_half_is_a_true_positive():
    metrics = spotting_metrics([I(0, 9)], [I(0, 4)])
    assert metrics["counts"]["micro"] == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    metrics = spotting_metrics([I(0, 10)], [I(0, 4)])  # 5 / 11 < 0.5
    micro = metrics["counts"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (0, 1, 1)
    assert metrics["f1_micro"] == 0.0


def test_one_prediction_over_two_truths_counts_once():
    # [0, 19] has IoU 10/20 = 0.5 with both [0, 9] and [10, 19]: one TP, the other truth is missed.
    metrics = spotting_metrics([I(0, 19)], [I(0, 9), I(10, 19)])
    micro = metrics["counts"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 0, 1)
    assert metrics["f1_micro"] == pytest.approx(2 / 3)  # 2*1 / (2*1 + 0 + 1)


def test_two_predictions_on_one_truth_leave_one_false_positive():
    metrics = spotting_metrics([I(0, 9, score=2.0), I(1, 10, score=1.0)], [I(0, 9)])
    micro = metrics["counts"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 1, 0)
    assert metrics["matches"] == [(0, 0)]  # the higher-scoring, better overlap is the match


def test_matching_is_the_largest_one_to_one():
    truth = [I(0, 9), I(6, 15)]
    # p0 overlaps both equally (7/13); p1 only the first (9/10). A greedy first choice of p0 -> truth 0
    # would leave p1 unmatched; the largest matching is p0 -> truth 1, p1 -> truth 0.
    predicted = [I(3, 12, score=5.0), I(0, 8, score=1.0)]
    assert iou(predicted[0], truth[0]) == pytest.approx(7 / 13) == iou(predicted[0], truth[1])
    assert match(predicted, truth) == [(0, 1), (1, 0)]
    assert spotting_metrics(predicted, truth)["f1_micro"] == 1.0


def test_kinds_and_videos_never_match_each_other():
    metrics = spotting_metrics([I(0, 9, "micro"), I(20, 29, "macro", video="v2")],
                               [I(0, 9, "macro"), I(20, 29, "macro")])
    c = metrics["counts"]
    assert (c["micro"]["tp"], c["micro"]["fp"], c["micro"]["fn"]) == (0, 1, 0)
    assert (c["macro"]["tp"], c["macro"]["fp"], c["macro"]["fn"]) == (0, 1, 2)
    assert metrics["f1_micro"] == 0.0 and metrics["f1_macro"] == 0.0
    assert c["overall"]["fp"] == 2 and c["overall"]["fn"] == 2


def test_counts_are_pooled_over_videos_then_f1():
    predicted = [I(0, 9, video="a"), I(50, 59, video="a")]  # a: one TP, one FP
    truth = [I(0, 9, video="a"), I(0, 9, video="b"), I(30, 39, video="b")]  # b: two FN
    metrics = spotting_metrics(predicted, truth)
    assert metrics["f1_micro"] == pytest.approx(2 / (2 + 1 + 2))  # not the mean of per-video F1s (0.5 and 0)
    assert metrics["per_video"]["a"]["tp"] == 1 and metrics["per_video"]["a"]["fp"] == 1
    assert metrics["per_video"]["b"]["fn"] == 2


def test_overall_pools_micro_and_macro():
    predicted = [I(0, 9), I(100, 159, "macro"), I(300, 359, "macro")]
    truth = [I(0, 9), I(40, 45), I(100, 160, "macro")]
    metrics = spotting_metrics(predicted, truth)
    assert metrics["f1_micro"] == pytest.approx(2 / 3)  # TP 1, FN 1
    assert metrics["f1_macro"] == pytest.approx(2 / 3)  # TP 1, FP 1
    assert metrics["f1_overall"] == pytest.approx(4 / (4 + 1 + 1))


def test_nothing_to_find_and_nothing_found_is_undefined():
    metrics = spotting_metrics([], [])
    assert metrics["f1_micro"] is None and metrics["f1_overall"] is None


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind 'blink'"):
        spotting_metrics([Interval("v", 0, 3, "blink")], [])


def test_recognition_f1_and_strs_by_hand():
    truth, predicted = ["a", "a", "b"], ["a", "b", "b"]
    # class a: TP 1, FN 1 -> 2/3; class b: TP 1, FP 1 -> 2/3
    assert recognition_f1(truth, predicted) == pytest.approx(2 / 3)
    score = spot_then_recognise(0.5, truth, predicted)
    assert score["strs"] == pytest.approx(1 / 3) and score["true_positives"] == 3
    assert spot_then_recognise(0.5, [], [])["strs"] == 0.0


def _write(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def spot_dir(tmp_path):
    _write(tmp_path / "intervals.csv", ["video", "onset", "apex", "offset", "kind", "score", "sample_id"],
           [["a", 0, 4, 9, "micro", 9.0, "videos/a/a_000000"], ["a", 100, 130, 160, "macro", 8.0, "videos/a/a_000100"],
            ["quiet", 10, 12, 15, "micro", 7.0, "videos/quiet/quiet_000010"]])
    _write(tmp_path / "ground_truth.csv", ["video", "onset", "apex", "offset", "kind", "emotion"],
           [["a", 1, 4, 9, "micro", "happy"], ["a", 100, 120, 150, "macro", "sad"],
            ["a", 300, 310, 320, "micro", "sad"]])
    _write(tmp_path / "videos.csv", ["video", "seconds", "status"], [["a", 60, "ok"], ["quiet", 30, "ok"]])
    return tmp_path


def test_evaluate_writes_metrics_and_false_positives_per_minute(spot_dir):
    metrics = evaluate(spot_dir)
    written = json.loads((spot_dir / "spotting_metrics.json").read_text())
    assert written["f1_overall"] == metrics["f1_overall"] == pytest.approx(4 / (4 + 1 + 1))
    assert metrics["f1_micro"] == pytest.approx(2 / (2 + 1 + 1)) and metrics["f1_macro"] == 1.0
    assert metrics["false_positives_per_minute"] == pytest.approx(1 / 1.5)
    assert metrics["distractor_only"]["videos"] == ["quiet"]
    assert metrics["distractor_only"]["false_positives_per_minute"] == pytest.approx(2.0)


def test_evaluate_with_predictions_gives_strs(spot_dir):
    _write(spot_dir / "predictions.csv", ["sample_id", "predicted"],
           [["videos/a/a_000000", "happy"], ["videos/a/a_000100", "happy"]])
    metrics = evaluate(spot_dir, predictions=spot_dir / "predictions.csv")
    strs = metrics["spot_then_recognise"]
    # TPs: (happy -> happy), (sad -> happy): F1 happy 2/3, sad 0 -> 1/3; times spotting F1 2/3
    assert strs["recognition_f1"] == pytest.approx(1 / 3)
    assert strs["strs"] == pytest.approx(2 / 9)


def test_spot_eval_command(spot_dir):
    result = CliRunner().invoke(cli, ["spot-eval", str(spot_dir)])
    assert result.exit_code == 0, result.output
    assert "overall 0.667" in result.output and "spotting_metrics.json" in result.output


def test_spot_eval_without_truth_says_what_to_do(tmp_path, spot_dir):
    (spot_dir / "ground_truth.csv").unlink()
    with pytest.raises(Exception, match="--truth"):
        evaluate(spot_dir)
