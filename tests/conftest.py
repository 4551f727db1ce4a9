"""Shared fixtures (the real tutorial dataset, the offline default model, a Milvus server), the test
tiers' marks, and tool folders kept inside the checkout's data folder."""
import os
import shutil
from pathlib import Path

import pytest

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import dataset_root
from imgsearch_helpers.models import DEFAULT_MODEL, build_embedder

# Jupyter, IPython, matplotlib, Chromium (crash reports, dconf) and npm write config, runtime and
# workspace state into the home folder; the tests point them here, so a test run leaves nothing
# there (a user's next `make lab` would reopen a test notebook from a left-over workspace).
TOOL_HOME = Path(__file__).resolve().parents[1] / "data" / "test-home"
TOOL_FOLDERS = {"JUPYTER_CONFIG_DIR": "jupyter/config", "JUPYTER_DATA_DIR": "jupyter/data",
                "JUPYTER_RUNTIME_DIR": "jupyter/runtime", "JUPYTERLAB_SETTINGS_DIR": "jupyter/lab-settings",
                "JUPYTERLAB_WORKSPACES_DIR": "jupyter/lab-workspaces", "IPYTHONDIR": "ipython",
                "MPLCONFIGDIR": "matplotlib", "XDG_CONFIG_HOME": "config", "XDG_CACHE_HOME": "cache",
                "npm_config_cache": "npm"}


def pytest_configure(config):
    for variable, folder in TOOL_FOLDERS.items():
        path = TOOL_HOME / folder
        path.mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(path)  # inherited by kernels, servers and scripts the tests start


FAST = Path(__file__).resolve().parent / "fast"


def pytest_collection_modifyitems(config, items):
    """Tiers by where a test lives and what it needs. tests/fast/ is the fast tier: synthetic inputs
    and tiny random networks, no tutorial data, no pretrained weights (`make unit` runs it with
    both folders pointed at empty ones). Everything else is integration; within it, notebooks run
    through a kernel, and the Milvus server fixture means the server tier (in tests/fast too)."""
    for item in items:
        if FAST not in item.path.parents:
            item.add_marker(pytest.mark.integration)
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
        if "milvus_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def real_dataset():
    """The verified dataset root, found as the package finds it (IMGSEARCH_DATA_DIR or data/),
    downloaded on first use like the notebooks do."""
    return dataset_root(get_settings(slice="full"))


@pytest.fixture(scope="session")
def lite0(real_dataset):
    return build_embedder(DEFAULT_MODEL)


TEXT_MODELS = ("efficientnet_lite1@*", "efficientnet_lite2@*", "all-MiniLM-L6-v2@*")  # the offline text path's


@pytest.fixture(scope="session")
def seeded_cache(lite0):
    """Makes a new cache folder holding the session's exports of the default network (its plain and
    its regional GeM graphs), and with `text=True` those of the offline text path too (what
    `imgsearch serve` and the app build at start), so that a command run in a fresh cache does not
    export and check them again. The exports are hard links: an export's files are only ever
    replaced whole (atomic writes), never changed in place. Tests of the export itself start from
    an empty folder instead."""
    from imgsearch_helpers.retrieval.text import open_text_path

    exports = get_settings().cache_dir / "models"
    build_embedder(f"{DEFAULT_MODEL}+gem")  # the instance graph (verified search, duplicates), once
    text_path = []

    def seed(folder: Path, text: bool = False) -> Path:
        if text and not text_path:
            text_path.append(open_text_path("offline")[0])
            text_path[0].text_vectors(["a dog"])  # exports the sentence model too
        for pattern in (f"{DEFAULT_MODEL}@*", *(TEXT_MODELS if text else ())):
            for export in exports.glob(pattern):
                shutil.copytree(export, Path(folder) / "models" / export.name, copy_function=os.link,
                                dirs_exist_ok=True)
        return Path(folder)
    return seed


@pytest.fixture(scope="module")
def command_env(tmp_path_factory, real_dataset, seeded_cache) -> dict:
    """The environment of a test module's `imgsearch` commands: the tiny slice, a cache of its own
    (holding Lite0's export) and a Milvus Lite database of its own."""
    folder = tmp_path_factory.mktemp("command")
    return {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(folder / "cache")), "IMGSEARCH_SLICE": "tiny",
            "MILVUS_URI": str(folder / "milvus" / "command.db")}


SERVERS = []  # the Milvus server the session started, if any


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus server (standalone 2.3.5 from PyPI) for the tests under tests/."""
    from imgsearch_helpers.index.milvus_server import MilvusServer

    server = MilvusServer(tmp_path_factory.mktemp("milvus-server")).start()
    SERVERS.append(server)
    yield server
    server.stop()


def pytest_runtest_teardown(item, nextitem):
    """Stop the tests' Milvus server before the notebooks run: one such server fits on a machine
    (its etcd port is fixed), and notebook 08 starts its own."""
    if nextitem is not None and nextitem.path.suffix == ".ipynb" and item.path.suffix != ".ipynb":
        for server in SERVERS:
            server.stop()  # the fixture's own stop later does nothing
