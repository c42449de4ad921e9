"""How fast the sandbox serves the bulk calls loaders rely on, over real HTTP on 127.0.0.1.

    .venv/bin/python benchmarks/bench_sandbox.py [--contacts 50000] [--repeat 3]

Starts :class:`contactpipe.sandbox.SandboxServer` on a free port (rate limits off, no added
latency) and times, with httpx as the client:

* one WAAPI bulk upsert of N contacts (the documented maximum is 50,000), then the same call
  again (every entry now an update or unchanged);
* one Vobiz CSV import of 10,000 rows (multipart ``file``);
* a MsgFlash cursor walk over N contacts at the largest page size (100), reporting pages/s.

Prints the median of ``--repeat`` runs (fresh state each time).  The goal from the sandbox issue:
a 50,000-contact bulk call well under a second.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import httpx

from contactpipe.sandbox import SandboxServer, SandboxSettings


def _phones(n: int, cc: str = "+3361") -> list[str]:
    return [f"{cc}{i:07d}" for i in range(n)]


def waapi_bulk(sb: SandboxServer, settings: SandboxSettings, n: int) -> tuple[float, float]:
    url = f"{sb.base_urls['waapi']}/external/contacts/{settings.waapi_encoded_phone_id}/bulk"
    body = {
        "contacts": [
            {"name": f"Contact {i}", "phone": p, "tags": ["bench"], "groups": ["Bench"]}
            for i, p in enumerate(_phones(n))
        ]
    }
    headers = {"Authorization": f"Bearer {settings.waapi_token}"}
    with httpx.Client(timeout=60) as client:
        times = []
        for _ in range(2):
            t = time.perf_counter()
            r = client.post(url, json=body, headers=headers)
            times.append(time.perf_counter() - t)
            r.raise_for_status()
    return times[0], times[1]


def vobiz_import(sb: SandboxServer, settings: SandboxSettings, n: int) -> float:
    rows = "\n".join(f'{p},Contact {i},"vip,bench"' for i, p in enumerate(_phones(n, "+9198")))
    data = ("phone_number,name,tags\n" + rows + "\n").encode()
    headers = {"X-Auth-ID": settings.vobiz_auth_id, "X-Auth-Token": settings.vobiz_auth_token}
    with httpx.Client(timeout=60) as client:
        t = time.perf_counter()
        r = client.post(
            f"{sb.base_urls['vobiz']}/contacts/import",
            files={"file": ("contacts.csv", io.BytesIO(data), "text/csv")},
            headers=headers,
        )
        r.raise_for_status()
        return time.perf_counter() - t


def msgflash_walk(sb: SandboxServer, settings: SandboxSettings, n: int) -> tuple[float, int]:
    """Create n contacts (at most 2,000: one request each), then walk them 100 at a time."""
    headers = {"x-api-key": settings.msgflash_api_key}
    base = f"{sb.base_urls['msgflash']}/api/v1/contacts"
    with httpx.Client(timeout=60, headers=headers) as client:
        for i, p in enumerate(_phones(min(n, 2000), "+3362")):
            client.post(base, json={"name": f"C{i}", "phone": p}).raise_for_status()
        pages, cursor = 0, None
        t = time.perf_counter()
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            data = client.get(base, params=params).json()["data"]
            pages += 1
            cursor = data["nextCursor"]
            if not data["hasMore"]:
                break
        return time.perf_counter() - t, pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contacts", type=int, default=50_000)
    ap.add_argument("--vobiz-rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    settings = SandboxSettings(
        msgflash_rate_limit=None, waapi_rate_limit=None, vobiz_rate_limit=None
    )
    first, second, vobiz, walk, pages = [], [], [], [], 0
    for _ in range(args.repeat):
        with SandboxServer(settings) as sb:
            a, b = waapi_bulk(sb, settings, args.contacts)
            first.append(a)
            second.append(b)
            vobiz.append(vobiz_import(sb, settings, args.vobiz_rows))
            seconds, pages = msgflash_walk(sb, settings, args.contacts)
            walk.append(seconds)
    med = statistics.median
    print(f"sandbox over HTTP on 127.0.0.1, median of {args.repeat} runs")
    print(f"  WAAPI bulk upsert, {args.contacts:,} new contacts:      {med(first):6.3f} s")
    print(f"  WAAPI bulk upsert, same {args.contacts:,} again:        {med(second):6.3f} s")
    print(f"  Vobiz CSV import, {args.vobiz_rows:,} rows:               {med(vobiz):6.3f} s")
    print(f"  MsgFlash cursor walk, {pages} pages of 100:           {med(walk):6.3f} s")


if __name__ == "__main__":
    main()
