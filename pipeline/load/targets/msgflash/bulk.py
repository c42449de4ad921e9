"""MsgFlash bulk writes (bulk delete, group members add / remove): batches sent one at a time,
a synchronous answer settles its batch, a bulk job is followed to its end; Ctrl-C cancels the
job running and settles each row from what exists now."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from contactpipe.errors import RemoteError
from contactpipe.report.progress import Counter

from ...base import LOADED, PENDING, LoadResult, batches
from ...client import ApiRefused
from ...kit.jobs import FINAL, UNREADABLE, follow_jobs
from ...kit.lookup import find
from .core import GROUPS, JOBS, MEMBERS, MsgFlashCore, _data, log, quote, remote


class _Op(NamedTuple):
    """One kind of bulk write: bulk delete, or group members add / remove."""

    kind: str
    """``delete``, ``add`` or ``remove``."""
    method: str
    path: str
    endpoint: str
    group_id: str | None
    group_name: str | None
    fail_code: str
    """The code of rows a failed bulk job did not reach."""

    @property
    def done(self) -> str:
        return {"delete": "deleted", "add": "added to the group"}.get(
            self.kind, "removed from the group"
        )


_UNSET = object()


class _Ledger:
    """Per-id outcomes of a bulk write, settled onto the rows holding those ids (a row may
    hold several ids: one phone held by several contacts)."""

    def __init__(self, result: LoadResult, row_ids: list[list[str]]) -> None:
        self.result = result
        self.row_ids = row_ids
        self.outcome: dict[str, tuple[str, str] | None] = {}

    def ok(self, ids: Iterable[str]) -> None:
        for x in ids:
            self.outcome[x] = None

    def failed(self, ids: Iterable[str], code: str, message: str) -> None:
        for x in ids:
            self.outcome[x] = (code, message)

    def settle(self, *, final: bool = False, message: str = "") -> None:
        """Rows whose ids are all decided: LOADED, or failed with their first failure.  With
        ``final``, rows with an id never sent fail ``NOT_SENT`` with ``message``."""
        result = self.result
        state = result.state
        for i, ids in enumerate(self.row_ids):
            if state[i] != PENDING or not ids:
                continue
            outs = [self.outcome.get(x, _UNSET) for x in ids]
            failure = next((o for o in outs if isinstance(o, tuple)), None)
            if failure is not None:
                result.fail([i], *failure)
            elif all(o is None for o in outs):
                result.mark([i], LOADED)
            elif final:
                result.fail([i], "NOT_SENT", message or "not sent: the run stopped before it")


class MsgFlashBulk(MsgFlashCore):
    def _run_bulk(self, op: _Op, by_id: dict[str, list[int]], result: LoadResult) -> None:
        """Send the ids in batches of ``min(--batch-size, 10000)``, one at a time: a sync
        answer settles its batch, a bulk job is polled to its end.  Ctrl-C cancels the job
        running, settles each row from what exists now, and is raised again."""
        ids = list(by_id)
        row_ids: list[list[str]] = [[] for _ in range(result.n)]
        for cid, rows in by_id.items():
            for i in rows:
                row_ids[i].append(cid)
        ledger = _Ledger(result, row_ids)
        counts: dict[str, int] = {}
        size = self._member_batch()
        inflight: list[str] = []
        job_id: str | None = None
        label = "delete" if op.kind == "delete" else f"group {op.kind}"
        try:
            with self.progress.counter(f"msgflash {label}", len(ids), "contacts") as counter:
                for chunk in batches(len(ids), size):
                    batch = ids[chunk.start : chunk.stop]
                    inflight, job_id = batch, None
                    try:
                        resp = self._request(
                            op.method,
                            op.path,
                            json_body={"contactIds": batch},
                            endpoint=op.endpoint,
                        )
                    except ApiRefused as exc:
                        ledger.failed(batch, "API_REJECTED", f"{exc.code}: {exc.message}")
                        inflight = []
                        ledger.settle()
                        continue
                    data = _data(resp, op.endpoint)
                    if resp.status_code == 202 or data.get("mode") == "async":
                        job_id = str(data["jobId"])
                        status, job = self._follow_job(job_id, len(batch), counter)
                        if status == "done":
                            ledger.ok(batch)
                            add_counts(counts, job.get("summary"))
                        else:
                            self._settle_stopped(op, job_id, status, job, batch, ledger)
                    else:
                        ledger.ok(batch)
                        add_counts(counts, data)
                        counter.advance(len(batch), op.done)
                    inflight, job_id = [], None
                    ledger.settle()
        except KeyboardInterrupt:
            try:
                ledger.failed(
                    inflight,
                    "LOAD_FAILED",
                    "interrupted while its request was in flight: whether it was "
                    f"{op.done} is unknown; re-run the command to be sure",
                )
                if inflight:
                    self._interrupted(op, job_id, inflight, ledger)
            finally:
                ledger.settle(final=True, message="not sent: the run was interrupted (Ctrl-C)")
                self._bulk_notes(op, counts, result)
            raise
        except (RemoteError, ApiRefused) as exc:
            error = remote(exc, f"a {op.kind} request")
            ledger.failed(
                inflight,
                "LOAD_FAILED",
                f"whether it was {op.done} is unknown ({error.message}); re-run the command",
            )
            ledger.settle()
            self._bulk_notes(op, counts, result)
            result.abort(error)
            return
        ledger.settle(final=True)
        self._bulk_notes(op, counts, result)

    def _follow_job(
        self, job_id: str, requested: int, counter: Counter
    ) -> tuple[str, dict[str, Any]]:
        """Follow one job to its end (:func:`~contactpipe.load.kit.jobs.follow_jobs`); a final
        job is read once more for its summary."""
        processed = 0

        def moved(_job: str, n: int) -> None:
            nonlocal processed
            processed += n
            counter.advance(n, "job running")

        for _, status, data in follow_jobs(
            [job_id],
            self._poll_job,
            interval_s=self.options.poll_interval_s,
            stall_s=self.JOB_STALL_S,
            on_progress=moved,
        ):
            if status in FINAL:
                data = {**data, **self._job_details(job_id)}
                if status == "done" and requested > processed:
                    counter.advance(requested - processed, "job done")
            return status, data
        return UNREADABLE, {}

    def _settle_stopped(
        self,
        op: _Op,
        job_id: str,
        status: str,
        job: dict[str, Any],
        batch: list[str],
        ledger: _Ledger,
    ) -> None:
        """A job that did not finish: settle each id from what exists now."""
        done = self._done_ids(op, batch)
        ledger.ok(x for x in batch if x in done)
        error = job.get("error")
        count = job.get("processedCount")
        after = f" after {int(count):,} of {len(batch):,} contacts" if count is not None else ""
        tail = "; left running" if status == "stalled" else ""
        ledger.failed(
            (x for x in batch if x not in done),
            op.fail_code,
            f"not {op.done}: bulk job {job_id} {status}{after}"
            + (f" ({error})" if error else "")
            + f"{tail}; re-run the command for the rest",
        )

    def _interrupted(self, op: _Op, job_id: str | None, batch: list[str], ledger: _Ledger) -> None:
        """Ctrl-C with ``batch`` sent: cancel its job, then settle each id from what exists."""
        if job_id is not None:
            try:
                self._request(
                    "POST",
                    f"{JOBS}/{quote(job_id)}/cancel",
                    endpoint=f"POST {JOBS}/{{jobId}}/cancel",
                )
                log.info("MsgFlash: bulk job %s cancelled", job_id)
            except ApiRefused as exc:  # 409: it had finished already
                log.info("MsgFlash: bulk job %s not cancelled (%s)", job_id, exc.code)
        elif self.result is not None:
            self.result.notes.append(
                "interrupted while a request was in flight: if MsgFlash had started a bulk job "
                "for it, that job may still be running"
            )
        done = self._done_ids(op, batch)
        ledger.ok(x for x in batch if x in done)
        ledger.failed(
            (x for x in batch if x not in done),
            "NOT_SENT",
            f"not {op.done}: the run was interrupted (Ctrl-C)"
            + (f" and bulk job {job_id} cancelled before this contact" if job_id else ""),
        )

    def _done_ids(self, op: _Op, ids: list[str]) -> set[str]:
        """Which of ``ids`` are in the wanted state now: deleted (no longer listed or found),
        in the group (add), out of it (remove)."""
        if op.kind == "delete":
            exists = find({("id", x) for x in ids}, self.directory("msgflash check"))
            return {x for x in ids if not exists.get(("id", x))}
        members = self._member_ids(str(op.group_id))
        return {x for x in ids if (x in members) == (op.kind == "add")}

    def _member_ids(self, group_id: str) -> set[str]:
        path = f"{GROUPS}/{quote(group_id)}/members"
        out: set[str] = set()
        for data in self._pages(path, {"limit": self.PAGE_MAX}, f"GET {MEMBERS}"):
            out.update(str(m["id"]) for m in data.get("members") or [] if m.get("id"))
        return out

    @staticmethod
    def _bulk_notes(op: _Op, counts: dict[str, int], result: LoadResult) -> None:
        group = f"group {op.group_name!r}"
        notes = {
            "delete": [
                (
                    "notFound",
                    "contact(s) were already gone when the delete ran (deleted "
                    "meanwhile): their rows count as deleted",
                ),
            ],
            "add": [
                ("alreadyInGroup", f"contact(s) were already in {group}"),
                (
                    "notFound",
                    f"contact(s) were not found when added to {group} (deleted since the lookup?)",
                ),
            ],
            "remove": [("notInGroup", f"contact(s) were not in {group}")],
        }[op.kind]
        for key, text in notes:
            if counts.get(key):
                result.notes.append(f"{counts[key]:,} {text}")


_COUNT_KEYS = ("deleted", "notFound", "added", "alreadyInGroup", "removed", "notInGroup")


def add_counts(counts: dict[str, int], data: Any) -> None:
    """Sum the counters of a members / bulk-delete answer or a job summary (``notFound`` is
    a list of ids in a sync bulk-delete answer, a count elsewhere)."""
    if not isinstance(data, dict):
        return
    for key in _COUNT_KEYS:
        value = data.get(key)
        if isinstance(value, list):
            value = len(value)
        if isinstance(value, int):
            counts[key] = counts.get(key, 0) + value
