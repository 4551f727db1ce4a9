"""Ingest on Ray (a local Ray with 2 CPUs) into the Milvus server: the same collection as the
single-process ingest, and exact after an embedding actor is killed or the driver stops midway."""
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import ray
from commands import imgsearch

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.folders import FIELDS
from imgsearch_helpers.errors import UsageError
from imgsearch_helpers.gallery.service import SearchService
from imgsearch_helpers.scaleout import RayRunner
from imgsearch_helpers.scaleout.ray_ingest import STARTUP_TRIES, ingest_with_ray, start_ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, seeded_cache):
    """One cache for the module, holding the model's export; each test uses its own collection."""
    return seeded_cache(tmp_path_factory.mktemp("ray-cache"))


def server_service(milvus_server, cache_dir, gallery="dataset") -> SearchService:
    settings = get_settings(slice="tiny", cache_dir=cache_dir, milvus_uri=milvus_server.uri)
    return SearchService(gallery=gallery, settings=settings)


def all_rows(service: SearchService):
    rows = service.engine.metadata().sort_values("id").reset_index(drop=True)
    return rows, service.engine.fetch(rows["id"].to_numpy())


def actor_pids() -> list[int]:
    """The embedding actors of this test's Ray, found by the process title Ray gives them."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0] if entry.name.isdigit() else b""
            if title.startswith(b"ray::MapWorker(") and b"EmbedWriter" in title:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_ray_ingest_stores_what_the_single_process_ingest_stores_even_when_an_actor_dies(
        local_ray, milvus_server, cache_dir, tmp_path):
    """Ray as the build's runner, with an embedding actor killed mid-run: the same rows, metadata
    and vectors as the single-process build, every image once; a rerun has nothing to do."""
    single = SearchService(gallery="dataset", settings=get_settings(slice="tiny", cache_dir=tmp_path / "lite"))
    single.build(fresh=True, progress=False)
    expected, expected_vectors = all_rows(single)
    single.close()

    service = server_service(milvus_server, cache_dir)
    killed = []

    def kill_one_actor(done: int) -> None:
        if not killed and done >= 16:
            os.kill(actor_pids()[0], signal.SIGKILL)  # raises if no actor is running
            killed.append(done)

    runner = RayRunner(service.model_name, service.settings, use_cache=False, batch_size=8,
                       on_progress=kill_one_actor)
    report = service.build(fresh=True, progress=False, runner=runner)
    assert killed and killed[0] < 100  # the actor died mid-run
    rows, vectors = all_rows(service)
    assert report.counts()["added"] == 100 and report.ingest.embed.embedded == 100 and report.rows == 100
    assert rows["id"].tolist() == expected["id"].tolist() and rows["id"].is_unique  # every image once
    for name in FIELDS:  # the same metadata, field by field
        assert rows[name].tolist() == expected[name].tolist(), name
    cosines = np.sum(vectors * expected_vectors, axis=1)  # both sides are unit vectors
    assert cosines.min() >= 0.999, cosines.min()
    assert service.registry.get(service.collection).rows == 100

    again = ingest_with_ray(service, progress=False)  # nothing changed: nothing to do (the same build, in one call)
    assert again.ingest is None and again.counts()["unchanged"] == 100 and again.rows == 100
    service.engine.drop()
    service.close()


class DriverStopped(Exception):
    pass


def test_a_rerun_after_the_driver_stopped_only_embeds_what_is_missing(local_ray, milvus_server, cache_dir):
    service = server_service(milvus_server, cache_dir)

    def stop_driver(done: int) -> None:
        if done >= 40:
            raise DriverStopped

    with pytest.raises(DriverStopped):
        ingest_with_ray(service, fresh=True, use_cache=False, batch_size=8, progress=False, on_progress=stop_driver)
    service.close()

    service = server_service(milvus_server, cache_dir)  # a new driver
    report = ingest_with_ray(service, use_cache=False, batch_size=8, progress=False)
    counts = report.counts()
    assert 0 < counts["added"] <= 60 and counts["unchanged"] >= 40  # the rows stored before the stop stay
    ids = service.engine.metadata()["id"].tolist()
    assert service.engine.count() == 100 and sorted(ids) == sorted(service.scan()["id"].tolist())
    assert len(set(ids)) == 100
    service.engine.drop()
    service.close()


def test_ray_ingest_refuses_milvus_lite(tmp_path):
    service = SearchService(gallery="dataset", settings=get_settings(slice="tiny", cache_dir=tmp_path))
    with pytest.raises(UsageError, match="needs a Milvus server"):
        ingest_with_ray(service)
    service.close()


def test_the_command_ingests_a_manifest_and_reports_bad_files(local_ray, milvus_server, cache_dir, tmp_path,
                                                               real_dataset):
    """`imgsearch ingest --ray --manifest`: the listed photos in, the bad files named. The command
    joins the module's running Ray through RAY_ADDRESS, as a command run on a cluster's head does.
    (What a rerun does with deleted files is the build's, whichever runner embeds: test_service.py.)"""
    photos = tmp_path / "photos"
    for source in sorted((real_dataset / "train").glob("*/*.JPEG"))[:12]:
        (photos / source.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, photos / source.parent.name / source.name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "empty.png").write_bytes(b"")
    manifest = tmp_path / "files.txt"
    manifest.write_text("\n".join(str(p.relative_to(photos)) for p in sorted(photos.rglob("*.*"))) + "\n")
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(cache_dir), "MILVUS_URI": milvus_server.uri,
           "RAY_ADDRESS": ray.get_runtime_context().gcs_address}

    done = imgsearch(env, "ingest", str(photos), "--ray", "--manifest", str(manifest), "--json", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["added"] == 12 and result["rows"] == 12
    assert sorted(Path(s.split(":")[0]).name for s in result["skipped"]) == ["broken.jpg", "empty.png"]
    assert imgsearch(env, "drop", str(photos)).returncode == 0


def test_the_command_explains_that_ray_needs_a_milvus_server(tmp_path, real_dataset):
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(tmp_path), "IMGSEARCH_SLICE": "tiny"}
    env.pop("MILVUS_URI", None)
    done = imgsearch(env, "ingest", "--ray", "--quiet")
    assert done.returncode == 2 and "needs a Milvus server" in done.stderr


class SlowStartRay:
    """Stands in for the `ray` module at `ray.init`: Ray's start-up timeout cannot be caused on demand."""

    def __init__(self, failures: int, message: str = "The current node timed out during startup. This could happen"):
        self.failures, self.message, self.inits, self.shutdowns = failures, message, 0, 0

    def init(self, **options):
        self.inits += 1
        if self.inits <= self.failures:
            raise Exception(self.message)

    def shutdown(self):
        self.shutdowns += 1


def test_a_local_ray_that_misses_its_start_up_wait_is_started_once_more():
    ray = SlowStartRay(failures=1)
    start_ray(ray, None)
    assert (ray.inits, ray.shutdowns) == (2, 1)
    twice = SlowStartRay(failures=2)
    with pytest.raises(Exception, match="timed out during startup"):
        start_ray(twice, None)
    assert twice.inits == STARTUP_TRIES
    other = SlowStartRay(failures=1, message="address in use")
    with pytest.raises(Exception, match="address in use"):
        start_ray(other, None)
    assert other.inits == 1
