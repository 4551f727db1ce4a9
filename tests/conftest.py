"""Shared fixtures: the real tutorial dataset and the offline default model."""
import pytest

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data import dataset_root
from imgsearch_helpers.models import build_embedder


@pytest.fixture(scope="session")
def real_dataset():
    """The verified dataset root, found as the package finds it (IMGSEARCH_DATA_DIR or data/),
    downloaded on first use like the notebooks do."""
    return dataset_root(get_settings(slice="full"))


@pytest.fixture(scope="session")
def lite0(real_dataset):
    return build_embedder("efficientnet_lite0")


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus server (standalone 2.3.5 from PyPI) for the whole test session."""
    from imgsearch_helpers.milvus_server import MilvusServer

    server = MilvusServer(tmp_path_factory.mktemp("milvus-server")).start()
    yield server
    server.stop()
