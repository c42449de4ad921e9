"""One import per file of a drop, in parallel: dynamic task mapping over the claimed files.

Like ``contactpipe_drop_import``, but each file is validated, imported and archived on its
own (a mapped task group): a bad file goes to ``failed/`` while the others are imported.

Settings: ``CONTACTPIPE_MAPPED_DROPS`` (its own drop folder), ``CONTACTPIPE_CONN_ID``,
``CONTACTPIPE_STATE_DB``, ``CONTACTPIPE_MAX_ERROR_RATE``.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, TriggerRule, dag, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from contactpipe.airflow.operators import (
    SUMMARY_KEY,
    ContactpipeImportOperator,
    ContactpipeValidateOperator,
)
from contactpipe.airflow.triggers import DropFolderTrigger
from contactpipe.drops import DropFolder, content_digest

DROPS = os.environ.get("CONTACTPIPE_MAPPED_DROPS", "/data/contacts/drops-per-file")
CONN_ID = os.environ.get("CONTACTPIPE_CONN_ID", "msgflash_default")
STATE = os.environ.get("CONTACTPIPE_STATE_DB", os.path.join(DROPS, "state.sqlite"))
MAX_ERROR_RATE = float(os.environ.get("CONTACTPIPE_MAX_ERROR_RATE", "0.2"))
# an asset-triggered run has no logical date (no `ds`): the day is the run's run_after
REPORTS = os.path.join(
    DROPS, "reports", "{{ dag_run.run_after | ds }}", "{{ run_id }}", "{{ ti.map_index }}"
)

inbox = Asset(
    name="contactpipe_mapped_drop_inbox",
    watchers=[
        AssetWatcher(
            name="contactpipe_mapped_drop_inbox_watcher",
            trigger=DropFolderTrigger(os.path.join(DROPS, "inbox"), stable_for=5, poll_interval=5),
        )
    ],
)


@dag(
    schedule=[inbox],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["contactpipe"],
)
def contactpipe_drop_mapped() -> None:
    @task
    def claim() -> list[str]:
        folder = DropFolder(DROPS)
        ready, _ = folder.ready(stable_for=0)
        claimed = list(folder.pending())
        for path in ready:
            try:
                claimed.append(folder.claim(path))
            except FileNotFoundError:
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

    @task_group
    def one_file(path: str) -> None:
        validate = ContactpipeValidateOperator(
            task_id="validate",
            inputs=path,
            report_dir=os.path.join(REPORTS, "validate"),
            max_error_rate=MAX_ERROR_RATE,
        )
        load = ContactpipeImportOperator(
            task_id="import",
            conn_id=CONN_ID,
            inputs=path,
            state=STATE,
            report_dir=os.path.join(REPORTS, "import"),
            max_error_rate=MAX_ERROR_RATE,
        )

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def archive(claimed: str, **context: Any) -> dict[str, Any]:
            ti = context["ti"]
            mine = {"map_indexes": ti.map_index}
            summary = (
                ti.xcom_pull(task_ids="one_file.import", **mine)
                or ti.xcom_pull(task_ids="one_file.import", key=SUMMARY_KEY, **mine)
                or ti.xcom_pull(task_ids="one_file.validate", key=SUMMARY_KEY, **mine)
                or {"ok": False, "error": "the run stopped before the import"}
            )
            DropFolder(DROPS).finish(claimed, bool(summary.get("ok")), summary)
            if not summary.get("ok"):
                raise AirflowFailException(f"{claimed} moved to failed/: {summary.get('error')}")
            return summary

        validate >> load >> archive(path)

    one_file.expand(path=claim())


contactpipe_drop_mapped()
