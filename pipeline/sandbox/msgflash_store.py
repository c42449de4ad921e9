"""MsgFlash state: contacts, groups, members and bulk jobs, in memory.

Choices made where the docs are silent
--------------------------------------
- Ordering: contacts, groups and jobs are listed newest first (``createdAt_desc``); group
  members in the order they joined.  Cursors are keysets on a creation sequence number
  (a strict tie-break for equal ``createdAt``), or on (case-folded name, sequence) for
  ``name_asc``, so a walk sees every pre-existing contact exactly once even while contacts
  are added or deleted during the walk.
- ``temperature`` is not writable through the documented API; new contacts get ``"cold"``.
- Duplicate ids within one bulk call are processed once (sync responses count unique ids;
  ``requested`` / ``requestedCount`` echo the number of ids sent).
- Jobs are computed lazily from the clock: a job stays ``pending`` for
  ``msgflash_job_pending_s``, then applies ``msgflash_job_items_per_s`` ids per second, in the
  order sent, and is ``done`` when all are applied.  The work is applied to the contacts and
  groups whenever any MsgFlash request (or a Python state read) observes the job, so what a
  client sees is always consistent with the job's ``processedCount``.  Cancelling applies the
  work due so far, then stops: nothing after ``processedCount`` is ever applied.
- A job whose group is deleted while it runs fails with ``error`` set.  Tests can make the
  next job fail after k items (``fail_next_job``).
- ``summary`` holds the job's counters so far: ``{deleted, notFound}``,
  ``{added, alreadyInGroup, notFound}`` or ``{removed, notInGroup}`` (counts).
"""

from __future__ import annotations

import math
import uuid
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .common import Clock, SeqIndex, iso_ms
from .settings import SandboxSettings

OP_DELETE = "bulk_delete_contacts"
OP_ADD = "add_to_group"
OP_REMOVE = "remove_from_group"
FINAL = frozenset({"done", "failed", "cancelled"})
_COUNTERS = {
    OP_DELETE: ("deleted", "notFound"),
    OP_ADD: ("added", "alreadyInGroup", "notFound"),
    OP_REMOVE: ("removed", "notInGroup"),
}


@dataclass(slots=True)
class Contact:
    id: str
    seq: int
    name: str
    phone: str
    tags: list[str]
    meta: dict[str, Any]
    created_at: str
    updated_at: str
    temperature: str = "cold"
    groups: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "phone": self.phone,
            "tags": list(self.tags),
            "temperature": self.temperature,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def full(self) -> dict[str, Any]:
        return {**self.summary(), "meta": dict(self.meta)}


@dataclass(slots=True)
class Group:
    id: str
    seq: int
    name: str
    description: str | None
    color: str | None
    created_at: str
    updated_at: str
    members: SeqIndex = field(default_factory=SeqIndex)
    joined: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "color": self.color,
            "contactCount": len(self.members),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(slots=True)
class Job:
    id: str
    seq: int
    operation: str
    ids: list[str]
    group_id: str | None
    created_mono: float
    start_mono: float
    rate: float
    applied: int = 0
    final: str | None = None
    completed_mono: float | None = None
    error: str | None = None
    fail_after: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def due(self, now: float) -> int:
        """How many ids the job has processed by ``now`` (before any stop)."""
        if now < self.start_mono:
            return 0
        return min(len(self.ids), math.floor((now - self.start_mono) * self.rate + 1e-9))


class MsgFlashStore:
    """All MsgFlash data of one account (personal and team keys share it)."""

    def __init__(self, settings: SandboxSettings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self.contacts: dict[str, Contact] = {}
        self.order = SeqIndex()
        self.by_phone: dict[str, set[str]] = {}
        self.groups: dict[str, Group] = {}
        self.group_order = SeqIndex()
        self.group_names: dict[str, str] = {}
        self.jobs: dict[str, Job] = {}
        self.job_order = SeqIndex()
        self.active_jobs: list[str] = []
        self.job_failures: deque[tuple[int, str]] = deque()
        self._seq = 0
        self._names: list[tuple[str, int, str]] | None = None

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def now_iso(self) -> str:
        return iso_ms(self.clock.wall())

    # -- contacts ----------------------------------------------------------------------
    def phone_owner(self, phone: str, exclude: str | None = None) -> str | None:
        for cid in self.by_phone.get(phone, ()):
            if cid != exclude:
                return cid
        return None

    def create_contact(
        self, name: str, phone: str, tags: list[str], meta: dict[str, Any]
    ) -> Contact:
        now = self.now_iso()
        contact = Contact(f"cnt_{uuid.uuid4()}", self.next_seq(), name, phone, tags, meta, now, now)
        self.contacts[contact.id] = contact
        self.order.add(contact.id, contact.seq)
        self.by_phone.setdefault(phone, set()).add(contact.id)
        self._names = None
        return contact

    def update_contact(self, contact: Contact, changes: dict[str, Any]) -> None:
        if "phone" in changes and changes["phone"] != contact.phone:
            self.by_phone[contact.phone].discard(contact.id)
            self.by_phone.setdefault(changes["phone"], set()).add(contact.id)
        if "name" in changes and changes["name"] != contact.name:
            self._names = None
        for key, value in changes.items():
            setattr(contact, key, value)
        contact.updated_at = self.now_iso()

    def delete_contact(self, contact_id: str) -> bool:
        contact = self.contacts.pop(contact_id, None)
        if contact is None:
            return False
        self.order.discard(contact_id)
        self.by_phone[contact.phone].discard(contact_id)
        for gid in contact.groups:
            self.groups[gid].members.discard(contact_id)
            self.groups[gid].joined.pop(contact_id, None)
        return True

    @staticmethod
    def _matches(contact: Contact, needle: str | None) -> bool:
        return needle is None or needle in contact.name.casefold() or needle in contact.phone

    def list_contacts(
        self, sort: str, after: list[Any] | None, search: str | None, limit: int
    ) -> tuple[list[Contact], list[Any] | None, int]:
        """A page, the key of its last item when more follow, and the total matching."""
        needle = search.casefold() if search else None
        page: list[Contact] = []
        keys: list[list[Any]] = []
        for key, contact in self._walk(sort, after):
            if self._matches(contact, needle):
                page.append(contact)
                keys.append(key)
                if len(page) > limit:
                    break
        more = len(page) > limit
        total = (
            len(self.contacts)
            if needle is None
            else sum(1 for c in self.contacts.values() if self._matches(c, needle))
        )
        return page[:limit], keys[limit - 1] if more else None, total

    def _walk(self, sort: str, after: list[Any] | None) -> Any:
        if sort == "createdAt_desc":
            for seq, cid in self.order.iter_desc(after[0] if after else None):
                yield [seq], self.contacts[cid]
            return
        if self._names is None:
            self._names = sorted((c.name.casefold(), c.seq, c.id) for c in self.contacts.values())
        names = self._names
        start = 0 if after is None else bisect_right(names, (after[0], after[1], "\U0010ffff"))
        for i in range(start, len(names)):
            name_key, seq, cid = names[i]
            contact = self.contacts.get(cid)
            if contact is not None and contact.seq == seq and contact.name.casefold() == name_key:
                yield [name_key, seq], contact

    # -- groups ------------------------------------------------------------------------
    def create_group(self, name: str, description: str | None, color: str | None) -> Group:
        now = self.now_iso()
        group = Group(f"grp_{uuid.uuid4()}", self.next_seq(), name, description, color, now, now)
        self.groups[group.id] = group
        self.group_order.add(group.id, group.seq)
        self.group_names[name.strip().casefold()] = group.id
        return group

    def rename_group(self, group: Group, name: str) -> None:
        self.group_names.pop(group.name.strip().casefold(), None)
        group.name = name
        self.group_names[name.strip().casefold()] = group.id

    def delete_group(self, group_id: str) -> bool:
        group = self.groups.pop(group_id, None)
        if group is None:
            return False
        self.group_order.discard(group_id)
        self.group_names.pop(group.name.strip().casefold(), None)
        for _, cid in group.members.iter_asc():
            self.contacts[cid].groups.discard(group_id)
        return True

    def member_op(self, operation: str, group: Group | None, contact_id: str) -> str:
        """Apply one id of an operation; return the counter it increments."""
        if operation == OP_DELETE:
            return "deleted" if self.delete_contact(contact_id) else "notFound"
        assert group is not None
        contact = self.contacts.get(contact_id)
        if operation == OP_ADD:
            if contact is None:
                return "notFound"
            if contact_id in group.members:
                return "alreadyInGroup"
            group.members.add(contact_id, self.next_seq())
            group.joined[contact_id] = self.now_iso()
            contact.groups.add(group.id)
            return "added"
        if contact is None or contact_id not in group.members:
            return "notInGroup"
        group.members.discard(contact_id)
        group.joined.pop(contact_id, None)
        contact.groups.discard(group.id)
        return "removed"

    def run_sync(self, operation: str, group: Group | None, ids: list[str]) -> dict[str, Any]:
        counters = dict.fromkeys(_COUNTERS[operation], 0)
        not_found: list[str] = []
        for cid in dict.fromkeys(ids):
            outcome = self.member_op(operation, group, cid)
            counters[outcome] += 1
            if operation == OP_DELETE and outcome == "notFound":
                not_found.append(cid)
        if group is not None:
            group.updated_at = self.now_iso()
        if operation == OP_DELETE:
            return {"requested": len(ids), "deleted": counters["deleted"], "notFound": not_found}
        if operation == OP_ADD:
            return {**counters, "total": len(group.members) if group else 0}
        return counters

    # -- jobs --------------------------------------------------------------------------
    def create_job(self, operation: str, group_id: str | None, ids: list[str]) -> Job:
        now = self.clock.monotonic()
        job = Job(
            id=f"job_{uuid.uuid4().hex[:20]}",
            seq=self.next_seq(),
            operation=operation,
            ids=ids,
            group_id=group_id,
            created_mono=now,
            start_mono=now + self.settings.msgflash_job_pending_s,
            rate=self.settings.msgflash_job_items_per_s,
            counters=dict.fromkeys(_COUNTERS[operation], 0),
        )
        if self.job_failures:
            job.fail_after, job.error = self.job_failures.popleft()
        self.jobs[job.id] = job
        self.job_order.add(job.id, job.seq)
        self.active_jobs.append(job.id)
        return job

    def advance_jobs(self) -> None:
        """Apply the work every running job has done by now (idempotent)."""
        if not self.active_jobs:
            return
        now = self.clock.monotonic()
        for job_id in list(self.active_jobs):
            self._advance(self.jobs[job_id], now)
        self.active_jobs = [j for j in self.active_jobs if self.jobs[j].final is None]

    def _advance(self, job: Job, now: float) -> None:
        if job.final is not None:
            return
        target = job.due(now)
        if job.fail_after is not None:
            target = min(target, job.fail_after)
        group = self.groups.get(job.group_id) if job.group_id else None
        if job.group_id and group is None and target > job.applied:
            self._finish(job, "failed", now, "Group not found (deleted while the job ran)")
            return
        while job.applied < target:
            cid = job.ids[job.applied]
            job.applied += 1
            if cid in job.seen:
                continue
            job.seen.add(cid)
            job.counters[self.member_op(job.operation, group, cid)] += 1
        fail_after = job.fail_after
        if fail_after is not None and fail_after < len(job.ids) and job.due(now) >= fail_after:
            at = job.start_mono + fail_after / job.rate
            self._finish(job, "failed", at, job.error or "Job failed")
        elif job.applied >= len(job.ids) and now >= job.start_mono:
            self._finish(job, "done", job.start_mono + len(job.ids) / job.rate, None)

    def _finish(self, job: Job, status: str, at: float, error: str | None) -> None:
        job.final, job.completed_mono, job.error = status, at, error
        job.seen = set()
        if job.group_id in self.groups:
            self.groups[job.group_id].updated_at = iso_ms(self.clock.wall(at))

    def cancel_job(self, job: Job) -> bool:
        self.advance_jobs()
        if job.final is not None:
            return False
        self._finish(job, "cancelled", self.clock.monotonic(), None)
        self.active_jobs = [j for j in self.active_jobs if j != job.id]
        return True

    def job_status(self, job: Job) -> str:
        if job.final is not None:
            return job.final
        return "pending" if self.clock.monotonic() < job.start_mono else "processing"

    def job_dict(self, job: Job) -> dict[str, Any]:
        status = self.job_status(job)
        requested = len(job.ids)
        now = self.clock.monotonic()
        if job.final is not None:
            updated = job.completed_mono or now
        else:
            updated = job.created_mono if status == "pending" else now
        done = status == "done"
        return {
            "id": job.id,
            "operation": job.operation,
            "status": status,
            "requestedCount": requested,
            "processedCount": job.applied,
            "progress": 100 if done else (100 * job.applied) // max(1, requested),
            "groupId": job.group_id,
            "summary": dict(job.counters),
            "error": job.error if status == "failed" else None,
            "createdAt": iso_ms(self.clock.wall(job.created_mono)),
            "updatedAt": iso_ms(self.clock.wall(updated)),
            "completedAt": iso_ms(self.clock.wall(job.completed_mono))
            if job.completed_mono is not None
            else None,
        }
