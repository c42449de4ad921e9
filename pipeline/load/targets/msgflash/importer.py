"""MsgFlash import, a record importer: list the workspace once, create the new contacts and
update the changed ones one request each (``--concurrency`` in flight under the shared
10 req/s limiter), then add the loaded contacts to their groups in batches (bulk jobs
followed to their end)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import polars as pl

from contactpipe.errors import RemoteError, TerminalRemoteError

from ...base import (
    CREATED,
    UNCHANGED,
    UPDATED,
    LoadResult,
    PlanLine,
    batches,
    build_entries,
    not_carried,
    write_request_files,
)
from ...client import ApiRefused, encode_json
from ...kit.phones import norm_phone
from ...kit.pool import Ticker, run_pool
from ...kit.timing import Step, timed
from .core import (
    CONTACTS,
    GROUPS,
    JOBS,
    LIST_PARAMS,
    _data,
    group_rows,
    log,
)
from .group_load import MsgFlashGroupLoader


class _Known(NamedTuple):
    """A contact already in the workspace."""

    id: str
    name: str
    tags: list[str]


class MsgFlashImporter(MsgFlashGroupLoader):
    _ids: list[str | None]
    """Row -> contact id, once known."""
    _entries: list[dict[str, Any]]
    """Row -> request body."""
    _groups_left: dict[int, int]
    """Row -> groups whose add is not confirmed yet."""

    # -- plan and dry run --------------------------------------------------------------
    def plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        """Upper bounds, assuming no contact and no group exists yet; one listing request
        at least (one per 100 contacts already in the workspace)."""
        n = contacts.height
        note = "at least 1: one request per 100 contacts already in the workspace"
        listing = Step(f"GET {CONTACTS}", 1, 0, note)
        steps = [
            *([listing] if self.state_known is None else []),
            Step(
                f"POST {CONTACTS}",
                n,
                n,
                "upper bound: existing contacts are updated or skipped instead",
            ),
        ]
        groups = group_rows(contacts)
        if groups:
            size = self._member_batch()
            members = sum(len(rows) for _, rows in groups.values())
            member_requests = sum(-(-len(rows) // size) for _, rows in groups.values())
            jobs = sum(
                len(rows) // size + (len(rows) % size >= self.ASYNC_THRESHOLD)
                if size >= self.ASYNC_THRESHOLD
                else 0
                for _, rows in groups.values()
            )
            steps += [
                Step(f"GET {GROUPS}", 1, 0, "at least 1: one per 100 groups"),
                Step(
                    f"POST {GROUPS}",
                    len(groups),
                    len(groups),
                    "upper bound: existing groups (same name, any case) are reused",
                ),
                Step(
                    f"POST {GROUPS}/{{groupId}}/members",
                    member_requests,
                    members,
                    f"batches of at most {size:,} ids; 100 or more run as a bulk job",
                ),
            ]
            if jobs:
                steps.append(
                    Step(
                        f"GET {JOBS}/{{jobId}}/progress",
                        jobs,
                        jobs,
                        f"at least 1 per bulk job, then one every "
                        f"{self.options.poll_interval_s:g} s until it ends",
                    )
                )
        return timed(self.rate, steps)

    def dry_run(self, contacts: pl.DataFrame, directory: Path) -> list[Path]:
        """Write ``msgflash-contacts-0001.ndjson``...: one ``POST /api/v1/contacts`` body per
        line, exactly the bytes sent (``--batch-size`` lines per file); an existing contact
        gets the same body through ``PUT /api/v1/contacts/{id}``.  With groups, also
        ``msgflash-groups.json``: group name -> member phones.  The member request bodies
        themselves (``{"contactIds": [...]}``) cannot be written: the ids only exist once
        the contacts are created."""
        if contacts.height == 0:
            return []
        entries = build_entries(contacts, self.fmap)
        bodies = (
            b"".join(encode_json(entries[i]) + b"\n" for i in rows)
            for rows in batches(len(entries), self.options.batch_size)
        )
        files = write_request_files(directory, "msgflash-contacts-{:04d}.ndjson", bodies)
        groups = group_rows(contacts)
        if groups:
            phones = contacts.get_column("phone").to_list()
            doc = {
                name: list(dict.fromkeys(p for i in rows if (p := phones[i])))
                for name, rows in groups.values()
            }
            path = directory / "msgflash-groups.json"
            path.write_bytes(encode_json(doc) + b"\n")
            files.append(path)
        return files

    # -- load --------------------------------------------------------------------------
    def load(self, contacts: pl.DataFrame) -> LoadResult:
        n = contacts.height
        result = self.new_result(n)
        result.not_carried = not_carried(
            contacts, {*self.fmap["fields"], *self.fmap.get("extras", ()), "groups"}
        )
        seconds = dict.fromkeys(("list", "create", "update", "groups"), 0.0)
        result.seconds = seconds
        if n == 0:
            return result
        self._api()
        self._limiter.stop.clear()
        self._lock = threading.Lock()
        self._ids = [None] * n
        self._entries = build_entries(contacts, self.fmap)
        groups = group_rows(contacts)
        self._groups_left = {}
        for _, rows in groups.values():
            for i in rows:
                self._groups_left[i] = self._groups_left.get(i, 0) + 1
        phase = "list"
        started = time.perf_counter()
        try:
            if self.state_known is None:
                known = self._list_contacts()
            else:  # the sync state answers: no listing; these exist and changed
                known = {p: _Known(cid, "\0", []) for p, cid in self.state_known.items() if cid}
            seconds["list"] = time.perf_counter() - started

            phase, started = "create", time.perf_counter()
            phones = [norm_phone(p) for p in contacts.get_column("phone").to_list()]
            to_create = [i for i in range(n) if known.get(phones[i] or "") is None]
            self._each(to_create, "create", lambda i: self._create(i, phones[i]))
            seconds["create"] = time.perf_counter() - started

            phase, started = "update", time.perf_counter()
            to_update: dict[int, _Known] = {}
            for i in range(n):
                k = known.get(phones[i] or "")
                if k is None:
                    continue
                self._ids[i] = k.id
                if same(self._entries[i], k.name, k.tags):
                    result.mark([i], UNCHANGED)
                else:
                    to_update[i] = k
            self._each(
                list(to_update),
                "update",
                lambda i: self._update(i, to_update[i].id, phones[i], create_if_missing=True),
            )
            seconds["update"] = time.perf_counter() - started

            phase, started = "groups", time.perf_counter()
            self._load_groups(groups, result)
            seconds["groups"] = time.perf_counter() - started
        except (RemoteError, ApiRefused) as exc:  # a refused listing or poll: no row to blame
            seconds[phase] = time.perf_counter() - started
            error = (
                exc
                if isinstance(exc, RemoteError)
                else RemoteError(f"MsgFlash refused a request the load needs ({exc})")
            )
            self._fail_unconfirmed_groups(result, error.message)
            result.abort(error)
        except KeyboardInterrupt:
            self._fail_unconfirmed_groups(result, "the run was interrupted")
            raise
        finally:
            for step in seconds:
                seconds[step] = round(seconds[step], 3)
            result.ids.update((i, cid) for i, cid in enumerate(self._ids) if cid)
        return result

    def _each(self, rows: list[int], what: str, work: Callable[[int], None]) -> None:
        """``work(i)`` for every row in the pool; a refusal fails that row, a remote error
        fails it (unless terminal: nothing was sent) and stops the pool."""
        result = self.result
        assert result is not None
        if not rows:
            return
        with self.progress.counter(f"msgflash {what}", len(rows), "contacts") as counter:
            ticker = Ticker(counter, f"{what}d" if what.endswith("e") else what)

            def one(i: int) -> None:
                try:
                    work(i)
                except ApiRefused as exc:  # a search made for this row was refused
                    self._reject(i, "API_REJECTED", f"{exc.code}: {exc.message}")
                except RemoteError as exc:
                    if not isinstance(exc, TerminalRemoteError):
                        with self._lock:
                            result.fail([i], "LOAD_FAILED", exc.message)
                    raise
                ticker.add(1)

            workers = self.options.concurrency
            run_pool(rows, one, workers=workers, stop=self._limiter.stop, name=f"msgflash-{what}")
            ticker.flush()

    # -- contacts ----------------------------------------------------------------------
    def _list_contacts(self) -> dict[str, _Known]:
        """Every contact of the workspace: normalised phone -> (id, name, tags); the newest
        wins."""
        known: dict[str, _Known] = {}
        pages = self._pages(CONTACTS, LIST_PARAMS, f"GET {CONTACTS}")
        first = next(pages)
        total = int(first.get("total") or 0)
        with self.progress.counter("msgflash list", total, "contacts") as counter:
            ticker = Ticker(counter, "listed", every=5000)
            for data in (first, *pages):
                page = data.get("contacts") or []
                for item in page:
                    phone = norm_phone(item.get("phone"))
                    if phone and phone not in known:
                        name = str(item.get("name") or "")
                        known[phone] = _Known(str(item["id"]), name, item.get("tags") or [])
                ticker.add(len(page))
            ticker.flush()
        return known

    def _recover(self, phone: str) -> httpx.Response | None:
        """After a create ended without an answer: the contact if it was created after all
        (a 200 standing for the lost 201), else None to send it again."""
        found = self._search(phone)
        if not found:
            return None
        log.info("MsgFlash: a create without answer took effect; not sending it again")
        return httpx.Response(200, json={"data": found[0]})

    def _settle(self, rows: Iterable[int], state: int) -> None:
        assert self.result is not None
        with self._lock:
            self.result.mark(list(rows), state)

    def _reject(self, i: int, code: str, message: str) -> None:
        assert self.result is not None
        with self._lock:
            self.result.fail([i], code, message)

    def _create(self, i: int, phone: str | None) -> None:
        """POST one contact; 409 -> look it up and compare / update."""
        body = self._entries[i]
        recover = (lambda: self._recover(phone)) if phone else None
        try:
            resp = self._request(
                "POST",
                CONTACTS,
                json_body=body,
                endpoint=f"POST {CONTACTS}",
                idempotent=False,
                recover=recover,
            )
        except ApiRefused as exc:
            if exc.status != 409 or not phone:
                self._reject(i, "API_REJECTED", f"{exc.code}: {exc.message}")
                return
            found = self._search(phone)
            if not found:
                self._reject(
                    i,
                    "API_REJECTED",
                    f"{exc.code}: {exc.message} (and no contact with this phone was found)",
                )
                return
            self._existing(i, found[0], phone, created=False)
            return
        data = _data(resp, f"POST {CONTACTS}")
        if resp.status_code == 201:
            self._ids[i] = str(data["id"])
            self._settle([i], CREATED)
        else:  # recovered: the first attempt took effect (or someone else was faster)
            self._existing(i, data, phone, created=True)

    def _existing(
        self, i: int, found: Mapping[str, Any], phone: str | None, *, created: bool
    ) -> None:
        cid = str(found["id"])
        self._ids[i] = cid
        if same(self._entries[i], str(found.get("name") or ""), found.get("tags") or []):
            self._settle([i], CREATED if created else UNCHANGED)
        else:
            self._update(i, cid, phone, create_if_missing=False)

    def _update(self, i: int, cid: str, phone: str | None, *, create_if_missing: bool) -> None:
        """PUT the full body; 404 -> create (once)."""
        try:
            resp = self._request(
                "PUT",
                f"{CONTACTS}/{cid}",
                json_body=self._entries[i],
                endpoint=f"PUT {CONTACTS}/{{id}}",
            )
        except ApiRefused as exc:
            if exc.status == 404 and create_if_missing:
                self._ids[i] = None
                self._create(i, phone)
                return
            self._reject(i, "API_REJECTED", f"{exc.code}: {exc.message}")
            return
        data = _data(resp, f"PUT {CONTACTS}/{{id}}")
        self._ids[i] = str(data.get("id") or cid)
        self._settle([i], UPDATED)


def same(entry: Mapping[str, Any], name: str, tags: list[str]) -> bool:
    """Whether a stored contact already has the row's name and (when the row has any) tags."""
    if (entry.get("name") or "").strip() != name.strip():
        return False
    want = entry.get("tags")
    return want is None or set(want) == set(tags)
