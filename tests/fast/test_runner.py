"""imgsearch_helpers.devtools.runner: saved notebooks are cleaned of widget state and progress-bar redraws."""
import tempfile

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from imgsearch_helpers.devtools.runner import (
    NOTEBOOKS,
    clean,
    collapse_carriage_returns,
    describe_parameters,
    parameters_of,
    slowest_cells,
)


def test_collapse_keeps_last_state_per_line():
    assert collapse_carriage_returns("a\r b\r c\nx") == " c\nx"


def test_collapse_handles_trailing_carriage_return_and_plain_text():
    assert collapse_carriage_returns("10%\r50%\r100%\r\ndone\n") == "100%\ndone\n"
    assert collapse_carriage_returns("no bars\nhere\n") == "no bars\nhere\n"
    assert collapse_carriage_returns("") == ""


def notebook_with_noise():
    bar = "embed:  10%|#  |\rembed:  50%|## |\rembed: 100%|###|\n"
    cell = new_code_cell(
        "run()",
        execution_count=1,
        metadata={"execution": {"iopub.status.busy": "2024-01-01T00:00:00Z"}, "tags": ["keep-me"]},
        outputs=[
            new_output("stream", name="stderr", text=bar + "ingested 5 images\n"),
            new_output("execute_result", data={"text/plain": "a\rb"}, execution_count=1),
        ],
    )
    notebook = new_notebook(cells=[cell, new_code_cell("pass", metadata={})])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["kernelspec"] = {"name": "my-venv", "display_name": "My venv", "language": "python"}
    return notebook


def test_clean_removes_widgets_and_execution_metadata():
    notebook = notebook_with_noise()
    clean(notebook)
    assert "widgets" not in notebook.metadata
    assert notebook.metadata["language_info"] == {"name": "python"}  # other metadata stays
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert "execution" not in notebook.cells[0].metadata
    assert notebook.cells[0].metadata["tags"] == ["keep-me"]
    nbformat.validate(notebook)


def test_clean_collapses_stream_outputs_only():
    notebook = notebook_with_noise()
    clean(notebook)
    stream, result = notebook.cells[0].outputs
    assert stream["text"] == "embed: 100%|###|\ningested 5 images\n"
    assert result["data"]["text/plain"] == "a\rb"  # not a stream: left alone


def test_clean_survives_a_write_read_round_trip(tmp_path):
    notebook = notebook_with_noise()
    clean(notebook)
    path = tmp_path / "clean.ipynb"
    nbformat.write(notebook, path)
    again = nbformat.read(path, as_version=4)
    assert "\r" not in again.cells[0].outputs[0]["text"]
    assert "widgets" not in again.metadata


def test_summary_lists_every_recorded_table(tmp_path):
    from imgsearch_helpers.config import get_settings
    from imgsearch_helpers.devtools.runner import summary
    from imgsearch_helpers.evaluation.results import load, record

    settings = get_settings(results_dir=tmp_path, slice="tiny")
    record("01_build_engine", [{"engine": "milvus", "mhr@10": 0.4839}], settings)
    record("02_other", {"engine": "exact", "mhr@10": 0.5}, settings)
    assert load("01_build_engine", settings)["rows"] == [{"engine": "milvus", "mhr@10": 0.4839}]
    text = summary(settings)
    assert "== 01_build_engine (slice: tiny)" in text and "== 02_other (slice: tiny)" in text
    assert "0.484" in text and "exact" in text
    assert summary(get_settings(results_dir=tmp_path / "empty")) == "no results recorded"


def test_importing_the_package_outside_ipython_starts_no_shell():
    """Gradio (and others) treat a process with sys.ps1 as interactive and do not block."""
    import subprocess
    import sys

    script = "import sys, imgsearch_helpers.evaluation.plot, imgsearch_helpers.serve.app; print(hasattr(sys, 'ps1'))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.strip() == "False"


def test_metric_fields_flatten_metric_rows_into_named_rounded_fields():
    from imgsearch_helpers.evaluation.results import metric_fields

    rows = {"whole": {"mhr@10": 0.62134, "ap@10": 0.56649, "setup": "whole photos"},
            "crop": {"mhr@10": 0.5, "ap@10": 0.4}}
    assert metric_fields(rows, key="test_{metric}_{row}") == {
        "test_mhr@10_whole": 0.6213, "test_mhr@10_crop": 0.5, "test_ap@10_whole": 0.5665, "test_ap@10_crop": 0.4}
    assert metric_fields({"names": rows["whole"]}, ("ap@10",), key="{metric}") == {"ap@10": 0.5665}


def test_clean_replaces_a_live_app_frame_and_keeps_other_html():
    frame = '<div><iframe src="http://127.0.0.1:7860/" width="100%" height="500"></iframe></div>'
    cell = new_code_cell("app.launch(inline=True)", outputs=[
        new_output("display_data", data={"text/html": frame, "text/plain": "<IPython.core.display.HTML object>"}),
        new_output("display_data", data={"text/html": "<b>a table</b>", "text/plain": "table"})])
    notebook = new_notebook(cells=[cell])
    clean(notebook)
    app, table = notebook.cells[0].outputs
    assert "text/html" not in app["data"] and "http://127.0.0.1:7860/" in app["data"]["text/plain"]
    assert table["data"]["text/html"] == "<b>a table</b>"
    nbformat.validate(notebook)


def test_clean_drops_the_kernels_scratch_file_names_from_warnings():
    text = f"{tempfile.gettempdir()}/ipykernel_6768/1248297588.py:2: UserWarning: slow\n  embedder = build()\n"
    notebook = new_notebook(cells=[new_code_cell("build()", outputs=[new_output("stream", name="stderr", text=text)])])
    clean(notebook)
    assert notebook.cells[0].outputs[0]["text"] == "cell line 2: UserWarning: slow\n  embedder = build()\n"


def test_slowest_cells_ranks_code_cells_by_their_recorded_run_time():
    def timed(began, ended):
        return {"execution": {"iopub.execute_input": began, "shell.execute_reply": ended}}

    notebook = new_notebook(cells=[
        new_code_cell("a", metadata=timed("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:02.500Z")),
        nbformat.v4.new_markdown_cell("text"),
        new_code_cell("b", metadata=timed("2026-01-01T00:00:03Z", "2026-01-01T00:01:03Z")),
        new_code_cell("never ran"),
        new_code_cell("c", metadata=timed("2026-01-01T00:01:03Z", "2026-01-01T00:01:10Z")),
    ])
    assert slowest_cells(notebook, count=2) == "cell 2: 60 s, cell 4: 7 s"
    assert slowest_cells(notebook, count=4).endswith("cell 1: 2 s, cell 3: 0 s")


def test_every_notebook_tags_its_parameters_cell_and_the_run_names_the_values():
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        parameters = parameters_of(nbformat.read(path, as_version=4))
        assert "MODEL" in parameters or "MODELS" in parameters or "TEXT_PATH" in parameters, path.name
    edited = new_notebook(cells=[new_code_cell('MODEL = "resnet50"  # changed\nA, B = 1, [2, 3]\nprint(MODEL)',
                                               metadata={"tags": ["parameters"]}),
                                 new_code_cell('MODEL = "not a parameter"')])
    assert parameters_of(edited) == {"MODEL": '"resnet50"', "A": "1", "B": "[2, 3]"}
    assert describe_parameters(parameters_of(edited)) == 'MODEL="resnet50", A=1, B=[2, 3]'
    assert describe_parameters({}) == "no parameters cell"


def test_a_notebook_runs_on_a_kernel_over_unix_sockets_that_is_shut_down_after(tmp_path, capfd):
    """`make run`'s kernels: no TCP port (and no warning about one in the terminal), and each is shut
    down when its notebook ends (a kernel left running would keep the Milvus Lite lock)."""
    import os

    from imgsearch_helpers.devtools.runner import execute

    source = tmp_path / "one.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("import os\nprint(os.getpid())")]), source)
    execute(source, tmp_path / "out" / "one.ipynb")
    [output] = nbformat.read(tmp_path / "out" / "one.ipynb", as_version=4).cells[0].outputs
    kernel_pid = int(output["text"])
    assert kernel_pid != os.getpid()
    assert not os.path.exists(f"/proc/{kernel_pid}") or open(f"/proc/{kernel_pid}/stat").read().split()[2] == "Z"
    assert "over TCP" not in capfd.readouterr().err
