"""Committed benchmark results: the quality benchmark covers every recipe (and docs/results.md's table is
generated from it); the detection benchmark holds what its issue asks for."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgsearch_helpers.evaluation.quality import QUALITY_RECIPES

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
COLUMNS = {"model", "technique", "mhr@10", "towhee_map@10", "ap@10", "images_per_s"}


@pytest.mark.parametrize("name", ["quality.json", "quality_holdout.json"])
def test_results_have_one_row_per_recipe(name):
    result = json.loads((RESULTS / name).read_text())
    assert result["slice"] == "full" and result["query_count"] == 100
    assert [(r["model"], r["technique"]) for r in result["rows"]] == [(r.model, r.technique) for r in QUALITY_RECIPES]
    for row in result["rows"]:
        assert COLUMNS <= set(row) and 0 <= row["ap@10"] <= row["towhee_map@10"] <= 1 and row["images_per_s"] > 0


def test_readme_table_matches_the_results():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "readme_table.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_detection_results_hold_both_setups_and_the_photos():
    result = json.loads((RESULTS / "detect.json").read_text())
    assert result["slice"] == "full" and result["queries"] == 100
    for key in ("test_mhr@10_whole", "test_mhr@10_crop", "test_mhr@10_crop_both"):
        assert 0 < result[key] <= 1
    assert result["detection_images_per_s"] > 0
    photos = {p["photo"]: p for p in result["object_photos"]}
    assert [photos[name]["detected"] for name in sorted(photos)] == ["truck", "dog", "laptop"]
    assert all(len(p["top5_whole"]) == len(p["top5_crop"]) == 5 for p in photos.values())


def test_text_results_meet_the_offline_target_and_say_what_ran():
    result = json.loads((RESULTS / "text.json").read_text())
    assert result["slice"] == "full" and result["queries"] == 100 and result["gallery"] == 1000
    assert result["offline_text_mhr@10"] >= 0.80  # the issue's target, on the full data
    assert result["offline"]["path"].startswith("offline:")
    assert 0 < result["offline_definitions_mhr@10"] < result["offline_text_mhr@10"]
    on_torch = result["torch_offline"]  # the same path with every network on PyTorch, same run
    assert result["torch_text_query_ms"] == on_torch["query_ms"] and result["offline_text_query_ms"] > 0
    assert abs(on_torch["mhr@10"] - result["offline_text_mhr@10"]) <= 0.005
    if result["clip_mhr@10"] is None:
        assert "cannot be downloaded" in result["clip_note"]
    else:
        assert result["clip"]["path"].startswith("CLIP") and "RANDOM" not in result["clip"]["path"]


def test_scale_results_cover_every_engine_and_size_and_meet_the_target():
    result = json.loads((RESULTS / "scale.json").read_text())
    rows = result["rows"]
    keys = {"engine", "index", "n", "recall@10", "p50_ms", "p99_ms", "qps", "build_s"}
    assert all(keys <= set(row) for row in rows)
    engines = {(row["engine"], row["index"]) for row in rows}
    assert {("faiss", "IVF_FLAT"), ("faiss", "HNSW"), ("hnswlib", "HNSW"), ("milvus-lite", "IVF_FLAT"),
            ("milvus-lite", "HNSW"), ("milvus-server", "IVF_FLAT"), ("milvus-server", "HNSW")} <= engines
    for engine, index in engines:  # each engine measured at two sizes at least: how latency grows with n
        assert len({row["n"] for row in rows if (row["engine"], row["index"]) == (engine, index)}) >= 2
    assert max(row["n"] for row in rows) >= 100_000
    assert any(row["n"] >= 100_000 and row["recall@10"] >= 0.95 and row["p50_ms"] <= 10 for row in rows)
    assert all(0 <= row["recall@10"] <= 1 and row["p50_ms"] <= row["p99_ms"] for row in rows)


def test_the_default_backend_keeps_every_quality_figure_of_pytorch():
    """benchmarks/quality.py on the default backend against the same run on PyTorch: every recipe
    within 0.005 of mHR@10 (an export that changed what is found would fail here)."""
    default, reference = (json.loads((RESULTS / name).read_text()) for name in ("quality.json", "quality_torch.json"))
    assert reference["backend"].startswith("torch") and not default["backend"].startswith("torch")
    pairs = list(zip(default["rows"], reference["rows"]))
    assert len(pairs) == len(QUALITY_RECIPES)
    for row, torch_row in pairs:
        assert (row["model"], row["technique"]) == (torch_row["model"], torch_row["technique"])
        assert abs(row["mhr@10"] - torch_row["mhr@10"]) <= 0.005, row["technique"]


@pytest.mark.parametrize("name", ["ingest", "ingest_avx2"])  # a CPU with bf16, and one without
def test_ingest_results_compare_the_backend_with_pytorch_in_one_run(name):
    result = json.loads((RESULTS / f"{name}.json").read_text())
    assert result["slice"] == "full" and result["images"] == 1000
    assert [row["backend"] for row in result["backends"]][:2] == [result["backend"], "torch-2.14.1"]
    assert result["speedup_vs_torch"] == round(result["package_images_per_s"] / result["torch_images_per_s"], 2)
    assert abs(result["milvus_mhr@10"] - result["torch_mhr@10"]) <= 0.005
    assert result["check_min_cosine"] >= 0.999  # the chosen runtime passed its check
    assert result["package_images_per_s"] > result["torch_images_per_s"] and result["cli_search_s"] < 3


def test_ingest_runs_on_any_group_folder_with_the_index_the_service_would_pick():
    result = json.loads((RESULTS / "ingest_ukbench.json").read_text())
    assert result["gallery"].endswith("ukbench_mini") and result["queries"] == "the gallery"
    assert result["images"] == 56 and result["index"]["index_type"] == "FLAT"  # exact below 10,000 rows
    assert [row["backend"] for row in result["backends"]][:2] == [result["backend"], "torch-2.14.1"]
    assert abs(result["milvus_mhr@10"] - result["torch_mhr@10"]) <= 0.005


def test_int8_is_the_default_only_if_it_keeps_mhr_within_0_005():
    """The issue's rule for INT8 ("only if"). It is not the default even when one run keeps mHR@10
    within 0.005: its vectors are far from PyTorch's (cosine 0.95), and runs have put it on
    either side of the line (+0.006, +0.002)."""
    from imgsearch_helpers import runtime

    result = json.loads((RESULTS / "ingest.json").read_text())
    int8 = next(row for row in result["backends"] if row["backend"].endswith("-int8"))
    assert int8["images_per_s"] > 0 and 0 < int8["mhr@10"] <= 1 and int8["check_min_cosine"] < runtime.MIN_COSINE
    keeps_quality = abs(int8["mhr@10"] - result["torch_mhr@10"]) <= 0.005
    assert keeps_quality or "openvino-int8" not in runtime.AUTO


def test_instance_results_cover_every_recipe_on_every_benchmark():
    from imgsearch_helpers.data.edits import EDITS
    from imgsearch_helpers.evaluation.instance import INSTANCE_RECIPES

    result = json.loads((RESULTS / "instance.json").read_text())
    rows = [r for r in result["rows"] if r["benchmark"] != "duplicates"]
    names = [r.name for r in INSTANCE_RECIPES]
    for edit in EDITS:
        assert [r["recipe"] for r in rows if r.get("edit") == edit] == names, edit
    for benchmark, queries_from in (("ukbench", None), ("classes", "test"), ("classes", "holdout 0")):
        chosen = [r["recipe"] for r in rows if r["benchmark"] == benchmark and r.get("queries_from") == queries_from]
        assert chosen == names, (benchmark, queries_from)
    for row in rows:
        assert 0 <= row["ap@10"] <= row["hit@10"] <= 1 and 0 <= row["top1"] <= row["hit@10"] and 0 <= row["ns@4"] <= 4
        assert row["ms_per_query"] > row["search_ms"] >= 0
        if "verify" in row["recipe"]:
            assert row["search_ms"] <= 150, row  # the issue's budget for verification per query
    duplicates = next(r for r in result["rows"] if r["benchmark"] == "duplicates")
    assert duplicates["true_pairs"] == duplicates["images"] // 2 and 0 <= duplicates["precision"] <= 1


def test_distributed_results_compare_ray_with_one_process_and_extrapolate_by_the_stated_formula():
    result = json.loads((RESULTS / "distributed.json").read_text())
    rows = {row["row"]: row for row in result["rows"]}
    assert {"single process", "single process, PyTorch", "Ray, 1 actor", "Ray, 2 actors"} <= set(rows)
    assert result["gallery"] == "dataset"
    assert all(row["images"] == 1000 and row["skipped"] == 0 for row in rows.values())
    for row in rows.values():
        if row["row"].startswith("Ray"):
            assert row["min_cosine_vs_single"] >= 0.999  # the same ids, the same vectors
            assert row["steady_images_per_s"] > row["images_per_s"] > 0  # the actors' start-up is left out
        per_image = row.get("steady_core_s_per_image", row["core_s_per_image"])
        hours = 100_000_000 * per_image / (10 * result["cores"]) / 3600
        assert row["hours_100M_on_10"] == pytest.approx(hours, abs=0.01)


@pytest.mark.parametrize("name", ["decode.json", "decode_pictures.json", "decode_duplicates.json"])
def test_decode_results_split_an_image_into_stages_that_add_up(name):
    result = json.loads((RESULTS / name).read_text())
    stages = result["stages"]
    assert result["images"] >= 100 and all(stages[k] > 0 for k in ("read_ms", "decode_pillow_ms", "resize_crop_ms",
                                                                   "normalize_ms", "network_batch16_ms_per_image"))
    assert abs(sum(result["share"].values()) - 1) < 0.01
    assert abs(result["bound_images_per_s"] - 2000 / result["core_ms_per_image"]) < 0.5
    assert 0 < result["batched_images_per_s"]["pillow"] <= 1.1 * result["bound_images_per_s"]
    network_bound = stages["torch_network_batch16_ms_per_image"] / stages["network_batch16_ms_per_image"]
    assert result["network_speedup_vs_torch"] == round(network_bound, 2)



def test_decode_for_duplicates_counts_the_features_found_on_the_way():
    result = json.loads((RESULTS / "decode_duplicates.json").read_text())
    assert result["descriptor"] and "--descriptor" in result["command"]
    assert result["stages"]["gray_ms"] > 0 and result["stages"]["orb_ms"] > 0
    assert {"gray", "orb"} <= set(result["share"])  # in the core budget, so in the bound


def test_decode_by_kind_counts_every_image_of_the_phone_folder_once():
    result = json.loads((RESULTS / "decode_pictures.json").read_text())
    by_kind = result["decode_by_kind"]
    assert {".jpg", ".png", ".heic"} <= set(by_kind)
    assert sum(kind["images"] for kind in by_kind.values()) == result["images"]
    for kind in by_kind.values():  # ms rounded to 0.1, core seconds to 0.1
        rounding = 0.05 + 0.05 * kind["images"] / 1000
        assert kind["core_s"] == pytest.approx(kind["ms"] * kind["images"] / 1000, abs=rounding)


def test_clip_speed_results_time_both_towers_on_both_runtimes_in_one_run():
    result = json.loads((RESULTS / "clip_speed.json").read_text())
    on_torch, exported = result["torch"], result["exported"]
    assert result["image_runtime"].startswith("openvino-") and result["weights"].startswith("random")
    assert result["image_speedup"] == round(exported["image_batch16_images_per_s"]
                                            / on_torch["image_batch16_images_per_s"], 2)
    assert result["text_speedup"] == round(on_torch["text_100_sentences_ms"] / exported["text_100_sentences_ms"], 2)
    assert min(result["min_cosine_vs_torch"].values()) >= 0.999  # the same vectors, only faster or slower


def test_the_harness_writes_the_figures_with_the_command_seconds_and_machine(tmp_path):
    """benchmarks/_harness.py run as a script would: options parsed, a scratch folder with Milvus Lite
    in it, the file written whole with what reproduces it."""
    script = tmp_path / "tiny.py"
    script.write_text(
        "from _harness import run_benchmark\n"
        "def measure(bench):\n"
        "    assert bench.settings().milvus_uri.startswith(str(bench.scratch))\n"
        "    assert bench.settings(cold=True).cache_dir == bench.scratch / 'cache'\n"
        "    return {'every': bench.args.every, 'scratch_existed': bench.scratch.is_dir(), 'rows': [1, 2]}\n"
        "if __name__ == '__main__':\n"
        "    run_benchmark(measure, 'A tiny benchmark.', 'tiny.json', lambda p: p.add_argument('--every', type=int,"
        " default=5))\n")
    out = tmp_path / "out" / "tiny.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "benchmarks")}
    done = subprocess.run([sys.executable, str(script), "--every", "2", "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["command"] == "python benchmarks/tiny.py --out out/tiny.json --every 2"
    assert result["every"] == 2 and result["scratch_existed"] and result["rows"] == [1, 2]
    assert result["seconds"] >= 0 and result["machine"]["cpus"] >= 1
    assert "wrote out/tiny.json" in done.stdout and '"every": 2' in done.stdout


def test_local_feature_results_hold_every_benchmark_of_the_issue_with_sane_rows():
    """`benchmarks/instance.py --recipes local` on grocery_packages (alone and with the tutorial's
    1,000 images as distractors, beside the best global recipe), the copies and ukbench_mini."""
    from imgsearch_helpers.data.edits import EDITS
    from imgsearch_helpers.evaluation.instance import LOCAL_RECIPES

    local = [r.name for r in LOCAL_RECIPES]
    grocery = json.loads((RESULTS / "local_grocery.json").read_text())["rows"]
    crowded = json.loads((RESULTS / "local_grocery_distractors.json").read_text())["rows"]
    copies = json.loads((RESULTS / "local_copies.json").read_text())["rows"]
    assert set(local) < {r["recipe"] for r in grocery}  # side by side with a global recipe, one run
    assert set(local) < {r["recipe"] for r in crowded}  # the time bar: beside a global recipe, one run
    assert all(r["distractors_dir"].endswith("train") for r in crowded)
    for edit in EDITS:
        assert [r["recipe"] for r in copies if r.get("edit") == edit] == local, edit
    assert [r["recipe"] for r in copies if r["benchmark"] == "ukbench"] == local
    for row in grocery + crowded + copies:
        assert 0 <= row["ap@10"] <= row["hit@10"] <= 1 and 0 <= row["top1"] <= row["hit@10"] and 0 <= row["ns@4"] <= 4
        assert row["ms_per_query"] > row["search_ms"] > 0


def test_the_local_feature_scale_row_holds_10000_images_beside_a_global_recipe():
    result = json.loads((RESULTS / "local_scale_10k.json").read_text())
    rows = {r["recipe"]: r for r in result["rows"]}
    local = rows["lite0 + cosine + local features"]
    assert len(rows) == 2 and all(r["gallery_images"] >= 10_000 for r in rows.values())
    assert local["store_mb"] > 0 and local["kb_per_image"] > 0 and local["store_build_s"] > 0
    assert local["top1"] > rows["lite0 + regional GeM + whiten 0.5 + verify"]["top1"]


def test_duplicates_results_compare_with_imagededup_by_kind_of_copy_in_one_run():
    result = json.loads((RESULTS / "duplicates.json").read_text())
    rows = {r["method"].split(" (")[0]: r for r in result["rows"]}
    assert set(rows) == {"imgsearch duplicates", "imagededup PHash", "imagededup DHash"}
    kinds = {"exact", "resized 1/8", "quality 40", "cropped 10%", "rotated by EXIF", "HEIC to JPEG", "screenshot"}
    for row in rows.values():
        assert set(row["recall_by_kind"]) == kinds and row["seconds"] > 0
        assert row["recall"] == row["right_pairs"] / result["planted_pairs"]
        assert row["precision"] == row["right_pairs"] / max(1, row["found_pairs"])
    ours = rows["imgsearch duplicates"]
    assert ours["recall"] >= 0.98 and ours["precision"] >= 0.98  # the issue's bar (its speed bar is not met)


def test_photo_ingest_results_put_phone_photos_beside_small_images():
    small, phone = json.loads((RESULTS / "photo_ingest.json").read_text())["rows"]
    assert (small["folder"], phone["folder"]) == ("small images", "phone photos")
    assert phone["rate_vs_small"] == round(phone["images_per_s"] / small["images_per_s"], 3)
    for row in (small, phone):
        assert row["images"] > 0 and row["peak_mb"] > 0 and 0 < row["query_p50_ms"] <= row["query_p95_ms"]
        assert row["no_change_ingest_s"] < row["ingest_s"]


def test_photo_scale_results_cover_ingest_and_searches_of_20000_photos():
    """The file is written as the run goes (a run stopped in its duplicates step keeps the rest), so
    that step's figures are checked only when present."""
    [row] = json.loads((RESULTS / "photo_scale.json").read_text())["rows"]
    assert row["images"] >= 20_000 and row["skipped"] == 0
    assert row["images_per_s"] == round(row["images"] / row["ingest_s"], 1) and row["peak_mb"] > 0
    assert 0 < row["no_change_ingest_s"] < row["ingest_s"]
    for way in ("service_query", "api_query"):
        assert 0 < row[f"{way}_p50_ms"] <= row[f"{way}_p95_ms"]
    assert row["service_queries"] == row["api_queries"] == 50
    if "duplicates_s" in row:
        assert row["duplicates_s"] > 0 and row["duplicates_peak_mb"] > 0 and row["duplicate_groups"] >= 0


def test_milvus_commit_memory_rows_measure_the_commit_of_the_same_rows_both_ways():
    rows = json.loads((RESULTS / "milvus_commit_memory.json").read_text())["rows"]
    assert [row["how"].split()[0] for row in rows] == ["one", "flush"]
    for row in rows:
        assert row["rows"] >= 10_000 and row["vectors_mb"] == round(row["rows"] * row["dim"] * 4 / 2**20)
        assert row["peak_mb_before"] <= row["peak_mb_after_adds"] <= row["peak_mb_after_commit"]


def test_duplicate_steps_add_up():
    """duplicate_steps.json: the steps' seconds make the whole, and each step's count bounds the next."""
    result = json.loads((RESULTS / "duplicate_steps.json").read_text())
    [row], cpus = result["rows"], result["machine"]["cpus"]
    assert abs(sum(row["seconds"].values()) - row["total_s"]) <= 0.5
    assert row["embedded"] + row["from_cache"] <= row["images"]
    assert row["pairs_matched"] <= row["to_verify"] <= row["candidate_pairs"]
    assert row["images_matched"] <= row["embedded"] + row["from_cache"]
    for step, seconds in row["seconds"].items():  # a step keeps at most every core busy
        assert row["cpu_seconds"][step] <= cpus * seconds + 0.5, step
