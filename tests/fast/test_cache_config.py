"""imgsearch_helpers.embed.cache (SQLite embedding cache) and imgsearch_helpers.config (settings)."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from imgsearch_helpers import config
from imgsearch_helpers.config import get_settings, is_milvus_lite
from imgsearch_helpers.embed.cache import EmbeddingCache, content_digest

# ---------------------------------------------------------------- EmbeddingCache


def vectors(n, dim=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def digests(n, prefix="img"):
    return [content_digest(f"{prefix}-{i}".encode()) for i in range(n)]


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "nested" / "cache.sqlite") as opened:
        yield opened


def test_content_digest_is_sha256():
    payload = b"\xff\xd8\xff some jpeg bytes"
    assert content_digest(payload) == hashlib.sha256(payload).hexdigest()
    assert content_digest(b"a") != content_digest(b"b")


def test_round_trip_keeps_float32_values(cache):
    keys, vecs = digests(3), vectors(3)
    cache.put_many("model-a", keys, vecs)
    found = cache.get_many("model-a", keys)
    assert set(found) == set(keys)
    for key, vec in zip(keys, vecs):
        assert found[key].dtype == np.float32
        np.testing.assert_array_equal(found[key], vec)


def test_float64_input_is_stored_as_float32(cache):
    vec = np.array([[0.1, 0.2, 1e-3]], dtype=np.float64)
    cache.put_many("m", ["k"], vec)
    np.testing.assert_array_equal(cache.get_many("m", ["k"])["k"], vec[0].astype(np.float32))


def test_missing_keys_are_absent(cache):
    keys = digests(2)
    cache.put_many("m", keys[:1], vectors(1))
    assert set(cache.get_many("m", keys)) == {keys[0]}
    assert cache.get_many("m", []) == {}


def test_models_are_separate(cache):
    key = digests(1)
    cache.put_many("model-a", key, vectors(1, seed=1))
    cache.put_many("model-b", key, vectors(1, seed=2))
    np.testing.assert_array_equal(cache.get_many("model-a", key)[key[0]], vectors(1, seed=1)[0])
    np.testing.assert_array_equal(cache.get_many("model-b", key)[key[0]], vectors(1, seed=2)[0])
    assert cache.get_many("model-c", key) == {}
    assert (cache.count("model-a"), cache.count("model-b"), cache.count()) == (1, 1, 2)


def test_put_replaces_an_existing_vector(cache):
    key = digests(1)
    cache.put_many("m", key, vectors(1, seed=1))
    cache.put_many("m", key, vectors(1, seed=2))
    assert cache.count("m") == 1
    np.testing.assert_array_equal(cache.get_many("m", key)[key[0]], vectors(1, seed=2)[0])


def test_get_many_over_500_keys_with_duplicates(cache):
    keys, vecs = digests(1203), vectors(1203, dim=4)
    cache.put_many("m", keys, vecs)
    asked = keys + keys[:10] + digests(7, prefix="missing")
    found = cache.get_many("m", asked)
    assert len(found) == 1203
    np.testing.assert_array_equal(np.stack([found[k] for k in keys]), vecs)


def test_persists_across_reopen(tmp_path):
    path = tmp_path / "cache.sqlite"
    keys, vecs = digests(4), vectors(4)
    with EmbeddingCache(path) as first:
        first.put_many("m", keys, vecs)
    with EmbeddingCache(path) as second:
        assert second.count("m") == 4
        found = second.get_many("m", keys)
    np.testing.assert_array_equal(np.stack([found[k] for k in keys]), vecs)


def test_get_or_compute_computes_and_stores_only_what_the_cache_lacks(cache):
    keys, vecs = digests(5), vectors(5)
    cache.put_many("m", [keys[1], keys[3]], vecs[[1, 3]])
    asked = []

    def compute(positions):
        asked.append(list(positions))
        return vecs[positions]

    found, held = cache.get_or_compute("m", keys, compute)
    assert asked == [[0, 2, 4]] and held.tolist() == [False, True, False, True, False]
    np.testing.assert_array_equal(found, vecs)
    again, held = cache.get_or_compute("m", keys, compute)  # now all stored: nothing computed
    assert len(asked) == 1 and held.all()
    np.testing.assert_array_equal(again, vecs)


# ---------------------------------------------------------------- settings


@pytest.fixture
def clean_env(monkeypatch):
    for var in config.ENV.values():
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_defaults(clean_env):
    settings = get_settings()
    base = config.project_dir()
    assert settings.data_dir == base
    assert settings.cache_dir == base / "cache"
    assert settings.weights_dir == base / "weights"
    assert settings.results_dir == base / "runs"
    assert settings.slice == "full"
    assert settings.milvus_token == ""


def test_editable_install_keeps_data_in_the_repo():
    repo = Path(config.__file__).resolve().parents[1]
    assert (repo / "pyproject.toml").is_file()
    assert config.project_dir() == repo / "data"


def test_argument_beats_env_beats_default(clean_env, tmp_path):
    assert get_settings().slice == "full"  # default
    clean_env.setenv("IMGSEARCH_SLICE", "tiny")
    assert get_settings().slice == "tiny"  # environment
    assert get_settings(slice="full").slice == "full"  # argument

    clean_env.setenv("IMGSEARCH_DATA_DIR", str(tmp_path / "from_env"))
    assert get_settings().data_dir == tmp_path / "from_env"
    assert get_settings(data_dir=tmp_path / "from_arg").data_dir == tmp_path / "from_arg"


def test_empty_env_var_and_none_argument_fall_through(clean_env):
    clean_env.setenv("IMGSEARCH_SLICE", "")
    assert get_settings().slice == "full"
    clean_env.setenv("IMGSEARCH_SLICE", "tiny")
    assert get_settings(slice=None).slice == "tiny"


def test_paths_are_absolute_and_expanded(clean_env, tmp_path):
    clean_env.setenv("HOME", str(tmp_path / "home"))
    settings = get_settings(cache_dir="~/cache", weights_dir=str(tmp_path / "w"))
    assert settings.cache_dir == tmp_path / "home" / "cache"
    assert settings.weights_dir == tmp_path / "w"
    assert isinstance(settings.weights_dir, Path)


def test_relative_paths_start_at_the_repo_not_the_working_directory(clean_env, tmp_path):
    # an editable install: a notebook kernel (cwd notebooks/) and the shell see the same folder
    repo = config.project_dir().parent
    clean_env.chdir(tmp_path)
    assert get_settings(data_dir="relative").data_dir == repo / "relative"
    clean_env.setenv("IMGSEARCH_RESULTS_DIR", "some/runs")
    assert get_settings().results_dir == repo / "some" / "runs"


def test_unknown_slice_is_a_value_error(clean_env):
    with pytest.raises(ValueError, match="huge"):
        get_settings(slice="huge")
    clean_env.setenv("IMGSEARCH_SLICE", "medium")
    with pytest.raises(ValueError, match="medium"):
        get_settings()


def test_unknown_setting_is_a_type_error():
    with pytest.raises(TypeError, match="data_folder"):
        get_settings(data_folder="/tmp")


def test_default_milvus_uri_lives_under_cache_dir(clean_env, tmp_path):
    settings = get_settings(cache_dir=tmp_path / "c")
    assert settings.milvus_uri == str(tmp_path / "c" / "milvus" / "imgsearch.db")
    assert Path(settings.milvus_uri).is_relative_to(settings.cache_dir)
    assert settings.uses_milvus_lite
    clean_env.setenv("MILVUS_URI", "http://milvus:19530")
    assert get_settings(cache_dir=tmp_path / "c").milvus_uri == "http://milvus:19530"


@pytest.mark.parametrize(
    ("uri", "lite"),
    [
        ("./milvus.db", True),
        ("/data/cache/milvus/imgsearch.db", True),
        ("http://localhost:19530", False),
        ("https://in01-x.cloud.zilliz.com", False),
        ("tcp://localhost:19530", False),
    ],
)
def test_is_milvus_lite(clean_env, uri, lite):
    assert is_milvus_lite(uri) is lite
    assert get_settings(milvus_uri=uri).uses_milvus_lite is lite


def test_describe_never_shows_the_token(clean_env):
    clean_env.setenv("MILVUS_TOKEN", "root:s3cret-from-env")
    text = get_settings(slice="tiny").describe()
    assert "s3cret" not in text
    assert "(set)" in text
    assert "tiny" in text and "milvus_uri" in text
    assert "s3cret" not in get_settings(milvus_token="arg-s3cret").describe()
    clean_env.delenv("MILVUS_TOKEN")
    assert "(none)" in get_settings().describe()


def test_display_path_is_true_from_where_the_reader_stands(tmp_path, clean_env):
    from imgsearch_helpers.config import display_path

    monkeypatch = clean_env

    (tmp_path / "repo" / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo" / "notebooks")
    assert display_path(tmp_path / "repo" / "data" / "cache") == "../data/cache"
    assert display_path(tmp_path / "shared" / "data") == "../../shared/data"
    monkeypatch.chdir(tmp_path / "repo")
    assert display_path(tmp_path / "repo" / "data" / "cache") == "data/cache"
    assert display_path("/usr/bin") == "/usr/bin"  # far away: absolute


def test_a_path_inside_a_folder_set_by_the_environment_is_shown_under_its_variable(tmp_path, clean_env):
    """The deepest such folder names it; a path outside them is shown as before."""
    from imgsearch_helpers.config import display_path

    monkeypatch = clean_env
    monkeypatch.setenv("IMGSEARCH_DATA_DIR", str(tmp_path / "shared" / "data"))
    monkeypatch.setenv("IMGSEARCH_CACHE_DIR", str(tmp_path / "shared" / "data" / "cache"))
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "shared" / "data" / "object" / "dog.jpg") == "$IMGSEARCH_DATA_DIR/object/dog.jpg"
    assert display_path(tmp_path / "shared" / "data") == "$IMGSEARCH_DATA_DIR"
    assert display_path(tmp_path / "shared" / "data" / "cache" / "milvus.db") == "$IMGSEARCH_CACHE_DIR/milvus.db"
    assert display_path(tmp_path / "shared" / "weights") == "shared/weights"


def test_describe_shows_a_folder_set_by_the_environment_as_its_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("IMGSEARCH_DATA_DIR", str(tmp_path / "elsewhere"))
    text = get_settings().describe()
    assert "data_dir: $IMGSEARCH_DATA_DIR (unset: " in text and "elsewhere" not in text
    monkeypatch.delenv("IMGSEARCH_DATA_DIR")
    assert "$IMGSEARCH_DATA_DIR" not in get_settings(data_dir=tmp_path).describe()  # an argument is shown as is
