"""The target registry, and its extension point: a fourth API added from outside the package
tree (one class over the load kit, registered by name) goes through import, export and
delete exactly as the built-in ones do, over real HTTP to a small fake server."""

from __future__ import annotations

import csv
import itertools
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contactpipe.errors import UsageError
from contactpipe.load import config as cfg
from contactpipe.load import registry
from contactpipe.load.base import (
    LOADED,
    ExportFilters,
    LoadOptions,
    LoadResult,
    PlanLine,
    Target,
    TargetConfig,
    batches,
    build_entries,
    write_request_files,
)
from contactpipe.load.client import ApiClient, encode_json
from contactpipe.load.kit.lookup import Directory, Listing
from contactpipe.load.kit.paging import Page, more_pages, numbered_pages
from contactpipe.load.kit.phones import norm_phone
from contactpipe.load.kit.steps import DELETED, GONE, delete_each, delete_template, send_batches
from contactpipe.load.kit.timing import Rate, Step, timed
from contactpipe.load.ratelimit import SlidingWindow
from contactpipe.run import ImportOptions, RunOptions, delete_files, export_contacts, import_files

TOKEN = "tiny-secret-token"


# -- the fake API: upsert in batches, page/limit listing, delete one ------------------------
class TinyApi:
    def __init__(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.requests: list[str] = []

    def app(self) -> Starlette:
        def authorised(request: Request) -> bool:
            self.requests.append(f"{request.method} {request.url.path}")
            return request.headers.get("authorization") == f"Bearer {TOKEN}"

        async def batch(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorised"}, 401)
            created = updated = 0
            by_phone = {c["phone"]: c for c in self.contacts.values()}
            for entry in (await request.json())["contacts"]:
                if entry["phone"] in by_phone:
                    by_phone[entry["phone"]].update(entry)
                    updated += 1
                else:
                    cid = f"t{next(self.ids)}"
                    self.contacts[cid] = {"id": cid, **entry}
                    created += 1
            return JSONResponse({"created": created, "updated": updated})

        async def listing(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorised"}, 401)
            page, size = int(request.query_params["page"]), int(request.query_params["limit"])
            items = list(self.contacts.values())[(page - 1) * size : page * size]
            total = len(self.contacts)
            return JSONResponse({"items": items, "total": total, "has_more": page * size < total})

        async def one(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorised"}, 401)
            cid = request.path_params["cid"]
            if cid not in self.contacts:
                return JSONResponse({"error": "not found"}, 404)
            if request.method == "DELETE":
                del self.contacts[cid]
                return Response(status_code=204)
            return JSONResponse(self.contacts[cid])

        return Starlette(
            routes=[
                Route("/contacts/batch", batch, methods=["POST"]),
                Route("/contacts", listing, methods=["GET"]),
                Route("/contacts/{cid}", one, methods=["GET", "DELETE"]),
            ]
        )


@pytest.fixture
def tiny_server() -> Iterator[tuple[TinyApi, str]]:
    api = TinyApi()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(api.app(), lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.005)
    try:
        yield api, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- the fourth target: ~100 lines over the kit ---------------------------------------------
INFO = registry.TargetInfo(
    name="tiny",
    title="Tiny",
    module=__name__,
    credentials=("TINY_TOKEN",),
    base_url_var="TINY_BASE_URL",
    capabilities=frozenset({"bulk_upsert", "export", "delete"}),
)
PAGE = 50


class Tiny(Target):
    name, title, capabilities = INFO.name, INFO.title, INFO.capabilities
    rate = Rate(50, 1.0)
    fields: ClassVar[dict[str, Any]] = {"fields": {"phone": "phone", "name": "name"}}

    @classmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        url = cfg.base_url(base_url, env, INFO.base_url_var, None, cls.title)
        token = cfg.require(env, "TINY_TOKEN", cls.title)
        return TargetConfig(url, {"Authorization": f"Bearer {token}"}, secrets=(token,))

    def client(self) -> ApiClient:
        if self._client is None:
            self._client = self.new_client(SlidingWindow(self.rate.limit, self.rate.window_s))
        return self._client

    def _bodies(self, contacts: pl.DataFrame) -> list[tuple[range, bytes]]:
        entries = build_entries(contacts, self.fmap)
        return [
            (rows, encode_json({"contacts": entries[rows.start : rows.stop]}))
            for rows in batches(contacts.height, self.options.batch_size)
        ]

    def plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        n = contacts.height
        step = Step("POST /contacts/batch", -(-n // self.options.batch_size), n)
        return timed(self.rate, [step])

    def dry_run(self, contacts: pl.DataFrame, directory: Path) -> list[Path]:
        bodies = (body for _, body in self._bodies(contacts))
        return write_request_files(directory, "tiny-{:04d}.json", bodies)

    def load(self, contacts: pl.DataFrame) -> LoadResult:
        result = self.new_result(contacts.height)

        def send(k: int, rows: Sequence[int], body: bytes) -> int:
            resp = self.client().request(
                "POST", "/contacts/batch", content=body, content_type="application/json"
            )
            counts = resp.json()
            result.mark(rows, LOADED)
            result.add_bulk_counts(counts["created"], counts["updated"], 0)
            return len(rows)

        send_batches(self, self._bodies(contacts), send, result, "tiny import")
        return result

    def _pages(self) -> Iterator[Page]:
        def fetch(page: int) -> Page:
            body = self.client().request("GET", "/contacts", params={"page": page, "limit": PAGE})
            return body.json()["items"], body.json()

        def more(page: int, answer: Page) -> bool:
            return more_pages(page, PAGE, len(answer[0]), answer[1])

        return numbered_pages(fetch, more, lambda item: item["id"], "Tiny listing")

    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        total = self.client().request("GET", "/contacts", params={"page": 1, "limit": 1})
        n = total.json()["total"]
        return timed(self.rate, [Step("GET /contacts", -(-n // PAGE) or 1, n)], before=1)

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        if filters != ExportFilters() or with_groups:
            raise UsageError("Tiny exports everything, without filters or groups")
        for items, _ in self._pages():
            yield [{"id": x["id"], "phone": x["phone"], "name": x.get("name")} for x in items]

    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        def listing() -> Listing:
            for k, (items, body) in enumerate(self._pages()):
                left = -(-body["total"] // PAGE) - 1 if k == 0 else None
                yield [(x["id"], norm_phone(x["phone"])) for x in items], left

        def delete_one(cid: str) -> str:
            try:
                self.client().request("DELETE", f"/contacts/{cid}")
            except Exception as exc:
                if getattr(exc, "status", None) == 404:
                    return GONE
                raise
            return DELETED

        def exists(cid: str) -> bool:
            return cid in {c for items, _ in listing() for c, _ in items}

        directory = Directory(self.title, listing, lambda phone: [], exists, unique_phones=True)
        write = lambda by_id, result: delete_each(self, by_id, delete_one, result)  # noqa: E731
        return delete_template(self, contacts, directory, write, dry_run=dry_run, limit=limit)

    def delete_plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        n = contacts.height
        return timed(self.rate, [Step("GET /contacts", 1, n), Step("DELETE /contacts/{id}", n, n)])


TARGET = Tiny


@pytest.fixture
def tiny(tiny_server: tuple[TinyApi, str]) -> Iterator[tuple[TinyApi, dict[str, str]]]:
    registry.register(INFO)  # the class comes from INFO.module on first use, like a package's
    try:
        api, url = tiny_server
        yield api, {"TINY_TOKEN": TOKEN, "TINY_BASE_URL": url}
    finally:
        registry.unregister("tiny")


def contacts_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "in.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "phone"])
        w.writerows([f"Client {i}", f"+3361234{i:04d}"] for i in range(n))
        w.writerow(["No phone", ""])
    return path


def test_a_registered_target_imports_exports_and_deletes(
    tiny: tuple[TinyApi, dict[str, str]], tmp_path: Path
) -> None:
    api, env = tiny
    assert "tiny" in registry.names() and registry.info("tiny").can("delete")
    assert registry.get("tiny") is Tiny
    imp = ImportOptions(target="tiny", env=env, load=LoadOptions(batch_size=40))
    src = contacts_file(tmp_path, 120)

    result = import_files([str(src)], RunOptions(), imp, tmp_path / "import")
    load = result.summary["load"]
    assert (load["target"], load["loaded"], load["failed"]) == ("tiny", 120, 0)
    assert [line["requests"] for line in load["plan"]] == [3]
    assert sorted(c["phone"] for c in api.contacts.values()) == [
        f"+3361234{i:04d}" for i in range(120)
    ]
    assert api.requests.count("POST /contacts/batch") == 3

    summary = export_contacts(imp, tmp_path / "out.csv", ExportFilters())
    assert summary["rows"] == 120 and summary["plan"][0]["requests"] == 3
    exported = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert set(exported["id"]) == set(api.contacts)

    doomed = tmp_path / "doomed.csv"
    doomed.write_text("phone,name\n+33612340001,a\n+33612340002,b\n+33699999999,c\n")
    gone = delete_files([str(doomed)], RunOptions(), imp, tmp_path / "delete")
    part = gone.summary["delete"]
    assert (part["loaded"], part["not_found"], part["plan"][1]["requests"]) == (2, 1, 3)
    assert len(api.contacts) == 118


def test_unknown_names_and_builtin_names() -> None:
    with pytest.raises(UsageError, match="unknown target 'nope'") as info:
        registry.info("nope")
    assert info.value.hint is not None and "msgflash" in info.value.hint
    with pytest.raises(ValueError, match="built-in"):
        registry.register(registry.TargetInfo("waapi", "W", "x", (), "W_URL"))
    for meta in registry.infos():  # every built-in says what it needs, cheaply
        assert meta.credentials and meta.base_url_var.endswith("_BASE_URL")
        assert meta.module.startswith(f"contactpipe.load.targets.{meta.name}.")
        assert registry.get(meta.name).name == meta.name


def test_every_target_says_which_variable_is_its_secret_and_which_its_account() -> None:
    """What a scheduler's connection form maps its password and login onto."""
    reg = registry
    for meta in reg.infos():
        assert meta.secret in meta.credentials, meta.name
        assert meta.account in (*meta.credentials, *meta.optional), meta.name
        assert meta.account != meta.secret
        assert set(meta.labels) <= {*meta.credentials, *meta.optional, meta.base_url_var}
    with pytest.raises(ValueError, match="not among its variables"):
        reg.TargetInfo(
            name="x",
            title="X",
            module="m",
            credentials=("X_KEY",),
            base_url_var="X_URL",
            secret="X_TOKEN",
        )


def test_api_account_is_the_sync_states_account_without_a_secret(server) -> None:
    import contactpipe.api as api
    from contactpipe.demo import sandbox_env
    from contactpipe.load.kit.state import fingerprint

    get = registry.get
    env = sandbox_env(server)
    for name in ("msgflash", "waapi", "vobiz"):
        found = api.account(name, credentials=env)
        target = get(name)(get(name).config_from_env(env, None), LoadOptions())
        try:
            assert (found.key, found.label) == fingerprint(target)
        finally:
            target.close()
        assert all(v not in found.label for v in target.config.secrets)
    other = dict(env, WAAPI_PHONE_ID="another-phone")
    assert api.account("waapi", credentials=other).key != api.account("waapi", credentials=env).key
