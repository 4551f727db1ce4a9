"""Execute the notebooks in order through a real kernel and print the recorded results.

    python -m imgsearch_helpers.devtools.runner            # executed copies into <results_dir>/notebooks
    python -m imgsearch_helpers.devtools.runner --in-place # refresh the committed notebooks' outputs
                                                        # (and, on the full data, notebooks/results/)
"""
from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd
from jupyter_client import KernelManager
from nbclient import NotebookClient

from ..config import get_settings
from ..evaluation.results import load
from ..feder.snapshots import snapshot_feder_outputs

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TIMEOUT_S = 3600


def execute(path: Path, out: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    print(f"  parameters: {describe_parameters(parameters_of(notebook))}", flush=True)
    start = time.perf_counter()
    resources = {"metadata": {"path": str(path.parent)}}  # the kernel runs in notebooks/
    with tempfile.TemporaryDirectory(prefix="imgsearch-kernel-") as sockets:
        # Unix sockets, not TCP: nothing is reachable from the network, and the kernel has no
        # "running over TCP without encryption" warning to print into the terminal
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            NotebookClient(notebook, km=kernel, timeout=TIMEOUT_S, resources=resources).execute()
        finally:  # a kernel it did not start, the client leaves running: it would keep Milvus Lite's lock
            if kernel.has_kernel:
                kernel.shutdown_kernel()
    print(f"  slowest cells: {slowest_cells(notebook)}", flush=True)
    clean(notebook)
    snapshot_start = time.perf_counter()
    feder = snapshot_feder_outputs(notebook)
    if feder != "no Feder views":
        print(f"  {feder} ({time.perf_counter() - snapshot_start:.0f} s)", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out)
    return time.perf_counter() - start


def parameters_of(notebook) -> dict[str, str]:
    """The names the notebook's `parameters` cell sets, with their values as written: what a run
    ran with (a learner may have changed them in JupyterLab and saved)."""
    cells = [cell for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    found = {}
    for cell in cells:
        tree = ast.parse(cell.source)
        for statement in tree.body:
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    found.update(assigned(cell.source, target, statement.value))
    return found


def assigned(source: str, target, value) -> dict[str, str]:
    """name -> value as written, for `A = 1` and for `A, B = 1, 2`."""
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        return {k: v for t, e in zip(target.elts, value.elts) for k, v in assigned(source, t, e).items()}
    return {target.id: ast.get_source_segment(source, value)} if isinstance(target, ast.Name) else {}


def describe_parameters(parameters: dict[str, str], width: int = 60) -> str:
    return ", ".join(f"{name}={value if len(value) <= width else value[:width] + '...'}"
                     for name, value in parameters.items()) or "no parameters cell"


def cell_seconds(cell) -> float:
    """How long a code cell ran, from the timestamps nbclient records (0 if it did not run)."""
    timing = cell.get("metadata", {}).get("execution", {})
    began, ended = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not began or not ended:
        return 0.0
    return (pd.Timestamp(ended) - pd.Timestamp(began)).total_seconds()


def slowest_cells(notebook, count: int = 3) -> str:
    """The `count` longest code cells as "cell N: S s" (N counts code cells from 1), longest first."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    timed = sorted(((cell_seconds(cell), number) for number, cell in enumerate(code, start=1)), reverse=True)
    return ", ".join(f"cell {number}: {seconds:.0f} s" for seconds, number in timed[:count])


LIVE_APP = re.compile(r'<iframe src="(http://(?:127\.0\.0\.1|localhost):\d+/?)"')
# A warning raised in a cell names the kernel's scratch file for it (a new name every run),
# which ipykernel makes in the temporary folder
KERNEL_CELL_FILE = re.compile(re.escape(tempfile.gettempdir()) + r"/ipykernel_\d+/\d+\.py:(\d+):")


def clean(notebook) -> None:
    """Keep saved notebooks small and stable: no widget state, progress bars as their last state,
    no frames of an app that ran on this machine during the run (dead links in a saved file), no
    per-run scratch file names in warnings."""
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if "outputs" in cell:
            cell.outputs = merge_streams(cell.outputs)
            for output in cell.outputs:
                if output.get("output_type") == "stream":
                    output["text"] = KERNEL_CELL_FILE.sub(r"cell line \1:", collapse_carriage_returns(output["text"]))
                drop_live_app(output)


def drop_live_app(output) -> None:
    html = output.get("data", {}).get("text/html", "")
    found = LIVE_APP.search("".join(html) if isinstance(html, list) else html)
    if found:
        output["data"] = {"text/plain": f"(the app ran here, live, at {found.group(1)} while the notebook ran; "
                                        "run the cell to open it)"}


def merge_streams(outputs: list) -> list:
    """Join consecutive outputs of the same stream (a progress bar arrives as many small ones)."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def collapse_carriage_returns(text: str) -> str:
    """What a terminal would show: for each line, the text after its last carriage return."""
    return "\n".join(line.rstrip("\r").split("\r")[-1] for line in text.split("\n"))


RESULTS = NOTEBOOKS / "results"  # committed beside the outputs they come from; tests read the claims' numbers


def keep_results(results_dir: Path, since: float) -> None:
    """Copy the metric rows a full-data run recorded (since `since`) into notebooks/results/."""
    RESULTS.mkdir(exist_ok=True)
    for path in results_dir.glob("*.json"):
        if path.stat().st_mtime >= since:
            shutil.copyfile(path, RESULTS / path.name)


def summary(settings) -> str:
    parts = []
    for path in sorted(settings.results_dir.glob("*.json")):
        result = load(path.stem, settings)
        frame = pd.DataFrame(result["rows"]).round(3)
        parts.append(f"== {result['name']} (slice: {result['slice']})\n{frame.to_string(index=False)}")
    return "\n\n".join(parts) or "no results recorded"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in-place", action="store_true", help="write outputs into notebooks/ itself")
    parser.add_argument("names", nargs="*", help="notebook name prefixes to run (default: all, in order)")
    args = parser.parse_args(argv)
    settings = get_settings()
    print(settings.describe(), flush=True)
    notebooks = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")
                       if not args.names or any(p.name.startswith(n) for n in args.names))
    for path in notebooks:
        out = path if args.in_place else settings.results_dir / "notebooks" / path.name
        print(f"running {path.name} ...", flush=True)
        started = time.time()
        seconds = execute(path, out)
        print(f"  done in {seconds:.0f} s -> {out}", flush=True)
        if args.in_place and settings.slice == "full":
            keep_results(settings.results_dir, started)
    ran_with = "\n".join(f"{path.name}: {describe_parameters(parameters_of(nbformat.read(path, as_version=4)))}"
                         for path in notebooks)
    text = summary(settings) + f"\n\n== parameters the notebooks ran with\n{ran_with}"
    (settings.results_dir / "summary.txt").write_text(text + "\n")
    print(f"\n{text}\n\n(saved to {settings.results_dir / 'summary.txt'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
