"""Metric rows recorded as JSON, so tests, the docs and the run summary read the same values."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._io import read_json, write_json
from ..config import Settings, get_settings


def record(name: str, rows, settings: Settings | None = None) -> Path:
    """Write `rows` (a dict, a list of dicts or a DataFrame) to `<results_dir>/<name>.json`."""
    settings = settings or get_settings()
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict(orient="records")
    elif isinstance(rows, dict):
        rows = [rows]
    return write_json(settings.results_dir / f"{name}.json", {"name": name, "slice": settings.slice, "rows": rows})


def load(name: str, settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    return read_json(settings.results_dir / f"{name}.json")


def table(rows) -> pd.DataFrame:
    """Rows as a DataFrame with floats rounded for display."""
    return pd.DataFrame(rows).round(3)


def machine() -> dict:
    """What a benchmark ran on, stored beside its figures."""
    import os
    import platform

    import torch

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(), "torch": torch.__version__}


def write_benchmark(path: Path, result: dict) -> Path:
    """Write a benchmark's result file (JSON, the machine added) and return its path."""
    return write_json(path, {**result, "machine": machine()})


def metric_fields(rows: dict[str, dict], metrics=("mhr@10", "ap@10"), key: str = "{metric}_{row}") -> dict:
    """Flat, rounded result fields, one per row and metric ('mhr@10' of row 'crop' -> 'mhr@10_crop')."""
    return {key.format(metric=metric, row=name): round(float(values[metric]), 4)
            for metric in metrics for name, values in rows.items()}
