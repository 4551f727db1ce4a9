"""The command line leaves with its documented exit code even on a busy machine.

Milvus Lite serves its database from a gRPC server inside the process; left to its own atexit
hook, the server's daemon thread can still be stopping while the interpreter finalizes, and being
killed inside gRPC's native code aborts the process (-6, "terminate called without an active
exception") after the command has finished. `imgsearch` stops the server and waits before it
exits. Each run here reports which threads were still alive when the interpreter began to exit
(an atexit hook registered before any other, so it runs last), with both cores kept busy.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.stress  # a minute or two of subprocesses under load: `make test`, not `make unit`

PROBE = """import atexit, json, sys, threading
atexit.register(lambda: print("ALIVE " + json.dumps(
    [t.name for t in threading.enumerate() if t is not threading.main_thread()]), file=sys.stderr))
from imgsearch_helpers.serve.cli import main
sys.exit(main(sys.argv[1:]))
"""
GRPC_THREADS = ("_serve", "cancel_all_calls_after_grace")


@pytest.fixture(scope="module")
def busy():
    """Both cores kept busy by two spinning processes, ended by PID."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_dataset, seeded_cache):
    folder = tmp_path_factory.mktemp("exit")
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(folder / "cache")), "IMGSEARCH_SLICE": "tiny",
           "MILVUS_URI": str(folder / "milvus" / "exit.db")}
    done = subprocess.run([sys.executable, "-c", PROBE, "ingest", "--quiet", "--json"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["rows"] == 100
    return env


def run_probe(env, *args) -> tuple[int, list[str], str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=600)
    alive = [json.loads(line[6:]) for line in done.stderr.splitlines() if line.startswith("ALIVE ")]
    return done.returncode, alive[0] if alive else [], done.stderr


def test_every_error_path_exits_with_its_code_and_no_grpc_thread_left(busy, env, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    fresh = {**env, "IMGSEARCH_CACHE_DIR": str(tmp_path / "fresh"), "MILVUS_URI": str(tmp_path / "fresh" / "x.db")}
    query = next(Path(env["IMGSEARCH_DATA_DIR"] if "IMGSEARCH_DATA_DIR" in env else "data").glob(
        "reverse_image_search/test/*/*.JPEG"))
    paths = [(env, ("search", str(tmp_path / "missing.jpg")), 3), (env, ("search", str(notes)), 3),
             (fresh, ("search", str(query)), 4), (env, ("search", str(query), "--where", "label = 1"), 2),
             (env, ("search", str(query), "-k", "3"), 0)]
    outcomes = []
    for _ in range(2):
        for run_env, args, expected in paths:
            code, alive, stderr = run_probe(run_env, *args)
            outcomes.append((args[1][-12:], expected, code, [t for t in alive if t.endswith(GRPC_THREADS)]))
            assert "terminate called" not in stderr, stderr[-1500:]
    assert all(code == expected and not grpc for _, expected, code, grpc in outcomes), outcomes
