"""Milvus through MilvusClient: a local path runs embedded Milvus Lite, an http(s) URI any server."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import is_milvus_lite
from ..errors import (
    DatabaseLockedError,
    DimensionMismatchError,
    EngineError,
    EngineUnavailableError,
    FilterError,
    ImgsearchError,
    brief,
)
from .base import as_matrix, check_fields, check_metric, metadata_columns
from .filters import Filter, quoted
from .params import BUILD_PARAMS, SEARCH_PARAMS, checked_params


def _import_pymilvus():
    """pymilvus reads MILVUS_URI when imported and refuses a local path; here a local path means
    Milvus Lite, so the variable is hidden from that import (our settings read it themselves)."""
    uri = os.environ.get("MILVUS_URI")
    if uri and is_milvus_lite(uri):
        del os.environ["MILVUS_URI"]
    try:
        import pymilvus
        import pymilvus.exceptions
    finally:
        if uri:
            os.environ["MILVUS_URI"] = uri
    return pymilvus


_pymilvus = _import_pymilvus()
DataType, MilvusClient, MilvusException = _pymilvus.DataType, _pymilvus.MilvusClient, _pymilvus.MilvusException

ID_FIELD, VECTOR_FIELD = "id", "embedding"
INSERT_ROWS = 512
INDEX_TIMEOUT_S = 3600  # the longest a commit waits for the server's index build
QUERY_ROWS = 4096  # ids per query, rows per iterator page
QUERY_LIMIT = 16_384  # the most rows one Milvus query returns
TEXT_BYTES = 4096  # VARCHAR length of text metadata (a path of a few hundred characters fits)
# pymilvus pings every 10 s even with no call in flight; Milvus Lite's in-process server answers
# a few idle minutes of that with GOAWAY "too_many_pings", printed to stderr (into notebooks).
# A local server needs no keepalive: ping rarely, and only during calls.
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 600_000, "grpc.keepalive_permit_without_calls": False}


class MilvusEngine:
    """One collection: id (INT64 primary key) + embedding (FLOAT_VECTOR) + one scalar field per
    metadata field (VARCHAR, INT64 or DOUBLE), which filtered searches read.

    `add` upserts by id, so ingesting the same images again replaces rows instead of duplicating
    them. Milvus builds an index only over flushed data, so `commit` flushes, then (re)builds the
    index when the requested one differs from what `describe_index` reports, then loads.
    """

    name = "milvus"

    def __init__(self, uri: str, collection: str = "reverse_image_search", index_type: str = "IVF_FLAT",
                 metric: str = "L2", build_params: dict | None = None, search_params: dict | None = None,
                 token: str = "", timeout: float = 10.0, fields: dict | None = None):
        self.uri, self.collection, self.timeout = str(uri), collection, timeout
        self.fields = check_fields(fields)
        self.index_type = index_type.upper()
        self.metric = check_metric(metric)
        self.build_params = checked_params(build_params, BUILD_PARAMS, self.index_type, "build")
        self.search_params = checked_params(search_params, SEARCH_PARAMS, self.index_type, "search")
        self.client = GuardedClient(connect(self.uri, token, timeout), self.uri)
        self._dim = self._existing_dim()
        self._dirty = False
        self._loaded = False
        self._hit_rows: dict[int, dict] = {}  # the last search's hits with their fields (`metadata` reads them)

    def __deepcopy__(self, memo):
        return self  # a handle on shared state (a model, a connection): Towhee copies operator args

    def _existing_dim(self) -> int | None:
        """The stored vectors' width (None: no collection yet), after checking it has our fields."""
        if not self.client.has_collection(self.collection):
            return None
        fields = self.client.describe_collection(self.collection)["fields"]
        missing = set(self.fields) - {f["name"] for f in fields}
        if missing:
            names = ", ".join(sorted(missing))
            raise EngineError(f"collection {self.collection!r} at {self.uri} has no field(s) {names} (made by an "
                              "older version?): drop it (imgsearch drop) and ingest again")
        return next(int(f["params"]["dim"]) for f in fields if f["name"] == VECTOR_FIELD)

    def _create(self, dim: int) -> None:
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        for name, kind in self.fields.items():
            types = {"str": DataType.VARCHAR, "int": DataType.INT64, "float": DataType.DOUBLE}
            schema.add_field(name, types[kind], **({"max_length": TEXT_BYTES} if kind == "str" else {}))
        self.client.create_collection(self.collection, schema=schema)
        self._dim = dim

    def ensure_collection(self, dim: int) -> None:
        """Create the collection now (writers in other processes then only upsert into it)."""
        if self._dim is None:
            self._create(dim)
        elif dim != self._dim:
            raise DimensionMismatchError(f"collection {self.collection!r} at {self.uri} stores {self._dim}-d "
                                         f"vectors, not {dim}-d (a different model?): drop it first")

    def add(self, ids, vectors, metadata=None) -> None:
        vectors = as_matrix(vectors)
        ids = np.asarray(ids, dtype=np.int64)
        columns = {name: column.tolist() for name, column in metadata_columns(self.fields, metadata, len(ids)).items()}
        if self._dim is None:
            self._create(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise DimensionMismatchError(
                f"collection {self.collection!r} at {self.uri} stores {self._dim}-d vectors, these are "
                f"{vectors.shape[1]}-d (a different model?). Use a fresh collection name, e.g. "
                f"'{self.collection}_{vectors.shape[1]}d', or drop the old collection."
            )
        for start in range(0, len(ids), INSERT_ROWS):
            end = min(start + INSERT_ROWS, len(ids))
            rows = [{ID_FIELD: int(ids[i]), VECTOR_FIELD: vectors[i].tolist(),
                     **{name: column[i] for name, column in columns.items()}} for i in range(start, end)]
            self.client.upsert(self.collection, rows)
        self._dirty = True
        self._hit_rows = {}

    def commit(self) -> None:
        if self._dim is None:
            return
        self.client.flush(self.collection)
        if self.describe_index() != self._wanted_index():
            self._rebuild_index()
        self.client.load_collection(self.collection)
        self._dirty = False
        self._loaded = True

    def _wanted_index(self) -> dict:
        return {"index_type": self.index_type, "metric_type": self.metric, "params": self.build_params}

    def describe_index(self) -> dict | None:
        """What the server reports for the vector index (None if there is none)."""
        if VECTOR_FIELD not in self.client.list_indexes(self.collection):
            return None
        info = self.client.describe_index(self.collection, VECTOR_FIELD)
        params = info.get("params", {k: v for k, v in info.items() if k in BUILD_PARAMS[self.index_type]})
        return {"index_type": info["index_type"], "metric_type": info["metric_type"],
                "params": {k: int(v) for k, v in params.items()}}

    def _rebuild_index(self) -> None:
        if VECTOR_FIELD in self.client.list_indexes(self.collection):
            self.client.release_collection(self.collection)
            self.client.drop_index(self.collection, VECTOR_FIELD)
        index = self.client.prepare_index_params()
        # Nested under "params": sent as one JSON value, the form Milvus Lite and servers both read.
        # Flat keyword params (nlist=...) are silently dropped by Milvus Lite.
        index.add_index(field_name=VECTOR_FIELD, index_type=self.index_type, metric_type=self.metric,
                        index_name=VECTOR_FIELD, params={"params": self.build_params})
        # pymilvus waits for the build by sleeping 0.5 s before each look: most of a commit's time
        # for a gallery of a thousand images. Ask without waiting and look more often instead.
        self.client.create_index(self.collection, index, sync=False)
        wait_for_index(self.client, self.collection)
        reported = self.describe_index()
        if reported != self._wanted_index():
            raise EngineError(f"Milvus reports index {reported}, but {self._wanted_index()} was requested")

    def search(self, vectors, k: int, where: str | None = None):
        """Top-k per query. An approximate index can return fewer hits than there are rows (IVF
        probes a few clusters; a filter empties some): such queries are searched again with every
        cluster probed (IVF) or a candidate list as long as the rows (HNSW), so a query gets
        min(k, rows the filter keeps) hits."""
        if self._dim is None:
            raise EngineError(f"collection {self.collection!r} is empty: add vectors before searching")
        queries = as_matrix(vectors, self._dim)
        self._ready()
        where = self._checked(where)
        hits = self._search(queries, k, where, self.search_params)
        short = [row for row, found in enumerate(hits) if len(found) < k]
        if short:
            expected = min(k, self.count(where))
            short = [row for row in short if len(hits[row]) < expected]
        if short:
            for row, found in zip(short, self._search(queries[short], k, where, self._exhaustive(expected))):
                hits[row] = found
        ids = np.full((len(queries), k), -1, np.int64)
        dists = np.full((len(queries), k), np.nan, np.float32)
        for row, found in enumerate(hits):
            ids[row, :len(found)] = [h["id"] for h in found]
            dists[row, :len(found)] = [h["distance"] for h in found]
        self._hit_rows = {int(h["id"]): h["entity"] for found in hits for h in found} if self.fields else {}
        return ids, dists

    def _search(self, queries: np.ndarray, k: int, where: str, params: dict) -> list[list[dict]]:
        # The hits' fields come back with them: whoever shows the hits (`metadata` next) needs no second call
        return list(self.client.search(self.collection, data=queries.tolist(), limit=k, anns_field=VECTOR_FIELD,
                                       filter=where, search_params={"metric_type": self.metric, "params": params},
                                       output_fields=list(self.fields)))

    def _exhaustive(self, rows: int) -> dict:
        """Search parameters that visit every candidate the index has."""
        if "nprobe" in self.search_params or self.index_type.startswith("IVF"):
            return {**self.search_params, "nprobe": int(self.build_params.get("nlist", 128))}
        if self.index_type.startswith("HNSW"):
            return {**self.search_params, "ef": max(self.search_params.get("ef", 0), rows, 64)}
        return self.search_params

    def fetch(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        wanted = sorted({i for i in ids.ravel().tolist() if i >= 0})
        found = {}
        for start in range(0, len(wanted), INSERT_ROWS):
            rows = self.client.get(self.collection, ids=wanted[start:start + INSERT_ROWS], output_fields=[VECTOR_FIELD])
            found.update((int(r[ID_FIELD]), r[VECTOR_FIELD]) for r in rows)
        zero = np.zeros(self._dim or 0, np.float32)
        rows = [found.get(i, zero) for i in ids.ravel().tolist()]
        return np.asarray(rows, np.float32).reshape(*ids.shape, self._dim or 0)

    def _is_loaded(self) -> bool:
        return str(self.client.get_load_state(self.collection).get("state")).endswith("Loaded")

    def _ready(self) -> None:
        """Searchable: committed and loaded (a restarted server has released every collection)."""
        if self._dirty or not (self._loaded or self._is_loaded()):
            self.commit()
        self._loaded = True  # asked once per engine: a load-state call per search costs ~2 ms

    def _checked(self, where: str | None) -> str:
        """`where` parsed here first (the same errors as the in-process engines), passed on as written."""
        return str(Filter(where, {ID_FIELD: "int", **self.fields})) if where else ""

    def metadata(self, ids=None) -> pd.DataFrame:
        columns = [ID_FIELD, *self.fields]
        if self._dim is None:
            return pd.DataFrame(columns=columns)
        self._ready()
        if ids is None:
            rows = self._all_rows(columns)
        else:
            wanted = sorted({int(i) for i in np.asarray(ids, np.int64).ravel() if i >= 0})
            if self.fields and all(i in self._hit_rows for i in wanted):  # the hits just found: no call
                return pd.DataFrame([{ID_FIELD: i, **self._hit_rows[i]} for i in wanted], columns=columns)
            rows = [row for start in range(0, len(wanted), QUERY_ROWS) for row in self.client.query(
                self.collection, filter=f"{ID_FIELD} in {wanted[start:start + QUERY_ROWS]}", output_fields=columns)]
        return pd.DataFrame([{name: row[name] for name in columns} for row in rows], columns=columns)

    def _all_rows(self, columns: list[str]) -> list[dict]:
        """Every row: one query while the collection fits in Milvus's query limit, else an iterator."""
        if self.count() <= QUERY_LIMIT:
            return self.client.query(self.collection, filter="", output_fields=columns,
                                     limit=QUERY_LIMIT)
        with ITERATOR_LOG.capture():  # Milvus Lite keeps no session timestamp: pymilvus warns, then uses its own
            pages, rows = self.client.query_iterator(self.collection, batch_size=QUERY_ROWS, output_fields=columns), []
        while page := pages.next():
            rows.extend(page)
        pages.close()
        return rows

    def delete(self, ids) -> None:
        wanted = [int(i) for i in np.asarray(ids, np.int64).ravel()]
        if self._dim is None or not wanted:
            return
        for start in range(0, len(wanted), INSERT_ROWS):
            self.client.delete(self.collection, ids=wanted[start:start + INSERT_ROWS])
        self._dirty = True
        self._hit_rows = {}

    def count(self, where: str | None = None) -> int:
        if self._dim is None:
            return 0
        self._ready()  # count(*) is a query, and queries need a loaded collection
        found = self.client.query(self.collection, filter=self._checked(where), output_fields=["count(*)"])
        return int(found[0]["count(*)"])

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        self._dim = None
        self._loaded = False
        self._hit_rows = {}

    def close(self) -> None:
        self.client.close()


def connect(uri: str, token: str = "", timeout: float = 10.0) -> MilvusClient:
    """Open a client, turning the usual failures into messages that say what to do."""
    is_lite = is_milvus_lite(uri)
    if is_lite:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    # dedicated: a channel of its own. pymilvus shares one per URI by default, and after a server
    # restart the shared one can stay broken for every client that reuses it.
    options = {"grpc_options": LITE_GRPC_OPTIONS} if is_lite else {}
    try:
        with LITE_START_LOG.capture() as logged:  # Lite logs a failed start as a 20-line traceback
            return MilvusClient(uri=uri, token=token, timeout=timeout, dedicated=True, **options)
    except MilvusException as exc:
        holder = lock_holder(Path(uri)) if is_lite else None
        if holder is not None and holder != os.getpid():
            raise DatabaseLockedError(f"Milvus Lite database {uri} is in use by another process (PID {holder}; only "
                                      f"one may open it). {what_to_do(holder)}") from None
        where = "Milvus Lite at" if is_lite else "Milvus server at"
        cause = next((brief(r.exc_info[1]) for r in logged if r.exc_info), exc.message or exc)  # why Lite failed
        raise EngineUnavailableError(f"cannot connect to {where} {uri}: {cause}") from None


def what_to_do(holder: int) -> str:
    """The advice for a locked database: a running `imgsearch serve` is asked through its API."""
    try:
        command = Path(f"/proc/{holder}/cmdline").read_bytes().split(b"\0")
    except OSError:
        command = []
    if any(part.endswith(b"imgsearch") for part in command) and b"serve" in command:
        port = command[command.index(b"--port") + 1].decode() if b"--port" in command[:-1] else "8000"
        return ("It is `imgsearch serve`: search through it while it runs (`curl -F file=@QUERY.jpg "
                f"http://127.0.0.1:{port}/api/search`, with -H 'Authorization: Bearer TOKEN' if it has a token), "
                "or stop it (Ctrl-C) and run the command again.")
    return "Shut down the other notebook kernel or app using it, or set MILVUS_URI to another path."


def stop_lite_servers(timeout: float = 10.0) -> None:
    """Stop this process's Milvus Lite servers and wait until they are down; call it last, once
    every client is closed, in a process about to exit (a command, not a notebook kernel).

    Milvus Lite serves each database from a gRPC server inside the process and stops it only in
    an atexit hook whose `stop()` does not wait. The stop is carried out by gRPC's daemon serving
    thread; when the interpreter finalizes first (likely on a busy machine), that thread is
    killed inside gRPC's native code, which can abort the process after the command has done its
    work ("terminate called without an active exception", exit -6 instead of the documented code).
    """
    module = sys.modules.get("milvus_lite.server_manager")  # imported by pymilvus for a local path only
    if module is None:
        return
    manager = module.server_manager_instance
    with manager._lock:  # no public stop-and-wait: take the servers over from its atexit hook
        servers = list(manager._servers.values())
        manager._servers.clear()
    serving = [t for t in threading.enumerate() if t.name.endswith("(_serve)")]  # gRPC's polling threads
    deadline = time.monotonic() + timeout
    for server, db, _port in servers:
        try:
            server.stop(grace=1).wait(timeout)
        finally:
            db.close()  # flushes and releases the database lock, as the atexit hook would
    for thread in serving:
        thread.join(max(0.0, deadline - time.monotonic()))


class GuardedClient:
    """A MilvusClient whose failures name the server and the call: an unreachable server is an
    EngineUnavailableError (in milliseconds, not a hang), anything else Milvus refuses an EngineError."""

    def __init__(self, client, uri: str):
        self._client, self._uri = client, uri

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            try:
                with RPC_ERROR_LOG.capture():  # pymilvus logs refusals, lost servers with tracebacks; ours names them
                    return attribute(*args, **kwargs)
            except MilvusException as exc:
                raise milvus_error(self._uri, name, exc, kwargs.get("filter")) from None
        return call


def milvus_error(uri: str, call: str, exc, where: str | None = None) -> ImgsearchError:
    """Our error for a refusal: the server is down, a filter it cannot parse (a usage error), or else."""
    message = getattr(exc, "message", None) or str(exc)
    if getattr(exc, "code", None) == 2 or "unavailable" in message.lower():
        return EngineUnavailableError(
            f"Milvus at {uri} is not answering ({call}): {message}. Start it (or check MILVUS_URI) and run "
            "again: ingest is idempotent, and rows already stored are kept.")
    if where and refuses_filter(exc, message):
        return FilterError(f"filter {quoted(where)}: Milvus at {uri} cannot parse it: {message.splitlines()[0]}")
    return EngineError(f"Milvus at {uri} refused {call}: {message}")


def refuses_filter(exc, message: str) -> bool:
    """A server's "cannot parse expression", or Milvus Lite's parse and type errors (code 6, with a column)."""
    return "cannot parse expression" in message or (getattr(exc, "code", None) == 6 and " at column " in message)


class ThreadLogCapture(logging.Filter):
    """Keeps library loggers' records from the terminal while this thread runs `capture()`: the
    caller raises one clear line instead. Other threads' records pass as usual."""

    def __init__(self, *loggers: str):
        super().__init__()
        self._local = threading.local()
        for name in loggers:
            logging.getLogger(name).addFilter(self)

    @contextmanager
    def capture(self):
        """Yields the list the records land in."""
        self._local.records = records = []
        try:
            yield records
        finally:
            self._local.records = None

    def filter(self, record: logging.LogRecord) -> bool:
        records = getattr(self._local, "records", None)
        if records is not None:
            records.append(record)
        return records is None


LITE_START_LOG = ThreadLogCapture("milvus_lite.server_manager")
RPC_ERROR_LOG = ThreadLogCapture("pymilvus.decorators", "pymilvus.client.connection_manager")
ITERATOR_LOG = ThreadLogCapture("pymilvus.client.iterator.query_iterator")


def lock_holder(db: Path) -> int | None:
    """The PID holding Milvus Lite's lock on `db` (None if it is free or the holder is unknown).

    Read from /proc/locks by the lock file's inode: a trial flock cannot tell another process
    from this one, since flock locks belong to open files, not processes.
    """
    try:
        inode = (db / "LOCK").stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()  # "1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF"
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            return int(fields[4])
    return None


logging.getLogger("grpc._server").setLevel(logging.CRITICAL)  # "Method not implemented!" noise from Lite


def wait_for_index(client, collection: str, timeout_s: float = INDEX_TIMEOUT_S) -> None:
    """Until the server reports the vector index of `collection` built: the first looks after
    milliseconds, then less and less often (a server's build over millions of rows takes minutes)."""
    deadline, pause = time.monotonic() + timeout_s, 0.005
    while True:
        info = client.describe_index(collection, VECTOR_FIELD)
        state = info.get("state", "Finished")  # a server that does not report it has built it
        if state == "Finished":
            return
        if state == "Failed":
            raise EngineError(f"Milvus failed to build the index of {collection!r}: "
                              f"{info.get('index_state_fail_reason') or 'no reason given'}")
        if time.monotonic() > deadline:
            raise EngineError(f"Milvus did not build the index of {collection!r} in {timeout_s:g} s")
        time.sleep(pause)
        pause = min(2 * pause, 0.5)
