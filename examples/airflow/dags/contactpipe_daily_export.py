"""Every day, every contact of the account to a Parquet file: ``<exports>/<ds>/contacts.parquet``
with its report beside it.

Settings: ``CONTACTPIPE_EXPORTS`` (the folder), ``CONTACTPIPE_CONN_ID`` (the connection).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from contactpipe.airflow.operators import ContactpipeExportOperator

EXPORTS = os.environ.get("CONTACTPIPE_EXPORTS", "/data/contacts/exports")
CONN_ID = os.environ.get("CONTACTPIPE_CONN_ID", "msgflash_default")


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=10)},
    tags=["contactpipe"],
)
def contactpipe_daily_export() -> None:
    ContactpipeExportOperator(
        task_id="export",
        conn_id=CONN_ID,
        output_file=os.path.join(EXPORTS, "{{ ds }}", "contacts.parquet"),
        report_dir=os.path.join(EXPORTS, "{{ ds }}", "report"),
        with_groups=True,
    )


contactpipe_daily_export()
