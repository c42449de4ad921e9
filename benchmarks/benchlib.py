"""What ``bench_load.py`` and ``bench_export.py`` share.

* **The contacts**: the name, tag and city pools, and N distinct valid French mobile numbers
  (:func:`national`, :func:`phone`) with a name, one or two tags and a city (:func:`people`),
  the same for a given N in every script.
* **The sandbox in its own process**: :class:`Sandbox` serves the sandbox from a spawned
  process (:func:`serve_sandbox`) on a free port of 127.0.0.1 for the length of a ``with``
  block, optionally seeded first by a callable, and reads its request journal and object counts
  over HTTP from the admin endpoints (``/__sandbox__/journal``, ``/__sandbox__/counts``).
* **The client in its own process**: :func:`in_client_process` runs one function in a fresh
  spawned process, so each run's RSS and heap start from scratch.
* **Memory**: :func:`vm_mib` (``/proc/self/status`` figures, ``VmHWM`` by default) and
  :func:`reset_hwm`.
* **Arguments**: :func:`parse_targets` (``--targets``).
* **Output**: :func:`mib`, :func:`hms`, :func:`verdict`, :func:`print_table`,
  :func:`print_checks`.

The scripts run as ``.venv/bin/python benchmarks/bench_<x>.py``, so this folder is first on
``sys.path`` (and the spawned processes inherit it).  Nothing here imports polars: the sandbox
processes import this module and should not carry it.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import random
import re
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from contactpipe.sandbox import SandboxServer, SandboxSettings
from contactpipe.sandbox.server import base_urls

if TYPE_CHECKING:
    from contactpipe.sandbox.app import Sandbox as SandboxApp

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

TARGETS = ("waapi", "vobiz", "msgflash")
MSGFLASH_LIMIT = 10.0  # documented: 10 requests per second per key
RATE_GOAL = 0.95  # MsgFlash must run at >= 95% of MSGFLASH_LIMIT

# Valid French mobile ranges in phonenumbers' metadata: 06 followed by [0-24-8] (063x and
# 069x are only partly allocated), so 8 x 10**7 numbers; a multiplicative permutation of
# range(8 * 10**7) gives distinct numbers that do not look sequential.
SECOND_DIGITS = "01245678"
SPAN = len(SECOND_DIGITS) * 10**7
FIRST = ("Camille", "Lucas", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Jules", "Inès", "Nathan")
LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Moreau")
TAGS = ("vip", "newsletter", "client", "prospect", "b2b")
CITIES = ("Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille", "Bordeaux", "Rennes")


# -- the contacts --------------------------------------------------------------------------
def national(i: int) -> str:
    """The i-th number's 9 national digits (6 + 8 digits), distinct for i < SPAN."""
    j = (i * 48_271 + 12_345) % SPAN
    return f"6{SECOND_DIGITS[j // 10**7]}{j % 10**7:07d}"


def phone(i: int) -> str:
    """The i-th contact's E.164 phone (``+33`` + :func:`national`), distinct for i < SPAN."""
    return f"+33{national(i)}"


def people(n: int) -> list[tuple[str, str, list[str], str]]:
    """(E.164 phone, name, tags, city) of N contacts, the same for a given N everywhere."""
    rng = random.Random(n)
    return [
        (
            phone(i),
            f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}",
            rng.sample(TAGS, rng.randint(1, 2)),
            rng.choice(CITIES),
        )
        for i in range(n)
    ]


# -- the sandbox, in its own process -------------------------------------------------------
def serve_sandbox(
    settings: SandboxSettings,
    conn: Connection,
    seed: Callable[[SandboxApp], Any] | None = None,
) -> None:
    """Child process: ``seed(app)`` if given, serve the sandbox on a free port of 127.0.0.1,
    send (port, what ``seed`` returned or None), serve until anything arrives on ``conn``,
    then send back this process's peak RSS (KiB)."""
    server = SandboxServer(settings, port=0)
    seeded = seed(server.app) if seed is not None else None
    with server:
        conn.send((server.port, seeded))
        conn.recv()
    conn.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    conn.close()


class Sandbox:
    """A sandbox served by a spawned process for the length of a ``with`` block.

    ``seed`` (picklable: a module-level function or a ``functools.partial`` of one) runs in
    that process on the sandbox app before it serves; what it returns is ``self.seeded``.
    ``start_timeout_s`` bounds the wait for the port (seeding included)."""

    def __init__(
        self,
        settings: SandboxSettings,
        seed: Callable[[SandboxApp], Any] | None = None,
        start_timeout_s: float = 60,
    ) -> None:
        self.settings = settings
        self.start_timeout_s = start_timeout_s
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=serve_sandbox, args=(settings, child, seed), daemon=True)
        self.server_rss_mib = 0.0
        self.seeded: Any = None

    def __enter__(self) -> Sandbox:
        self._proc.start()
        if not self._conn.poll(self.start_timeout_s):
            raise RuntimeError("the sandbox process did not start")
        port, self.seeded = self._conn.recv()
        self.url = f"http://127.0.0.1:{port}"
        self.base_urls = base_urls(self.url)
        self._admin = httpx.Client(base_url=f"{self.url}/__sandbox__", timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._admin.close()
        try:
            self._conn.send("stop")
            if self._conn.poll(30):
                self.server_rss_mib = self._conn.recv() / 1024
        finally:
            self._proc.join(30)
            if self._proc.is_alive():
                self._proc.terminate()

    def env(self) -> dict[str, str]:
        """Credentials and base URLs, as ``contactpipe sandbox`` tells a user to export."""
        from contactpipe.demo import sandbox_env

        server = SimpleNamespace(settings=self.settings, base_urls=self.base_urls, url=self.url)
        return sandbox_env(server)  # type: ignore[arg-type]

    def journal(self, api: str, method: str | None = None, path: str | None = None) -> list[dict]:
        """The sandbox's request journal for ``api``, optionally of one method and path."""
        params = {k: v for k, v in (("api", api), ("method", method), ("path", path)) if v}
        resp = self._admin.get("/journal", params=params)
        resp.raise_for_status()
        return resp.json()["entries"]

    def clear_journal(self) -> None:
        """Empty the request journal (every API's)."""
        self._admin.delete("/journal").raise_for_status()

    def counts(self) -> dict[str, dict[str, int]]:
        """The objects each API stores: ``{api: {kind: count}}``."""
        resp = self._admin.get("/counts")
        resp.raise_for_status()
        return resp.json()


# -- the client, in its own process --------------------------------------------------------
class ClientProcessDied(RuntimeError):
    """The client process ended without sending a result (it crashed or was killed)."""

    def __init__(self, message: str, exitcode: int | None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


def _client_main(fn: Callable[..., Any], args: tuple[Any, ...], conn: Connection) -> None:
    conn.send(fn(*args))
    conn.close()


def in_client_process(fn: Callable[..., T], *args: Any, daemon: bool = False) -> T:
    """``fn(*args)`` in a fresh spawned process, so its RSS and heap start from scratch; its
    result comes back by pipe.  ``fn`` and ``args`` must be picklable.  Leave ``daemon`` off
    when ``fn`` starts processes of its own (a :class:`Sandbox`).  Raises
    :class:`ClientProcessDied` when the process sends nothing back."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_client_main, args=(fn, args, send), daemon=daemon)
    proc.start()
    send.close()
    try:
        result = recv.recv()
    except EOFError:
        proc.join()
        raise ClientProcessDied(
            f"{getattr(fn, '__name__', fn)}{args[:2]} failed (exit code {proc.exitcode})",
            proc.exitcode,
        ) from None
    proc.join()
    return result


# -- memory --------------------------------------------------------------------------------
def vm_mib(field: str = "VmHWM") -> float:
    """A ``/proc/self/status`` figure in MiB (``VmHWM``: peak RSS since the last
    :func:`reset_hwm`; ``VmRSS``: the current RSS).  Not on Linux: the lifetime peak."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    m = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    if m is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return int(m.group(1)) / 1024


def reset_hwm() -> None:
    """Reset ``VmHWM`` to the current RSS (``echo 5 > /proc/self/clear_refs``)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


# -- arguments -----------------------------------------------------------------------------
def parse_targets(ap: argparse.ArgumentParser, text: str) -> list[str]:
    """The targets of a comma-separated ``--targets`` value, in order; exits through
    ``ap.error`` on an unknown one."""
    targets = [t.strip() for t in text.split(",") if t.strip()]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        ap.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    return targets


# -- output --------------------------------------------------------------------------------
def mib(nbytes: float) -> str:
    """A byte count as KiB below 1 MiB, else as MiB with one decimal."""
    if nbytes < 2**20:
        return f"{nbytes / 1024:,.0f} KiB"
    return f"{nbytes / 2**20:,.1f} MiB"


def hms(seconds: float) -> str:
    """A duration: seconds below 2 min, else minutes and seconds, or hours and minutes."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    h, rem = divmod(round(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def verdict(ok: bool) -> str:
    """``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


def print_table(head: list[str], rows: list[list[str]]) -> None:
    """``rows`` under ``head`` in left-aligned columns, after a blank line."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print()
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def print_checks(checks: list[tuple[str, bool]]) -> int:
    """One ``PASS``/``FAIL`` line per goal; the exit code: 0 when every goal passed, else 1."""
    for label, ok in checks:
        print(f"{verdict(ok)}  {label}")
    return 0 if all(ok for _, ok in checks) else 1
