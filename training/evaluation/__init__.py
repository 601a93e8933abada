"""Judging models as the node will run them: scores in the node's TFLite runtime, streaming
detection, threshold calibration, per-word breakdowns, reports, plots and BENCHMARKS.md."""
