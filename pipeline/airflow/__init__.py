"""The Apache Airflow provider shipped with contactpipe (``pip install 'contactpipe[airflow]'``).

Airflow finds it through the ``apache_airflow_provider`` entry point, which names
:func:`get_provider_info`: one connection type per target of
:mod:`contactpipe.load.registry` (``host`` = base URL, ``password`` = the key or token,
``login`` = the account / phone / team id), the hooks (:mod:`contactpipe.airflow.hooks`), the
operators (:mod:`contactpipe.airflow.operators`) and the file-drop trigger
(:mod:`contactpipe.airflow.triggers`).  Design choices: ``docs/airflow.md``.

This module imports no Airflow and no target class: Airflow reads the provider info (and the
connection forms it describes) without importing the hooks.
"""

from __future__ import annotations

from typing import Any

from contactpipe import __version__
from contactpipe.load import registry

HOOKS_MODULE = "contactpipe.airflow.hooks"


def hook_class_name(target: str) -> str:
    """The hook class of ``target``'s connection type (``MsgFlashHook``), built from the
    registry's title."""
    title = "".join(ch for ch in registry.info(target).title if ch.isalnum())
    return f"{title}Hook"


def _connection_type(info: registry.TargetInfo) -> dict[str, Any]:
    def label(var: str, fallback: str) -> str:
        return info.labels.get(var, fallback)

    relabeling = {"host": label(info.base_url_var, "Base URL")}
    placeholders = {
        "host": info.default_base_url or "https://<your vendor host>/api",
        "extra": "{}",
    }
    hidden = ["schema", "port"]
    if info.secret:
        relabeling["password"] = label(info.secret, info.secret)
    else:
        hidden.append("password")
    if info.account:
        relabeling["login"] = label(info.account, info.account)
        placeholders["login"] = info.account
    else:
        hidden.append("login")
    return {
        "connection-type": info.name,
        "hook-class-name": f"{HOOKS_MODULE}.{hook_class_name(info.name)}",
        "hook-name": f"{info.title} (contactpipe)",
        "ui-field-behaviour": {
            "hidden-fields": hidden,
            "relabeling": relabeling,
            "placeholders": placeholders,
        },
    }


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ``ProvidersManager`` reads from the ``apache_airflow_provider`` entry
    point (the keys of Airflow's ``provider_info.schema.json``)."""
    integration = "contactpipe"
    return {
        "package-name": "contactpipe",
        "name": "contactpipe",
        "description": (
            "Spreadsheets to WhatsApp contact APIs: validate, import, export and delete "
            f"contacts of {registry.titles()}."
        ),
        "versions": [__version__],
        "integrations": [{"integration-name": integration, "tags": ["service"]}],
        "hooks": [{"integration-name": integration, "python-modules": [HOOKS_MODULE]}],
        "operators": [
            {"integration-name": integration, "python-modules": ["contactpipe.airflow.operators"]}
        ],
        "triggers": [
            {"integration-name": integration, "python-modules": ["contactpipe.airflow.triggers"]}
        ],
        "connection-types": [_connection_type(i) for i in registry.infos()],
    }
