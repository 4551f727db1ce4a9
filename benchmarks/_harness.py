"""The frame every benchmark script shares, so that a script is only its measurement.

    def measure(bench: Bench) -> dict:      # the figures, from bench.args and bench.settings()
        ...
    if __name__ == "__main__":
        run_benchmark(measure, __doc__, "ingest.json", options=add_options, model=DEFAULT_MODEL)

`run_benchmark` parses the command line (`--out`, by default `benchmarks/results/<file>`, `--model`
when the script takes one, and the script's own options), opens a scratch folder that is removed
afterwards, hands `measure` settings with Milvus Lite in it, times the whole run with the one timer
(`evaluation.timing`), and writes the results file whole, with the command that reproduces it, the
run's seconds and the machine it ran on (`evaluation.results.write_benchmark`).
"""
from __future__ import annotations

import argparse
import inspect
import json
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgsearch_helpers.config import Settings, display_path, get_settings
from imgsearch_helpers.evaluation.results import write_benchmark
from imgsearch_helpers.evaluation.timing import time_runs

RESULTS = Path(__file__).parent / "results"


@dataclass
class Bench:
    """One run of a script: its arguments, its scratch folder, and the command that reproduces it."""

    args: argparse.Namespace
    scratch: Path
    command: str

    def settings(self, cold: bool = False, **changes) -> Settings:
        """The configured settings with Milvus Lite in the scratch folder; `cold`: the caches
        (embeddings, model exports, crops) there too, empty, so the run pays for all of them."""
        scratch = {"milvus_uri": str(self.scratch / "milvus" / "bench.db")}
        if cold:
            scratch["cache_dir"] = self.scratch / "cache"
        return get_settings(**{**scratch, **changes})

    def write(self, result: dict) -> Path:
        """The results file, written whole (a script that keeps what it has measured so far calls it
        as it goes; the harness calls it at the end)."""
        return write_benchmark(self.args.out, {"command": self.command, **result})


def run_benchmark(measure: Callable[[Bench], dict | None], doc: str, out: str,
                  options: Callable[[argparse.ArgumentParser], None] | None = None,
                  model: str | None = None) -> Path | None:
    """Parse the command line, run `measure` in a scratch folder, timed, and write what it returns
    to `--out` (a run that returns None, such as a redrawn plot, writes nothing)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / out, help=f"results file (default: results/{out})")
    if model is not None:
        parser.add_argument("--model", default=model, help=f"the network (default: {model})")
    if options is not None:
        options(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        bench = Bench(args, Path(scratch), command_line(parser, args, Path(inspect.getfile(measure)).name))
        run = time_runs(lambda: measure(bench))
    if run.result is None:
        return None
    path = bench.write({**run.result, "seconds": round(run.total, 1)})
    headline = {key: value for key, value in run.result.items() if not isinstance(value, list | dict)}
    print(json.dumps(headline or run.result, indent=2, default=str))  # the figures, or the rows if only rows
    print(f"wrote {display_path(path)}")
    return path


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, script: str) -> str:
    """The command that reproduces the run: the script and the options not left at their defaults
    (paths as a reader would type them from where the script ran)."""
    words = [f"python benchmarks/{script}"]
    for name, value in vars(args).items():
        if value == parser.get_default(name) or value is None or value is False:
            continue
        words.append("--" + name.replace("_", "-"))
        if value is not True:
            values = value if isinstance(value, list) else [value]
            words += [shown(v) for v in values]
    return " ".join(words)


def shown(value) -> str:
    """An option's value in a command: a path as `display_path` shows it (no machine's home in a
    committed file), anything else as typed, quoted for the shell when it has to be."""
    is_path = isinstance(value, Path) or (isinstance(value, str) and "/" in value and Path(value).exists())
    return shlex.quote(display_path(value) if is_path else str(value))
