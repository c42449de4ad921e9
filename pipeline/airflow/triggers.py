"""The file-drop trigger: new, complete spreadsheets in a folder, for Airflow 3's
``AssetWatcher`` (event-driven DAGs) or an operator's ``self.defer``.

It polls :func:`contactpipe.drops.scan_ready` (files whose size and mtime have held still for
``stable_for`` seconds; partial and temporary names skipped) every ``poll_interval`` seconds
with ``asyncio.sleep``, and yields one :class:`TriggerEvent` per poll that found files it has
not announced yet (a file announced again only after its size or mtime changed)::

    {"directory": "/drops/inbox", "files": ["/drops/inbox/a.xlsx", ...]}

An asset event made by an ``AssetWatcher`` carries this payload in its extra
(``extra["payload"]``); the DAG run reads it from ``triggering_asset_events``.  The trigger
remembers only what it announced in its own run: after a triggerer restart, files still
waiting are announced again, so the DAG claims them idempotently
(:class:`contactpipe.drops.DropFolder` moves a claimed file out of the inbox and skips content
it already imported).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from contactpipe.drops import scan_ready


class DropFolderTrigger(BaseEventTrigger):
    """Fires when complete files appear in ``directory``.

    :param directory: the folder to watch (a drop folder's ``inbox/``).
    :param stable_for: seconds a file's size and mtime must not change before it counts.
    :param poll_interval: seconds between two scans.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        stable_for: float = 2.0,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.directory = os.fspath(directory)
        self.stable_for = float(stable_for)
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "directory": self.directory,
                "stable_for": self.stable_for,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        seen: dict[Any, Any] | None = None
        announced: dict[str, tuple[int, int]] = {}
        folder = Path(self.directory)
        while True:
            if folder.is_dir():
                ready, seen = await asyncio.to_thread(
                    scan_ready, folder, stable_for=self.stable_for, seen=seen
                )
                fresh = []
                for path in ready:
                    try:
                        st = path.stat()
                    except OSError:  # claimed or removed since the scan
                        continue
                    mark = (st.st_size, st.st_mtime_ns)
                    if announced.get(str(path)) != mark:
                        announced[str(path)] = mark
                        fresh.append(str(path))
                live = {str(p) for p in ready}
                for gone in set(announced) - live:
                    if not Path(gone).exists():
                        del announced[gone]
                if fresh:
                    self.log.info("%d new file(s) ready in %s", len(fresh), self.directory)
                    yield TriggerEvent({"directory": self.directory, "files": sorted(fresh)})
            await asyncio.sleep(self.poll_interval)
