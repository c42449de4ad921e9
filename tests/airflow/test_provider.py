"""The provider as Airflow finds it (the ``apache_airflow_provider`` entry point), the hooks
that turn connections into credentials, and the drop-folder trigger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import pytest

from contactpipe.load import registry


def test_provider_info_is_found_through_the_entry_point_with_the_connection_types(
    airflow_db,
) -> None:
    import airflow
    import jsonschema
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManager()
    info = manager.providers["contactpipe"]
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info.data, schema)
    types = {c["connection-type"]: c for c in info.data["connection-types"]}
    assert set(types) == {"msgflash", "waapi", "vobiz"} == set(registry.names())
    for name, conn in types.items():
        meta = registry.info(name)
        hook = ProvidersManagerTaskRuntime().hooks[name]  # what a worker resolves
        assert hook is not None and hook.package_name == "contactpipe"
        assert hook.hook_class_name == conn["hook-class-name"]
        relabel = manager.field_behaviours[name]["relabeling"]
        assert relabel["host"] == "Base URL"
        assert relabel["password"] == meta.labels[meta.secret]
        assert relabel["login"] == meta.labels[meta.account]


def test_a_connection_becomes_the_targets_credentials_with_the_secret_masked(
    connections, sandbox
) -> None:
    from airflow.sdk import BaseHook

    from contactpipe.airflow.hooks import ContactpipeHook
    from contactpipe.demo import sandbox_env

    env = sandbox_env(sandbox)
    for name in registry.names():
        meta = registry.info(name)
        hook = BaseHook.get_hook(f"{name}_default")  # Airflow picks the class by conn type
        assert isinstance(hook, ContactpipeHook) and hook.target == name
        creds = hook.get_conn()
        expected = {
            v: env[v] for v in (*meta.credentials, *meta.optional, meta.base_url_var) if v in env
        }
        assert dict(creds) == expected
        assert env[meta.secret] not in repr(creds)
        ok, message = hook.test_connection()
        assert ok and env[meta.secret] not in message


def test_connection_fields_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from contactpipe.airflow.hooks import connection_credentials
    from contactpipe.errors import UsageError

    creds = connection_credentials(
        "waapi",
        "c",
        conn_type="waapi",
        host="api.example.com",
        login="123",
        password="tok",
        port=8443,
        schema="api",
        extra='{"WAAPI_TOKEN": "ignored-by-password"}',
    )
    assert dict(creds) == {
        "WAAPI_BASE_URL": "https://api.example.com:8443/api",
        "WAAPI_TOKEN": "tok",
        "WAAPI_PHONE_ID": "123",
    }
    with pytest.raises(UsageError, match="of type 'http', not 'waapi'"):
        connection_credentials("waapi", "c", conn_type="http", host=None, login=None, password="x")
    with pytest.raises(UsageError, match=r"extra keys \['token'\]") as exc:
        connection_credentials(
            "msgflash",
            "c",
            conn_type="msgflash",
            host=None,
            login=None,
            password="s3cret",
            extra={"token": "s3cret"},
        )
    assert "s3cret" not in str(exc.value)


def test_drop_folder_trigger_round_trips_and_announces_complete_files_once(tmp_path: Path) -> None:
    from airflow.triggers.base import BaseEventTrigger

    from contactpipe.airflow.triggers import DropFolderTrigger

    trigger = DropFolderTrigger(tmp_path, stable_for=0.3, poll_interval=0.05)
    assert isinstance(trigger, BaseEventTrigger)
    path, kwargs = trigger.serialize()
    assert path == "contactpipe.airflow.triggers.DropFolderTrigger"
    again = DropFolderTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    json.dumps(kwargs)

    (tmp_path / "a.csv").write_text("name,phone\nA,+33612345678\n")
    (tmp_path / "b.xlsx.part").write_text("still uploading")
    (tmp_path / "~$lock.xlsx").write_text("")

    async def collect(n: int, timeout: float) -> list[list[str]]:
        seen: list[list[str]] = []
        gen = again.run()

        async def pull() -> None:
            async for event in gen:
                seen.append(event.payload["files"])
                if len(seen) == 1:
                    # a second file, then the first one changed: both announced (again)
                    (tmp_path / "c.csv").write_text("name,phone\n")
                    time.sleep(0.01)
                    (tmp_path / "a.csv").write_text("name,phone\nA,+33612345679\nB,+33612345670\n")
                if len(seen) >= n:
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pull(), timeout)
        await gen.aclose()
        return seen

    started = time.monotonic()
    events = asyncio.run(collect(3, 5.0))
    assert events[0] == [str(tmp_path / "a.csv")]
    assert time.monotonic() - started >= 0.3  # a file counts once it held still
    assert sorted(f for e in events[1:] for f in e) == [
        str(tmp_path / "a.csv"),
        str(tmp_path / "c.csv"),
    ]
    assert all(os.path.basename(f) in ("a.csv", "c.csv") for e in events for f in e)
    assert len(events) <= 3
