"""Evaluation: the metrics, scored runs, result files, and the experiments behind notebooks 3-5 and 7.

- `metrics` (the one scorer: mHR, Towhee mAP, AP, hit, N-S, recall, keys `<name>@<depth>`), `runs`
  (an engine or a text path scored on labelled queries), `timing` (the one timer), `results` (rows
  recorded as JSON for tests, the docs and the run summary);
- `quality`, `cropping`, `instance`, `sweeps`, `reference`: the experiment runners;
- `plot`: the pictures and tables notebooks show (imported from its module: it loads matplotlib).
"""
from .metrics import average_precision, evaluate, hit_ratio, relevant_found, towhee_ap
from .results import record, table, write_benchmark
from .runs import evaluate_engine, evaluate_text, run_queries, score
from .timing import Timing, time_each, time_runs

__all__ = ["Timing", "average_precision", "evaluate", "evaluate_engine", "evaluate_text", "hit_ratio", "record",
           "relevant_found", "run_queries", "score", "table", "time_each", "time_runs", "towhee_ap",
           "write_benchmark"]
