"""MsgFlash import, second part: the loaded contacts go into their groups (missing groups
created), in batches of at most ``min(--batch-size, 10000)`` ids; 100 ids or more answer with
a bulk job, and the jobs are followed side by side to their end."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from ...base import CREATED, UNCHANGED, UPDATED, LoadResult, batches
from ...client import ApiRefused
from ...kit.jobs import STALLED, UNREADABLE, follow_jobs
from ...kit.pool import Ticker
from .core import GROUPS, GroupLimit, MsgFlashCore, _data

LOADED_STATES = (CREATED, UPDATED, UNCHANGED)


class _Job(NamedTuple):
    id: str
    group: str
    rows: list[int]
    requested: int


class MsgFlashGroupLoader(MsgFlashCore):
    _ids: list[str | None]
    """Row -> contact id, once known."""
    _groups_left: dict[int, int]
    """Row -> groups whose add is not confirmed yet."""

    # -- groups ------------------------------------------------------------------------
    def _load_groups(self, groups: dict[str, tuple[str, list[int]]], result: LoadResult) -> None:
        """Create the missing groups and add the loaded rows' contacts to them."""
        state = result.state
        wanted: list[tuple[str, dict[str, list[int]]]] = []
        for key, (_name, rows) in groups.items():
            by_id: dict[str, list[int]] = {}
            for i in rows:
                cid = self._ids[i]
                if state[i] in LOADED_STATES and cid:
                    by_id.setdefault(cid, []).append(i)
            if by_id:
                wanted.append((key, by_id))
        if not wanted:
            return
        existing = self._list_groups()
        size = self._member_batch()
        total = sum(len(by_id) for _, by_id in wanted)
        jobs: list[_Job] = []
        with self.progress.counter("msgflash groups", total, "members") as counter:
            ticker = Ticker(counter, "added to groups")
            for key, by_id in wanted:
                name = groups[key][0]
                rows_all = [i for r in by_id.values() for i in r]
                gid = existing.get(key) or self._new_group(name, rows_all, result)
                if gid is None:
                    continue
                existing[key] = gid
                ids = list(by_id)
                for chunk in batches(len(ids), size):
                    batch_ids = [ids[j] for j in chunk]
                    rows = [i for cid in batch_ids for i in by_id[cid]]
                    try:
                        resp = self._request(
                            "POST",
                            f"{GROUPS}/{gid}/members",
                            json_body={"contactIds": batch_ids},
                            endpoint=f"POST {GROUPS}/{{groupId}}/members",
                        )
                    except ApiRefused as exc:
                        result.fail(
                            rows, "GROUP_NOT_ADDED", f"group {name!r}: {exc.code}: {exc.message}"
                        )
                        continue
                    data = _data(resp, f"POST {GROUPS}/{{groupId}}/members")
                    if resp.status_code == 202 or data.get("mode") == "async":
                        jobs.append(_Job(str(data["jobId"]), name, rows, len(batch_ids)))
                        result.jobs[jobs[-1].id] = rows  # a deferral checkpoints it
                        continue
                    note_not_found(name, data.get("notFound"), result)
                    self._confirm(rows)
                    ticker.add(len(batch_ids))
            self._follow_group_jobs(jobs, result, ticker)
            ticker.flush()

    def _new_group(self, name: str, rows: list[int], result: LoadResult) -> str | None:
        """The id of the group ``name``, created (or found after a 409); None (its rows
        failed ``GROUP_NOT_ADDED``) when it cannot be created."""
        try:
            group, _ = self._post_group(name)
        except GroupLimit as exc:
            result.fail(rows, "GROUP_NOT_ADDED", exc.message)
            return None
        except ApiRefused as exc:
            result.fail(rows, "GROUP_NOT_ADDED", f"group {name!r}: {exc.code}: {exc.message}")
            return None
        return str(group["id"])

    def _follow_group_jobs(self, jobs: list[_Job], result: LoadResult, ticker: Ticker) -> None:
        """Follow the member jobs side by side; settle each job's rows as it ends."""
        by_id = {job.id: job for job in jobs}
        processed = dict.fromkeys(by_id, 0)

        def moved(job_id: str, n: int) -> None:
            processed[job_id] += n
            ticker.add(n)

        for job_id, status, data in follow_jobs(
            list(by_id),
            self._poll_job,
            interval_s=self.options.poll_interval_s,
            stall_s=self.JOB_STALL_S,
            on_progress=moved,
        ):
            job = by_id[job_id]
            result.jobs.pop(job_id, None)
            where = f"group {job.group!r}: bulk job {job.id}"
            if status == UNREADABLE:
                result.fail(
                    job.rows, "GROUP_NOT_ADDED", f"{where} cannot be followed ({data['error']})"
                )
            elif status == STALLED:
                count = int(data.get("processedCount") or 0)
                result.fail(
                    job.rows,
                    "GROUP_NOT_ADDED",
                    f"{where} still {data.get('status') or 'unknown'} after "
                    f"{self.JOB_STALL_S:.0f} s without progress ({count:,} of "
                    f"{job.requested:,} contacts); left running",
                )
            else:
                details = self._job_details(job.id)
                if status == "done":
                    ticker.add(job.requested - processed[job.id])
                    note_not_found(
                        job.group, (details.get("summary") or {}).get("notFound"), result
                    )
                    self._confirm(job.rows)
                else:
                    count = int(data.get("processedCount") or 0)
                    error = details.get("error")
                    result.fail(
                        job.rows,
                        "GROUP_NOT_ADDED",
                        f"{where} {status} after {count:,} of {job.requested:,} contacts"
                        + (f" ({error})" if error else "")
                        + "; re-running the import adds the rest",
                    )

    def _confirm(self, rows: Iterable[int]) -> None:
        for i in rows:
            self._groups_left[i] -= 1

    def _fail_unconfirmed_groups(self, result: LoadResult, reason: str) -> None:
        """Loaded rows whose group adds were not confirmed before the run stopped."""
        rows = [
            i
            for i, left in getattr(self, "_groups_left", {}).items()
            if left > 0 and result.state[i] in LOADED_STATES
        ]
        if rows:
            result.fail(
                rows,
                "GROUP_NOT_ADDED",
                f"the contact is loaded, but not (or not surely) in its groups: {reason}",
            )


def note_not_found(group: str, not_found: Any, result: LoadResult) -> None:
    if isinstance(not_found, list):
        not_found = len(not_found)
    if isinstance(not_found, int) and not_found > 0:
        result.notes.append(
            f"group {group!r}: {not_found} contact(s) not found when added "
            "(deleted since they were loaded?)"
        )
