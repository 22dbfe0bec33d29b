"""A Qdrant-compatible REST server for cw's tests, on Qdrant's own engine.

Every request body is parsed with the REST API's models from `qdrant_client.http.models`
(generated from Qdrant's OpenAPI specification, unknown fields forbidden), so a request the
real server would refuse for its shape is refused here too: 400 in Qdrant's error envelope
`{"status": {"error": ...}, "time": ...}`. What passes is executed on `qdrant_edge`, Qdrant's
storage and search engine embedded (one shard per collection), and answered in the real
envelope `{"result": ..., "status": "ok", "time": ...}`, built from the same models.

Only the endpoints cw uses are served (docs/ingest.md lists them); anything else is a 404
like the real server's for an unknown path. One lock serialises requests: the tests and the
benchmark want a faithful server, not a fast one.

    python server.py --port 6333 --data DIR [--api-key KEY]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pydantic
import qdrant_edge as edge
from qdrant_client.http import models as m

VERSION = "1.16.0-cw-test"
COLLECTION_NAME = re.compile(r"^[^/\\:*?\"<>|\x00]{1,255}$")


class ApiError(Exception):
    """An answer other than 200, with Qdrant's error text."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def wrong_input(message: str) -> ApiError:
    return ApiError(400, f"Wrong input: {message}")


def not_found(name: str) -> ApiError:
    return ApiError(404, f"Not found: Collection `{name}` doesn't exist!")


def parse(model, body: bytes):
    """The body as `model` (a pydantic class or a Union of them), or a 400 naming the problem
    as Qdrant's JSON extractor does."""
    try:
        return pydantic.TypeAdapter(model).validate_json(body or b"null")
    except pydantic.ValidationError as e:
        problems = "; ".join(
            f"{err.get('msg')} at `{'.'.join(str(p) for p in err.get('loc', ()))}`" for err in e.errors()[:4]
        )
        raise ApiError(400, f"Format error in JSON body: {problems} ({e.error_count()} errors)") from None


def dump(model_obj) -> object:
    return model_obj.model_dump(mode="json", exclude_none=True)


def point_id(raw):
    """Qdrant accepts unsigned integers and UUIDs (in any of the forms `uuid` parses)."""
    if isinstance(raw, bool):
        raise ApiError(400, "Format error in JSON body: point id must be an unsigned integer or a UUID")
    if isinstance(raw, int):
        if raw < 0:
            raise ApiError(400, f"Format error in JSON body: invalid point id {raw}: must be unsigned")
        return raw
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise ApiError(
            400, f"Format error in JSON body: Unable to parse UUID: {raw}"
        ) from None


def id_out(pid):
    return str(pid) if isinstance(pid, uuid.UUID) else pid


# ---------------------------------------------------------------------------------------------
# Conversion of the REST models to qdrant_edge's types
# ---------------------------------------------------------------------------------------------


def to_match(match):
    if isinstance(match, m.MatchValue):
        return edge.MatchValue(match.value)
    if isinstance(match, m.MatchAny):
        return edge.MatchAny(list(match.any))
    if isinstance(match, m.MatchExcept):
        return edge.MatchExcept(list(getattr(match, "except_")))
    raise ApiError(501, f"the test server does not implement match {type(match).__name__}")


def to_condition(c):
    if isinstance(c, m.Filter):
        return to_filter(c)
    if isinstance(c, m.FieldCondition):
        if c.match is None:
            raise ApiError(501, "the test server implements only `match` field conditions")
        try:
            return edge.FieldCondition(key=c.key, match=to_match(c.match))
        except Exception as e:  # an unparsable JSON path
            raise wrong_input(f"Bad request: {e}") from None
    if isinstance(c, m.HasIdCondition):
        return edge.HasIdCondition({point_id(i) for i in c.has_id})
    if isinstance(c, m.IsEmptyCondition):
        return edge.IsEmptyCondition(c.is_empty.key)
    if isinstance(c, m.IsNullCondition):
        return edge.IsNullCondition(c.is_null.key)
    raise ApiError(501, f"the test server does not implement condition {type(c).__name__}")


def to_filter(f):
    if f is None:
        return None
    if f.min_should is not None:
        raise ApiError(501, "the test server does not implement min_should")

    def conditions(part):
        if part is None:
            return None
        return [to_condition(c) for c in (part if isinstance(part, list) else [part])]

    return edge.Filter(must=conditions(f.must), should=conditions(f.should), must_not=conditions(f.must_not))


def to_with_payload(w, default):
    if w is None:
        return default
    if isinstance(w, (bool, list)):
        return w
    if isinstance(w, m.PayloadSelectorInclude):
        return edge.PayloadSelector.Include(list(w.include))
    if isinstance(w, m.PayloadSelectorExclude):
        return edge.PayloadSelector.Exclude(list(w.exclude))
    raise ApiError(501, f"the test server does not implement with_payload {type(w).__name__}")


def to_with_vector(w):
    if w is None:
        return False
    if isinstance(w, bool):
        return w
    raise ApiError(501, "the test server implements only with_vector true or false")


# ---------------------------------------------------------------------------------------------
# Collections: one qdrant_edge shard each, plus the collection's settings in a JSON file
# ---------------------------------------------------------------------------------------------


class Collection:
    def __init__(self, root: Path, settings: dict, shard):
        self.root = root
        self.settings = settings
        self.shard = shard

    @property
    def size(self) -> int:
        return self.settings["vectors"]["size"]

    def save(self):
        tmp = self.root / "collection.json.tmp"
        tmp.write_text(json.dumps(self.settings))
        tmp.replace(self.root / "collection.json")


class Storage:
    def __init__(self, data: Path):
        self.data = data
        self.data.mkdir(parents=True, exist_ok=True)
        self.collections: dict[str, Collection] = {}
        self.operation = 0
        for settings_file in sorted(self.data.glob("*/collection.json")):
            root = settings_file.parent
            settings = json.loads(settings_file.read_text())
            shard = edge.EdgeShard.load(str(root / "shard"))
            self.collections[settings["name"]] = Collection(root, settings, shard)

    def get(self, name: str) -> Collection:
        c = self.collections.get(name)
        if c is None:
            raise not_found(name)
        return c

    def next_operation(self) -> dict:
        self.operation += 1
        return dump(m.UpdateResult(operation_id=self.operation, status=m.UpdateStatus.COMPLETED))

    # --- collections ---------------------------------------------------------------------

    def list_collections(self):
        return dump(m.CollectionsResponse(collections=[m.CollectionDescription(name=n) for n in sorted(self.collections)]))

    def create_collection(self, name: str, body: bytes):
        req: m.CreateCollection = parse(m.CreateCollection, body)
        if not COLLECTION_NAME.match(name):
            raise wrong_input(f"Validation error in path parameters: [name: collection name {name!r} is not allowed]")
        if name in self.collections:
            raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
        if not isinstance(req.vectors, m.VectorParams):
            raise ApiError(501, "the test server implements only one unnamed dense vector per collection")
        if req.vectors.size < 1:
            raise wrong_input("Validation error in JSON body: [vectors.size: value 0 invalid, must be 1 or larger]")
        distance = {
            m.Distance.COSINE: edge.Distance.Cosine,
            m.Distance.EUCLID: edge.Distance.Euclid,
            m.Distance.DOT: edge.Distance.Dot,
            m.Distance.MANHATTAN: edge.Distance.Manhattan,
        }[req.vectors.distance]
        root = self.data / uuid.uuid4().hex
        shard = edge.EdgeShard.create(
            str(root / "shard"),
            edge.EdgeConfig(vectors=edge.EdgeVectorParams(size=req.vectors.size, distance=distance)),
        )
        settings = {
            "name": name,
            "vectors": {"size": req.vectors.size, "distance": req.vectors.distance.value},
            "metadata": req.metadata,
            "payload_schema": {},
            "created_at": datetime.now(timezone.utc).isoformat(),
            # One engine shard serves them all; the settings are kept and reported as asked.
            "distribution": {
                "shard_number": req.shard_number or 1,
                "replication_factor": req.replication_factor or 1,
                "write_consistency_factor": req.write_consistency_factor or 1,
            },
        }
        c = Collection(root, settings, shard)
        c.save()
        self.collections[name] = c
        return True

    def update_collection(self, name: str, body: bytes):
        req: m.UpdateCollection = parse(m.UpdateCollection, body)
        c = self.get(name)
        if req.metadata is not None:
            merged = dict(c.settings.get("metadata") or {})
            for k, v in req.metadata.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            c.settings["metadata"] = merged
            c.save()
        return True

    def delete_collection(self, name: str):
        c = self.collections.pop(name, None)
        if c is None:
            return False
        c.shard.close()
        shutil.rmtree(c.root, ignore_errors=True)
        return True

    def collection_info(self, name: str):
        c = self.get(name)
        info = c.shard.info()
        schema = {
            field: m.PayloadIndexInfo(data_type=m.PayloadSchemaType(kind), points=getattr(info.payload_schema.get(field), "points", 0))
            for field, kind in c.settings["payload_schema"].items()
        }
        return dump(
            m.CollectionInfo(
                status=m.CollectionStatus.GREEN,
                optimizer_status=m.OptimizersStatusOneOf.OK,
                points_count=info.points_count,
                indexed_vectors_count=info.indexed_vectors_count,
                segments_count=info.segments_count,
                config=m.CollectionConfig(
                    params=m.CollectionParams(
                        vectors=m.VectorParams(size=c.size, distance=m.Distance(c.settings["vectors"]["distance"])),
                        **c.settings.get("distribution", {"shard_number": 1, "replication_factor": 1, "write_consistency_factor": 1}),
                        on_disk_payload=True,
                    ),
                    hnsw_config=m.HnswConfig(m=16, ef_construct=100, full_scan_threshold=10000),
                    optimizer_config=m.OptimizersConfig(default_segment_number=0, flush_interval_sec=5),
                    wal_config=m.WalConfig(wal_capacity_mb=32, wal_segments_ahead=0),
                    metadata=c.settings.get("metadata"),
                ),
                payload_schema=schema,
                created_at=c.settings.get("created_at"),
            )
        )

    def create_index(self, name: str, body: bytes):
        req: m.CreateFieldIndex = parse(m.CreateFieldIndex, body)
        c = self.get(name)
        if not isinstance(req.field_schema, m.PayloadSchemaType):
            raise ApiError(501, "the test server implements only plain payload index types (e.g. \"keyword\")")
        kind = req.field_schema
        edge_kind = getattr(edge.PayloadSchemaType, kind.value.capitalize(), None)
        if edge_kind is None:
            raise ApiError(501, f"the test server does not implement {kind.value} indexes")
        try:
            c.shard.update(edge.UpdateOperation.create_field_index(req.field_name, edge_kind))
        except Exception as e:
            raise wrong_input(str(e)) from None
        c.settings["payload_schema"][req.field_name] = kind.value
        c.save()
        return self.next_operation()

    # --- points --------------------------------------------------------------------------

    def upsert(self, name: str, body: bytes):
        req = parse(m.PointInsertOperations, body)
        c = self.get(name)
        if not isinstance(req, m.PointsList):
            raise ApiError(501, "the test server implements only the points list form of upsert")
        if req.update_filter is not None or req.update_mode is not None or req.shard_key is not None:
            raise ApiError(501, "the test server does not implement update_filter, update_mode or shard_key")
        points = []
        for p in req.points:
            if not isinstance(p.vector, list) or (p.vector and not isinstance(p.vector[0], float)):
                raise wrong_input("Not existing vector name error: the collection has one unnamed dense vector")
            if len(p.vector) != c.size:
                raise wrong_input(f"Vector dimension error: expected dim: {c.size}, got {len(p.vector)}")
            points.append(edge.Point(id=point_id(p.id), vector=p.vector, payload=p.payload or {}))
        if points:
            c.shard.update(edge.UpdateOperation.upsert_points(points))
        return self.next_operation()

    def set_payload(self, name: str, body: bytes):
        req: m.SetPayload = parse(m.SetPayload, body)
        c = self.get(name)
        if req.filter is not None or req.shard_key is not None or req.key is not None:
            raise ApiError(501, "the test server implements only set_payload by point ids")
        ids = [point_id(i) for i in req.points or []]
        found = {str(r.id) for r in c.shard.retrieve(ids, with_payload=False, with_vector=False)}
        missing = [i for i in ids if str(i) not in found]
        if missing:
            raise ApiError(404, f"Not found: No point with id {missing[0]} found")
        if ids:
            c.shard.update(edge.UpdateOperation.set_payload(ids, req.payload))
        return self.next_operation()

    def delete_points(self, name: str, body: bytes):
        req = parse(m.PointsSelector, body)
        c = self.get(name)
        if isinstance(req, m.PointIdsList):
            ids = [point_id(i) for i in req.points]
            if ids:
                c.shard.update(edge.UpdateOperation.delete_points(ids))
        else:
            c.shard.update(edge.UpdateOperation.delete_points_by_filter(to_filter(req.filter)))
        return self.next_operation()

    def retrieve(self, name: str, body: bytes):
        req: m.PointRequest = parse(m.PointRequest, body)
        c = self.get(name)
        ids = [point_id(i) for i in req.ids]
        records = c.shard.retrieve(ids, with_payload=to_with_payload(req.with_payload, True), with_vector=to_with_vector(req.with_vector))
        return [dump(record_out(r)) for r in records]

    def scroll(self, name: str, body: bytes):
        req: m.ScrollRequest = parse(m.ScrollRequest, body or b"{}")
        c = self.get(name)
        if req.order_by is not None:
            raise ApiError(501, "the test server does not implement order_by")
        limit = 10 if req.limit is None else req.limit
        if limit < 1:
            raise wrong_input("Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]")
        records, next_offset = c.shard.scroll(
            edge.ScrollRequest(
                offset=None if req.offset is None else point_id(req.offset),
                limit=limit,
                filter=to_filter(req.filter),
                with_payload=to_with_payload(req.with_payload, True),
                with_vector=to_with_vector(req.with_vector),
            )
        )
        return dump(
            m.ScrollResult(
                points=[record_out(r) for r in records],
                next_page_offset=None if next_offset is None else id_out(next_offset),
            )
        )

    def query(self, name: str, body: bytes):
        req: m.QueryRequest = parse(m.QueryRequest, body)
        c = self.get(name)
        if req.prefetch is not None or req.using is not None or req.lookup_from is not None:
            raise ApiError(501, "the test server does not implement prefetch, using or lookup_from")
        query = req.query
        if isinstance(query, m.NearestQuery):
            query = query.nearest
        if not (isinstance(query, list) and query and isinstance(query[0], float)):
            raise ApiError(501, "the test server implements only nearest queries with a dense vector")
        if len(query) != c.size:
            raise wrong_input(f"Vector dimension error: expected dim: {c.size}, got {len(query)}")
        limit = 10 if req.limit is None else req.limit
        points = c.shard.query(
            edge.QueryRequest(
                limit=limit,
                offset=req.offset,
                query=edge.Query.Nearest(query),
                filter=to_filter(req.filter),
                with_payload=to_with_payload(req.with_payload, False),
                with_vector=to_with_vector(req.with_vector),
                score_threshold=req.score_threshold,
            )
        )
        return dump(
            m.QueryResponse(
                points=[
                    m.ScoredPoint(id=id_out(p.id), version=p.version, score=p.score, payload=p.payload, vector=p.vector)
                    for p in points
                ]
            )
        )

    def count(self, name: str, body: bytes):
        req: m.CountRequest = parse(m.CountRequest, body or b"{}")
        c = self.get(name)
        n = c.shard.count(edge.CountRequest(exact=True, filter=to_filter(req.filter)))
        return dump(m.CountResult(count=n))


def record_out(r) -> m.Record:
    return m.Record(id=id_out(r.id), payload=r.payload, vector=r.vector)


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", r"/collections", lambda s, body: s.list_collections()),
    ("GET", r"/collections/(?P<name>[^/]+)", lambda s, body, name: s.collection_info(name)),
    ("PUT", r"/collections/(?P<name>[^/]+)", lambda s, body, name: s.create_collection(name, body)),
    ("PATCH", r"/collections/(?P<name>[^/]+)", lambda s, body, name: s.update_collection(name, body)),
    ("DELETE", r"/collections/(?P<name>[^/]+)", lambda s, body, name: s.delete_collection(name)),
    ("PUT", r"/collections/(?P<name>[^/]+)/index", lambda s, body, name: s.create_index(name, body)),
    ("PUT", r"/collections/(?P<name>[^/]+)/points", lambda s, body, name: s.upsert(name, body)),
    ("POST", r"/collections/(?P<name>[^/]+)/points", lambda s, body, name: s.retrieve(name, body)),
    ("POST", r"/collections/(?P<name>[^/]+)/points/payload", lambda s, body, name: s.set_payload(name, body)),
    ("POST", r"/collections/(?P<name>[^/]+)/points/delete", lambda s, body, name: s.delete_points(name, body)),
    ("POST", r"/collections/(?P<name>[^/]+)/points/scroll", lambda s, body, name: s.scroll(name, body)),
    ("POST", r"/collections/(?P<name>[^/]+)/points/query", lambda s, body, name: s.query(name, body)),
    ("POST", r"/collections/(?P<name>[^/]+)/points/count", lambda s, body, name: s.count(name, body)),
]
COMPILED = [(method, re.compile(f"^{path}$"), handler) for method, path, handler in ROUTES]
# Probes answer without the API key, as Qdrant's do.
PROBES = {"/healthz": "healthz check passed", "/livez": "healthz check passed", "/readyz": "all shards are ready"}
# Query parameters the served endpoints take; another one is refused like an unknown field.
QUERY_PARAMS = {"wait", "ordering", "timeout", "consistency"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qdrant-test"

    def log_message(self, fmt, *args):  # quiet: the launcher keeps stderr for failures
        pass

    def do_GET(self):
        self.handle_any("GET")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, method: str):
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if method == "GET" and path in PROBES:
            return self.send(200, PROBES[path].encode(), "text/plain")
        if method == "GET" and path == "/":
            return self.send_json(200, {"title": "qdrant - vector search engine", "version": VERSION})
        try:
            self.check_api_key()
            unknown = set(parse_qs(url.query)) - QUERY_PARAMS
            if unknown:
                raise ApiError(400, f"Query deserialize error: unknown field `{sorted(unknown)[0]}`")
            for want_method, pattern, handler in COMPILED:
                found = pattern.match(path)
                if found and want_method == method:
                    args = {k: unquote(v) for k, v in found.groupdict().items()}
                    if body and self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                        raise ApiError(400, "Content type error: expected application/json")
                    with self.server.lock:
                        result = handler(self.server.storage, body, **args)
                    return self.send_json(200, {"result": result, "status": "ok", "time": time.perf_counter() - started})
            raise ApiError(404, f"no route for {method} {path}")
        except ApiError as e:
            self.send_json(e.status, {"status": {"error": e.message}, "time": time.perf_counter() - started})
        except Exception as e:  # the engine refused: Qdrant answers such errors as service errors
            self.send_json(500, {"status": {"error": f"Service internal error: {e}"}, "time": time.perf_counter() - started})

    def check_api_key(self):
        key = self.server.api_key
        if key is None:
            return
        given = self.headers.get("api-key")
        auth = self.headers.get("Authorization", "")
        if given is None and auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        if given is None:
            raise ApiError(401, "Must provide an API key or an Authorization bearer token")
        if given != key:
            raise ApiError(403, "Invalid API key or JWT")

    def send_json(self, status: int, obj):
        self.send(status, json.dumps(obj).encode(), "application/json")

    def send(self, status: int, payload: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, storage: Storage, api_key: str | None):
        super().__init__(address, Handler)
        self.storage = storage
        self.api_key = api_key
        self.lock = threading.Lock()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", required=True, help="directory of the collections (kept across restarts)")
    ap.add_argument("--api-key", default=None, help="require this key in the api-key header")
    args = ap.parse_args()
    server = Server((args.host, args.port), Storage(Path(args.data)), args.api_key)
    print(f"qdrant test server on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
