"""Spot-then-recognise in long videos: find micro- and macro-expression intervals, score them by
the MEGC rules, and hand each one to the recogniser as a shard sample.

    from mer_pipeline.spotting import spot, evaluate
    spot("cas2", Path("raw/CAS(ME)^2"), Path("out/cas2-spot"))   # intervals.csv + shards
    metrics = evaluate(Path("out/cas2-spot"))                   # f1_micro, f1_macro, f1_overall

See docs/spotting.md for the method, the metric and the measured numbers.
"""
from .evaluate import evaluate, read_intervals
from .longvideo import SOURCES, LongVideo, find_long_videos
from .metric import Interval, iou, match, recognition_f1, spot_then_recognise, spotting_metrics
from .spot import SpotConfig, SpotSummary, find_intervals, scan_video, spot

__all__ = ["SOURCES", "Interval", "LongVideo", "SpotConfig", "SpotSummary", "evaluate", "find_intervals",
           "find_long_videos", "iou", "match", "read_intervals", "recognition_f1", "scan_video", "spot",
           "spot_then_recognise", "spotting_metrics"]
