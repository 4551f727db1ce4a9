"""Feder wrapper, without a browser: JSON into JavaScript, the script's source, files Feder cannot draw."""
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.errors import FederFileError, FederScriptError
from imgsearch_helpers.feder import FederIndex
from imgsearch_helpers.feder import assets as feder_assets
from imgsearch_helpers.feder.assets import CDN_URL, FEDER_SHA256, feder_script, js_value
from imgsearch_helpers.feder.files import read_faiss_ivf_flat, read_hnswlib
from imgsearch_helpers.index import IndexSpec, open_engine

RNG = np.random.default_rng(3)
VECTORS = RNG.normal(size=(400, 16)).astype(np.float32)
IDS = np.arange(400, dtype=np.int64) + 1000


@pytest.fixture(scope="module")
def fake_script(tmp_path_factory):
    """A stand-in for Feder's file; tests that need the pinned hash patch it to this file's."""
    path = tmp_path_factory.mktemp("feder") / "feder with spaces.js"
    path.write_text("export class Feder {}\n")
    return path


@pytest.fixture
def local_script(fake_script, monkeypatch):
    monkeypatch.setattr(feder_assets, "FEDER_SHA256", hashlib.sha256(fake_script.read_bytes()).hexdigest())
    monkeypatch.setenv("IMGSEARCH_FEDER_JS", str(fake_script))
    return fake_script


def saved(kind, tmp_path, metric="L2", index_type=None, build=None, **search):
    index_type = index_type or ("HNSW" if kind == "hnswlib" else "IVF_FLAT")
    build = build if build is not None else ({"nlist": 16} if index_type == "IVF_FLAT" else {"M": 8})
    engine = open_engine(kind, metric=metric, index=IndexSpec(index_type, build, search))
    engine.add(IDS, VECTORS)
    return engine.save(tmp_path / f"{kind}-{index_type}-{metric}.index")


def write_photo(path: Path, seed: int) -> Path:
    """A 640 x 480 JPEG with a photo's detail (smooth colour plus grain), so thumbnails are not trivially small."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 640, dtype=np.float32)[None, :, None] + rng.uniform(0, 50, (1, 1, 3))
    pixels = np.clip(ramp + rng.normal(0, 20, (480, 640, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def spec_of(view) -> dict:
    """The JSON the view's script receives, read back from its HTML."""
    literal = re.search(r"const spec = (\{.*?\});\n", view.html()).group(1)
    return json.loads(literal)


# --- values into JavaScript ------------------------------------------------------------------
AWKWARD = {"quote": 'say "hi"', "apostrophe": "it's", "backslash": "C:\\data\\x", "flags": [True, False, None],
           "closing": "</script><script>alert(1)</script>", "comment": "<!-- x -->", "amp": "a & b",
           "path": Path("/tmp/a folder/with spaces/img 1.jpg"), "unicode": "caf\u00e9 \u2028 line",
           "numbers": np.arange(3, dtype=np.int64), "float": np.float32(0.5)}


def test_js_value_is_json_that_cannot_close_the_script():
    text = js_value(AWKWARD)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    back = json.loads(text)
    assert back["flags"] == [True, False, None] and back["quote"] == 'say "hi"'
    assert back["closing"] == AWKWARD["closing"] and back["path"] == "/tmp/a folder/with spaces/img 1.jpg"
    assert back["numbers"] == [0, 1, 2] and back["float"] == 0.5
    assert "true" in text and "null" in text and "True" not in text and "None" not in text


def test_js_value_evaluates_to_the_same_value_in_javascript():
    script = f"process.stdout.write(JSON.stringify({js_value(AWKWARD)}))"
    done = subprocess.run([shutil.which("node") or "node", "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(js_value(AWKWARD))


def test_js_value_refuses_nan_and_unknown_objects():
    with pytest.raises(ValueError, match="cannot pass"):
        js_value({"x": float("nan")})
    with pytest.raises(TypeError, match="cannot pass a object to JavaScript"):
        js_value({"x": object()})


# --- Feder's script: local copy or CDN -------------------------------------------------------
def test_a_local_copy_is_inlined(local_script):
    script = feder_script(get_settings())
    assert script.code == local_script.read_text() and script.url is None
    assert "feder with spaces.js" in script.origin


def test_a_local_copy_with_another_hash_is_refused(fake_script, monkeypatch):
    monkeypatch.setenv("IMGSEARCH_FEDER_JS", str(fake_script))
    with pytest.raises(FederScriptError, match=f"feder with spaces.js has sha256 .*{FEDER_SHA256}"):
        feder_script(get_settings())


def test_a_configured_path_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGSEARCH_FEDER_JS", str(tmp_path / "missing.js"))
    with pytest.raises(FederScriptError, match="missing.js, which does not exist"):
        feder_script(get_settings())


def test_without_a_local_copy_the_pinned_cdn_url_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("IMGSEARCH_FEDER_JS", raising=False)
    script = feder_script(get_settings(assets_dir=tmp_path))  # nothing fetched there
    assert script.code is None and script.url == CDN_URL and "@zilliz/feder@0.2.4" in CDN_URL


def test_the_page_carries_the_script_and_the_index_inline(local_script, tmp_path):
    index = FederIndex(saved("faiss", tmp_path), progress=False)
    page = index.page(index.overview())
    assert "export class Feder {}" in page  # the module's source, not a URL to fetch
    assert CDN_URL not in page and "file://" not in page and str(tmp_path) not in page.split("</div>", 1)[1]


# --- files Feder cannot draw -----------------------------------------------------------------
def test_a_faiss_ivf_flat_file_is_read_like_feder_reads_it(tmp_path):
    info = read_faiss_ivf_flat(saved("faiss", tmp_path))
    assert (info.dim, info.ntotal, info.nlist) == (16, 400, 16)
    assert sorted(info.ids.tolist()) == IDS.tolist() and info.vectors.shape == (400, 16)
    row = int(np.flatnonzero(info.ids == IDS[7])[0])
    np.testing.assert_array_equal(info.vectors[row], VECTORS[7])


def test_an_hnswlib_file_is_read_like_feder_reads_it(tmp_path):
    info = read_hnswlib(saved("hnswlib", tmp_path))
    assert (info.dim, info.count, info.M) == (16, 400, 8)
    assert info.labels.tolist() == IDS.tolist()


@pytest.mark.parametrize("index_type, reason", [("FLAT", "type 'IxM2'"), ("HNSW", "type 'IxM2'")])
def test_other_faiss_index_types_are_refused(tmp_path, index_type, reason):
    with pytest.raises(FederFileError, match=f"{reason}.*Feder draws IVF_FLAT"):
        FederIndex(saved("faiss", tmp_path, index_type=index_type, build={}), progress=False)


def test_inner_product_ivf_is_refused(tmp_path):
    with pytest.raises(FederFileError, match="inner product; Feder ranks by L2 only"):
        FederIndex(saved("faiss", tmp_path, metric="IP"), progress=False)


def test_an_ivf_with_a_direct_map_is_refused(tmp_path):
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 16)
    index.train(VECTORS)
    index.add(VECTORS)  # sequential ids: the direct map needs them
    index.make_direct_map()
    faiss.write_index(index, str(tmp_path / "mapped.index"))
    with pytest.raises(FederFileError, match="mapped.index: the index has a direct map"):
        read_faiss_ivf_flat(tmp_path / "mapped.index")


def test_sparse_inverted_lists_are_refused(tmp_path):
    quantizer = faiss.IndexFlatL2(16)
    index = faiss.IndexIVFFlat(quantizer, 16, 16)
    index.train(VECTORS)
    index.add_with_ids(VECTORS[:3], IDS[:3])  # at most 3 of 16 lists hold anything
    faiss.write_index(index, str(tmp_path / "sparse.index"))
    with pytest.raises(FederFileError, match="stored sparse"):
        read_faiss_ivf_flat(tmp_path / "sparse.index")


@pytest.mark.parametrize("kind", ["faiss", "hnswlib"])
def test_truncated_and_padded_files_are_refused(tmp_path, kind):
    data = saved(kind, tmp_path).read_bytes()
    reader = read_faiss_ivf_flat if kind == "faiss" else read_hnswlib
    (tmp_path / "cut.index").write_bytes(data[: len(data) // 2])
    with pytest.raises(FederFileError, match="cut.index: truncated"):
        reader(tmp_path / "cut.index")
    (tmp_path / "long.index").write_bytes(data + b"\0" * 8)
    with pytest.raises(FederFileError, match="8 unexpected bytes"):
        reader(tmp_path / "long.index")


def test_a_file_that_is_not_an_index_is_refused_before_any_html(tmp_path):
    (tmp_path / "notes.txt").write_text("hello, this is not an index at all" * 10)
    with pytest.raises(FederFileError, match="notes.txt"):
        FederIndex(tmp_path / "notes.txt", progress=False)
    with pytest.raises(FederFileError, match="file not found"):
        FederIndex(tmp_path / "missing.index", progress=False)


# --- only the parameters Feder reads ---------------------------------------------------------
def test_ivf_search_parameters_reach_the_view(local_script, tmp_path):
    index = FederIndex(saved("faiss", tmp_path), progress=False)
    spec = spec_of(index.search_by_id(int(IDS[5]), k=7, nprobe=3, stage="fine"))
    assert spec["params"] == {"k": 7, "nprobe": 3} and spec["id"] == int(IDS[5])
    assert spec["stage"] == "Fine Search (Distance)" and spec["action"] == "searchById"
    with pytest.raises(ValueError, match="ef applies to HNSW"):
        index.search_by_id(int(IDS[5]), ef=20)
    with pytest.raises(ValueError, match="nprobe must be between 1 and nlist=16"):
        index.search_by_id(int(IDS[5]), nprobe=17)
    with pytest.raises(ValueError, match="id 5 is not in"):
        index.search_by_id(5)


def test_hnsw_search_takes_ef_and_refuses_ef_search(local_script, tmp_path):
    index = FederIndex(saved("hnswlib", tmp_path), progress=False)
    spec = spec_of(index.search_by_vector(VECTORS[2], k=4, ef=30))
    assert spec["params"] == {"k": 4, "ef": 30} and len(spec["vector"]) == 16
    with pytest.raises(ValueError, match=r"unknown view parameter\(s\) \['ef_search'\]"):
        index.search_by_id(int(IDS[1]), ef_search=30)
    with pytest.raises(ValueError, match="nprobe applies to IVF_FLAT"):
        index.search_by_id(int(IDS[1]), nprobe=4)
    with pytest.raises(ValueError, match="stage applies to IVF_FLAT"):
        index.search_by_id(int(IDS[1]), stage="fine")
    with pytest.raises(ValueError, match="dimension 8, the index 16"):
        index.search_by_vector(np.ones(8))


def test_few_points_get_fewer_umap_neighbours(local_script, tmp_path):
    index = FederIndex(saved("faiss", tmp_path, build={"nlist": 6}), progress=False)
    assert spec_of(index.overview())["viewParams"]["projectParams"] == {"nNeighbors": 5}
    big = FederIndex(saved("faiss", tmp_path, build={"nlist": 16}), progress=False)
    assert spec_of(big.overview())["viewParams"]["projectParams"] == {"nNeighbors": 15}


def test_thumbnails_only_for_ids_in_the_index(local_script, tmp_path):
    images = [write_photo(tmp_path / f"photo{seed}.jpg", seed) for seed in range(3)]
    media = {int(IDS[0]): images[0], int(IDS[1]): images[1], 7: images[2]}  # id 7 is not in the index
    index = FederIndex(saved("faiss", tmp_path), media=media, progress=False)
    assert sorted(index.media) == [str(IDS[0]), str(IDS[1])]
    assert all(url.startswith("data:image/jpeg;base64,") and len(url) < 6000 for url in index.media.values())
