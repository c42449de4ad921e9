"""Drop folder -> validate -> import -> archive to done/ or failed/, on each drop.

The ``AssetWatcher`` runs :class:`~contactpipe.airflow.triggers.DropFolderTrigger` in the
triggerer: when complete spreadsheets land in ``<drops>/inbox``, an asset event starts this
DAG.  ``claim`` moves the ready files into ``processing/`` (atomically: two runs never take the
same file), the validate and import operators work on them, and ``archive`` moves them to
``done/`` or ``failed/`` with the run's summary (content already imported is skipped).

Settings (environment of the scheduler and workers): ``CONTACTPIPE_DROPS`` (the drop folder),
``CONTACTPIPE_CONN_ID`` (a msgflash / waapi / vobiz connection), ``CONTACTPIPE_STATE_DB``
(the sync state), ``CONTACTPIPE_MAX_ERROR_RATE``.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from contactpipe.airflow.operators import (
    SUMMARY_KEY,
    ContactpipeImportOperator,
    ContactpipeValidateOperator,
)
from contactpipe.airflow.triggers import DropFolderTrigger
from contactpipe.drops import DropFolder, content_digest

DROPS = os.environ.get("CONTACTPIPE_DROPS", "/data/contacts/drops")
CONN_ID = os.environ.get("CONTACTPIPE_CONN_ID", "msgflash_default")
STATE = os.environ.get("CONTACTPIPE_STATE_DB", os.path.join(DROPS, "state.sqlite"))
MAX_ERROR_RATE = float(os.environ.get("CONTACTPIPE_MAX_ERROR_RATE", "0.2"))
# an asset-triggered run has no logical date (no `ds`): the day is the run's run_after
REPORTS = os.path.join(DROPS, "reports", "{{ dag_run.run_after | ds }}", "{{ run_id }}")

inbox = Asset(
    name="contactpipe_drop_inbox",
    watchers=[
        AssetWatcher(
            name="contactpipe_drop_inbox_watcher",
            trigger=DropFolderTrigger(os.path.join(DROPS, "inbox"), stable_for=5, poll_interval=5),
        )
    ],
)


@dag(
    schedule=[inbox],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["contactpipe"],
)
def contactpipe_drop_import() -> None:
    @task
    def claim() -> list[str]:
        """The ready files of the inbox (and those a killed run left in processing/),
        moved into processing/; content imported before goes straight to done/."""
        folder = DropFolder(DROPS)
        ready, _ = folder.ready(stable_for=0)
        claimed = list(folder.pending())
        for path in ready:
            try:
                claimed.append(folder.claim(path))
            except FileNotFoundError:  # another run took it
                continue
        fresh = []
        for path in claimed:
            if folder.already_done(content_digest(path)):
                folder.finish(path, True, {}, note="content already imported")
            else:
                fresh.append(str(path))
        if not fresh:
            raise AirflowSkipException("nothing new in the drop folder")
        return fresh

    files = claim()
    validate = ContactpipeValidateOperator(
        task_id="validate",
        inputs=files,
        report_dir=os.path.join(REPORTS, "validate"),
        max_error_rate=MAX_ERROR_RATE,
    )
    load = ContactpipeImportOperator(
        task_id="import",
        conn_id=CONN_ID,
        inputs=files,
        state=STATE,
        report_dir=os.path.join(REPORTS, "import"),
        max_error_rate=MAX_ERROR_RATE,
        defer_after=300,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def archive(claimed: list[str] | None, **context: Any) -> dict[str, Any]:
        """done/ when the import went through, failed/ otherwise (with why)."""
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids="import") or ti.xcom_pull(
            task_ids=["import", "validate"], key=SUMMARY_KEY
        )
        if isinstance(summary, list):
            summary = next((s for s in summary if s), None)
        summary = summary or {"ok": False, "error": "the run stopped before the import"}
        folder = DropFolder(DROPS)
        for path in claimed or []:
            folder.finish(path, bool(summary.get("ok")), summary)
        if claimed and not summary.get("ok"):
            raise AirflowFailException(
                f"{len(claimed)} file(s) moved to failed/: {summary.get('error')}"
            )
        return summary

    validate >> load
    archive(files) << load


contactpipe_drop_import()
