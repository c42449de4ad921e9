"""What every target shares: options, the per-row ledger of results, the plan, batching and the
field map from ``schemas/targets/<name>.json``.

A target receives the contacts frame of :func:`contactpipe.report.writer.contacts_frame` (public
canonical columns, ``tags``/``groups`` as lists, ``custom_fields`` as a JSON object string) and
must settle every row in a :class:`LoadResult` by its position in that frame: loaded (created,
updated, unchanged) or failed with a code and a reason.  ``run.py`` maps positions back to
source rows.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import polars as pl

from contactpipe import schemas
from contactpipe.errors import Deferred, PipelineError, RemoteError, UsageError
from contactpipe.report.progress import NullProgress, Progress

from .config import check_header_value
from .kit.phones import norm_phone
from .kit.timing import PlanLine, Rate
from .policy import ClientStats, RetryPolicy
from .ratelimit import Limiter
from .ratestore import RateStore, check_spec, open_store, store_label

if TYPE_CHECKING:  # httpx is imported when a client is made, not by the validate path
    import httpx

    from .client import ApiClient

DEFAULT_BATCH = 10_000

LOAD_CODES: dict[str, str] = {
    "API_REJECTED": "the API refused this row",
    "LOAD_FAILED": "the request carrying this row failed after every retry",
    "NOT_SENT": "not sent: the run was aborted before this row",
    "OUTCOME_UNKNOWN": "sent, but the run stopped before the API answered: the row may be in "
    "the target or not (re-running the same import is safe and settles it)",
    "GROUP_NOT_ADDED": "the contact is loaded but could not be added to its group",
    "NOT_REPRESENTABLE": "the target's format cannot hold a value of this row",
    "NOT_FOUND": "no contact with this phone (or id) in the target",
    "NOT_IN_GROUP": "the contact is not a member of the group",
    "DEFERRED": "not sent yet: the load stopped before a wait longer than --defer-after "
    "(summary.json load.deferred says until when); `import --resume` sends it",
}

phone_key = norm_phone
"""The one rule by which every target compares phones (:mod:`contactpipe.load.kit.phones`)."""


PENDING, CREATED, UPDATED, UNCHANGED, LOADED, FAILED = range(6)
"""Row states in :class:`LoadResult`.  ``LOADED``: in the target, kind known only in aggregate
(a bulk answer gives counts, not which row was created)."""


@dataclass(frozen=True)
class LoadOptions:
    """What ``contactpipe import`` tells a target beyond the contacts."""

    batch_size: int = DEFAULT_BATCH
    dry_run: bool = False
    poll_interval_s: float = 2.0
    concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Attempts and backoff of every request (the CLI uses this default)."""
    transport: httpx.BaseTransport | None = field(default=None, repr=False, compare=False)
    """The httpx transport every request goes through (default: httpx's own, the network):
    ``httpx.MockTransport`` in a test, ``httpx.HTTPTransport(proxy=..., verify=...)`` for a
    proxy or a private CA."""
    rate_limit_store: str | None = None
    """Where each account's rate limit is kept, shared by every run using the same store:
    ``local`` (this machine's runs), ``redis://...`` / ``rediss://...`` (every machine's) or
    ``none`` (this run only).  None: ``$CONTACTPIPE_RATE_LIMIT_STORE``, else ``local``
    (:mod:`contactpipe.load.ratestore`)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.rate_limit_store is not None:
            check_spec(self.rate_limit_store)


class Observer(Protocol):
    """What a :class:`LoadResult` tells as a load goes (see ``LoadResult.observer``)."""

    def settled(self, result: LoadResult, rows: Sequence[int] | range) -> None:
        """``rows`` were just marked loaded (those that had failed stay failed)."""

    def sending(self, result: LoadResult, rows: Sequence[int]) -> None:
        """A request carrying ``rows`` is about to go out."""


class LoadResult:
    """Per-row ledger of a load plus aggregate counts.  Every row ends loaded or failed."""

    def __init__(self, target: str, n: int) -> None:
        self.target = target
        self.n = n
        self.state = bytearray(n)
        self.failures: dict[int, tuple[str, str]] = {}
        self.bulk_counts = {"created": 0, "updated": 0, "unchanged": 0}
        self.not_carried: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.aborted: PipelineError | None = None
        self.notes: list[str] = []
        self.in_flight: Sequence[int] = ()
        """Rows of the request being sent (see :meth:`sending`): when the run is interrupted
        after it went out, those still unsettled are OUTCOME_UNKNOWN, not NOT_SENT."""
        self.in_flight_after = 0
        """The client's request count when :meth:`sending` was called."""
        self.observer: Observer | None = None
        """Told as rows settle and requests go out (the sync state records confirmations
        as they come, so that a killed run keeps them)."""
        self.ids: dict[int, str] = {}
        """Row -> the contact's id in the target, for the rows whose id the load learnt
        (kept in the sync state, :mod:`contactpipe.load.kit.state`)."""
        self.jobs: dict[str, list[int]] = {}
        """Asynchronous jobs started and not followed to their end yet: job id -> the rows
        waiting on it.  A deferred load checkpoints them in the sync state, and the resumed
        run follows the same jobs (:meth:`Target.follow_jobs`) instead of sending again."""

    def mark(self, rows: Sequence[int] | range, state: int) -> None:
        """Set rows to CREATED, UPDATED, UNCHANGED or LOADED (failed rows stay failed)."""
        st = self.state
        for i in rows:
            if st[i] != FAILED:
                st[i] = state
        if self.observer is not None:
            self.observer.settled(self, rows)

    def add_bulk_counts(self, created: int, updated: int, unchanged: int) -> None:
        """Counts an API gave for LOADED rows whose individual kind it did not say."""
        self.bulk_counts["created"] += created
        self.bulk_counts["updated"] += updated
        self.bulk_counts["unchanged"] += unchanged

    def fail(self, rows: Sequence[int] | range, code: str, message: str) -> None:
        """Rows failed; a row already loaded that fails a later step (a group) moves here."""
        for i in rows:
            if self.state[i] == LOADED:
                self.notes.append(f"row {i} failed after a bulk load counted it")
            self.state[i] = FAILED
            self.failures.setdefault(i, (code, message))

    def pending(self) -> list[int]:
        return [i for i, s in enumerate(self.state) if s == PENDING]

    def abort(self, exc: RemoteError) -> None:
        """The remote side stopped the run: every row not settled is NOT_SENT.  A deferral
        (:class:`~contactpipe.errors.Deferred`, the wait ahead was too long) instead marks
        them ``DEFERRED``, with the rows the target failed for it (a group add not made)."""
        self.aborted = exc
        reason = exc.message
        if isinstance(exc, Deferred):
            self.defer(exc)
            return
        self.fail(self.pending(), "NOT_SENT", f"not sent: {reason}")

    def defer(self, exc: Deferred) -> None:
        """The load stopped before a long wait, every request sent answered: the rows not
        settled, and those a target failed with this reason (``NOT_SENT``, a group add not
        made), are ``DEFERRED``: the resumed run sends them."""
        message = f"deferred: {exc.reason}; not sent yet, `import --resume` sends it"
        for i, (code, text) in list(self.failures.items()):
            if code in ("NOT_SENT", "GROUP_NOT_ADDED") and exc.message in text:
                self.failures[i] = ("DEFERRED", message)
        self.fail(self.pending(), "DEFERRED", message)

    def sending(self, rows: Sequence[int], requests: int) -> None:
        """A target is about to send ``rows`` in one request; ``requests`` is its client's
        request count now (``ClientStats.requests``, counted as each attempt goes out)."""
        self.in_flight = rows
        self.in_flight_after = requests
        if self.observer is not None:
            self.observer.sending(self, rows)

    def interrupt(self, exc: PipelineError, requests: int | None = None) -> None:
        """The user or a scheduler stopped the run (Ctrl-C, SIGTERM): unsettled rows of the
        request in flight are OUTCOME_UNKNOWN (the server may have stored them), the other
        unsettled rows NOT_SENT.  ``requests``, the client's request count now, tells a
        request that went out (or was retried) from one still waiting for the rate limit."""
        self.aborted = exc
        went_out = requests is None or requests > self.in_flight_after
        unknown = [i for i in self.in_flight if self.state[i] == PENDING] if went_out else []
        self.fail(
            unknown,
            "OUTCOME_UNKNOWN",
            f"outcome unknown: {exc.message} while the request carrying this row was in "
            "flight; re-run the same import to settle it",
        )
        self.fail(self.pending(), "NOT_SENT", f"not sent: {exc.message}")

    def counts(self) -> dict[str, int]:
        st = self.state
        failed = st.count(FAILED)
        out = {
            "created": st.count(CREATED) + self.bulk_counts["created"],
            "updated": st.count(UPDATED) + self.bulk_counts["updated"],
            "unchanged": st.count(UNCHANGED) + self.bulk_counts["unchanged"],
            "failed": failed,
        }
        out["loaded"] = self.n - failed - st.count(PENDING)
        return out


@dataclass(frozen=True)
class ExportFilters:
    """Filters of ``contactpipe export``, applied by the API where it offers them (a target
    raises :class:`~contactpipe.errors.UsageError` for a filter its API lacks)."""

    search: str | None = None
    tag: str | None = None
    group: str | None = None
    opt_out: bool | None = None


EXPORT_FIELDS = (
    "phone",
    "name",
    "email",
    "language_code",
    "tags",
    "notes",
    "opt_out",
    "opt_out_marketing",
    "reply_bot_enabled",
)
"""The canonical fields an export writes (then ``groups`` and ``custom_fields``)."""

EXPORT_META_COLUMNS = ("id", "created_at", "updated_at")
"""Columns an export adds to the canonical ones; target-specific extras follow them."""


@dataclass
class TargetConfig:
    """Where and as whom: the base URL and the headers that authenticate.  ``secrets`` lists
    the credential values, so that output can be checked (and masked) for them."""

    base_url: str
    headers: dict[str, str]
    secrets: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)
    account: str = ""
    """The account / workspace / phone id the credentials write to, never a secret (the sync
    state is keyed by it with the base URL; empty: the credentials alone name it)."""

    def __post_init__(self) -> None:
        for name, value in self.headers.items():  # whatever variable a target read it from
            check_header_value(value, f"the {name} header (from a credential variable)")


def field_map(target: str) -> dict[str, Any]:
    """``schemas/targets/<target>.json``: canonical field -> target field, and where the
    fields with no place of their own go (see that file's ``description``)."""
    return schemas.load(f"targets/{target}")


def batches(n: int, size: int) -> Iterator[range]:
    """Positions 0..n-1 in consecutive ranges of at most ``size``."""
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def write_request_files(directory: Path, name: str, bodies: Iterable[bytes]) -> list[Path]:
    """``--dry-run``: write each body to ``directory / name.format(k)`` (k = 1, 2...), e.g.
    ``waapi-bulk-{:04d}.json``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, body in enumerate(bodies, 1):
        path = directory / name.format(k)
        path.write_bytes(body)
        paths.append(path)
    return paths


def custom_fields(value: str | None) -> dict[str, Any]:
    """The ``custom_fields`` cell of the contacts frame as a dict (null keys dropped)."""
    if not value:
        return {}
    doc = json.loads(value)
    return {k: v for k, v in doc.items() if v is not None}


def build_entries(contacts: pl.DataFrame, fmap: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One payload dict per contact, following a field map:

    - ``fields``: canonical field -> target field, copied when not null (lists when not
      empty);
    - ``extras_object`` (optional): target field holding an object made of the canonical
      ``extras`` fields (by canonical name) and the row's custom fields.
    """
    fields: dict[str, str] = fmap["fields"]
    extras_object: str | None = fmap.get("extras_object")
    extras: list[str] = list(fmap.get("extras", [])) if extras_object else []
    cols = [c for c in {*fields, *extras, "custom_fields"} if c in contacts.columns]
    out: list[dict[str, Any]] = []
    for row in contacts.select(cols).iter_rows(named=True):
        entry: dict[str, Any] = {}
        for src, dst in fields.items():
            v = row.get(src)
            if v is None or (isinstance(v, list) and not v):
                continue
            entry[dst] = v
        if extras_object:
            obj = {k: row[k] for k in extras if k != "custom_fields" and row.get(k) is not None}
            obj.update(custom_fields(row.get("custom_fields")))
            if obj:
                entry[extras_object] = {k: obj[k] for k in sorted(obj)}
        out.append(entry)
    return out


def not_carried(contacts: pl.DataFrame, carried: set[str]) -> dict[str, int]:
    """Canonical fields with values that the target has no place for: field -> rows."""
    out: dict[str, int] = {}
    if "name" in carried:  # first and last names are joined into name by the transform
        carried = carried | {"first_name", "last_name"}
    for c in contacts.columns:
        if c in carried or c in ("source_file", "sheet", "row"):
            continue
        s = contacts.get_column(c)
        if c == "custom_fields":  # a JSON object: count rows with at least one value
            n = sum(1 for v in s.to_list() if custom_fields(v))
        else:
            has_value = (s.list.len() > 0) if s.dtype == pl.List else s.is_not_null()
            n = int(has_value.sum())
        if n:
            out[c] = n
    return out


class Target(ABC):
    """One API.  Subclasses set ``name``, ``title``, ``capabilities`` and implement
    :meth:`config_from_env`, :meth:`plan`, :meth:`dry_run` and :meth:`load`."""

    name: ClassVar[str]
    title: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    """Among :data:`contactpipe.load.registry.CAPABILITIES` (the target's ``INFO`` has them)."""
    rate: ClassVar[Rate | None] = None
    """The documented rate limit (None: none documented); plans time requests with it."""
    import_page_size: ClassVar[int] = 0
    """Page size of the listing an import makes to find existing contacts (0: none); the
    sync state counts the pages it avoids with it."""
    fields: ClassVar[dict[str, Any] | None] = None
    """The field map, when it is not ``schemas/targets/<name>.json`` (a target outside the
    package tree)."""

    def __init__(
        self,
        config: TargetConfig,
        options: LoadOptions | None = None,
        progress: Progress | None = None,
        stats: ClientStats | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.options = options or LoadOptions()
        self.policy = policy or self.options.retry
        self.progress = progress or NullProgress()
        self.stats = stats or ClientStats()
        self.fmap = self.fields if self.fields is not None else field_map(self.name)
        self._client: ApiClient | None = None
        self.export_total: int | None = None
        """Set by :meth:`export` once the API has said how many contacts match."""
        self.state_known: Mapping[str, str] | None = None
        """Set by the sync state (:mod:`contactpipe.load.kit.state`) during a load: E.164 phone
        -> remote id ('' when unknown) of the contacts the state says exist.  A target must
        then not list the account: a phone absent is taken as new (a create that meets an
        existing contact falls back on the API's duplicate answer)."""
        self.observer: Observer | None = None
        """Handed to the ledger of each load (:meth:`new_result`)."""
        self.result: LoadResult | None = None
        """The ledger of the load in progress (set by :meth:`new_result`), so that an
        interrupted run can still report what was sent."""
        self._rate_store: RateStore | None = None
        self._rate_store_open = False

    @property
    def rate_limit_store(self) -> str:
        """The rate limit store of this target's requests, as reports show it (no password)."""
        return store_label(self.options.rate_limit_store)

    def rate_store(self) -> RateStore | None:
        """The store this target's limiter shares its account's window through (opened and
        checked on first use: :class:`~contactpipe.load.ratestore.RateStoreUnreachable`,
        exit 4, when it cannot be reached); None with ``none``."""
        if not self._rate_store_open:
            self._rate_store = open_store(self.options.rate_limit_store)
            self._rate_store_open = True
        return self._rate_store

    def rate_key(self) -> str:
        """The store key of this target's account: the sync state's fingerprint (target,
        base URL, account id or a one-way digest of the credentials; never a secret)."""
        from .kit.state import fingerprint

        return f"contactpipe:ratelimit:{self.name}:{fingerprint(self)[0]}"

    def new_client(self, limiter: Limiter, **options: Any) -> ApiClient:
        """A client for this target: its title, base URL and auth headers, the run's retry
        policy and statistics, ``limiter`` (sharing the account's window through the rate
        limit store), and any other :class:`ApiClient` option."""
        from .client import ApiClient

        store = self.rate_store()
        if store is not None:
            limiter.share(store, self.rate_key())
        return ApiClient(
            self.title,
            self.config.base_url,
            self.config.headers,
            limiter=limiter,
            policy=self.policy,
            stats=self.stats,
            transport=self.options.transport,
            **options,
        )

    def new_result(self, n: int) -> LoadResult:
        """Start the ledger of a load of ``n`` contacts."""
        self.result = LoadResult(self.name, n)
        self.result.observer = self.observer
        return self.result

    @classmethod
    @abstractmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        """Credentials and base URL from the environment (``base_url`` from ``--base-url``
        wins); :class:`~contactpipe.errors.UsageError` naming the missing variable."""

    @classmethod
    def placeholder_config(cls, base_url: str | None) -> TargetConfig:
        """A configuration for planning without credentials (``import --dry-run``): paths
        that hold a credential show a placeholder."""
        return TargetConfig(base_url=base_url or "(base URL not set)", headers={})

    @abstractmethod
    def plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        """Requests per endpoint for loading ``contacts`` (no request is made)."""

    @abstractmethod
    def dry_run(self, contacts: pl.DataFrame, directory: Path) -> list[Path]:
        """Write the exact request bodies into ``directory``; return the files."""

    @abstractmethod
    def load(self, contacts: pl.DataFrame) -> LoadResult:
        """Send ``contacts``; settle every row in the result.  A remote abort
        (:class:`~contactpipe.errors.RemoteError`) is recorded with ``result.abort`` and the
        result returned, never raised."""

    # -- export, delete, groups (issue 5); a target without the capability raises UsageError
    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        """Requests an export will make (may make one request to learn the total)."""
        raise UsageError(f"{self.title}: export is not supported")

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        """Yield the API's contacts page by page as canonical dicts: ``phone`` (E.164 with
        ``+``), ``name``, ``email``, ``language_code``, ``tags`` (list), ``notes``,
        ``opt_out``, ``opt_out_marketing``, ``reply_bot_enabled``, ``groups`` (list, only with
        ``with_groups``), ``custom_fields`` (dict), ``id``, ``created_at``, ``updated_at``,
        plus the target's own extras under their API names.  Keys the API does not have are
        absent.  ``self.export_total`` is set once the API has said how many there are."""
        raise UsageError(f"{self.title}: export is not supported")

    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        """Delete the contacts whose phones (or ``id``) are in ``contacts``; settle every row:
        LOADED (deleted, or would be with ``dry_run``) or failed (``NOT_FOUND``...).  More
        than ``limit`` found: UsageError before any delete."""
        raise UsageError(f"{self.title}: delete is not supported")

    def delete_plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        """Requests a delete of ``contacts`` will make at most, with the least time (may make
        one request to learn how many contacts the lookup would list)."""
        raise UsageError(f"{self.title}: delete is not supported")

    def members_plan(self, group: str, contacts: pl.DataFrame, *, add: bool) -> list[PlanLine]:
        """Requests :meth:`change_members` will make at most, with the least time."""
        raise UsageError(f"{self.title} has no contact groups")

    def list_groups(self) -> list[dict[str, Any]]:
        """Every group: ``{"id", "name", "members" (count or None), "description"}``."""
        raise UsageError(f"{self.title} has no contact groups")

    def create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        """Create ``name`` (or find it: same name, any case); return (group, created)."""
        raise UsageError(f"{self.title} has no contact groups")

    def change_members(self, group: str, contacts: pl.DataFrame, *, add: bool) -> LoadResult:
        """Add (or remove) the contacts whose phones are in ``contacts`` to (from) the group
        named ``group`` (created on add when missing); settle every row."""
        raise UsageError(f"{self.title} has no contact groups")

    def follow_jobs(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Follow asynchronous jobs a deferred load left running (``LoadResult.jobs``) to
        their end: job id -> ``done``, or another final status (``failed``, ``cancelled``,
        ``stalled``, ``unreadable``: their rows are sent again).  A target without jobs has
        none to follow.  Following longer than ``defer_after`` defers again."""
        return {}

    def close(self) -> None:
        """Close the HTTP client; a later load opens a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._rate_store is not None:
            self._rate_store.close()
        self._rate_store, self._rate_store_open = None, False
