"""One hook per target, built from :mod:`contactpipe.load.registry`: an Airflow connection
becomes the variables contactpipe reads (:class:`contactpipe.api.Credentials`).

A connection of type ``<target>`` holds:

- ``host``: the base URL (``https://...``; plain ``http://`` only for loopback hosts, as
  everywhere in contactpipe).  A host without a scheme gets ``https://``, ``port`` and
  ``schema`` (the path) when set;
- ``password``: the target's key or token (the registry's ``TargetInfo.secret``);
- ``login``: the account / phone / team id (``TargetInfo.account``), when the target has one;
- ``extra``: any other of the target's variables by name (``{"MSGFLASH_TEAM_ID": "..."}``).

Airflow masks the password in logs and the UI; :class:`~contactpipe.api.Credentials` never
shows a value in its ``repr``.  The classes (``MsgFlashHook``...) are made on first access by
the module ``__getattr__``, so adding a target to the registry adds its hook.
"""

from __future__ import annotations

import functools
import json
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from contactpipe.airflow import hook_class_name
from contactpipe.api import Account, Credentials, account
from contactpipe.errors import UsageError
from contactpipe.load import registry


class ContactpipeHook(BaseHook):
    """The connection of one target as contactpipe's credentials.  Use the subclass of the
    target (``hook_for("waapi")``, or ``BaseHook.get_hook(conn_id)``)."""

    conn_name_attr = "conn_id"
    target: ClassVar[str] = ""
    conn_type: ClassVar[str] = ""
    default_conn_name: ClassVar[str] = ""
    hook_name: ClassVar[str] = ""

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.target:
            raise TypeError("use the hook of a target: contactpipe.airflow.hooks.hook_for(name)")
        self.conn_id = conn_id or self.default_conn_name
        self._credentials: Credentials | None = None

    def get_conn(self) -> Credentials:
        """The variables ``import_contacts(..., credentials=)`` reads, from the connection."""
        if self._credentials is None:
            conn = self.get_connection(self.conn_id)
            self._credentials = connection_credentials(
                self.target, self.conn_id, **connection_fields(conn)
            )
        return self._credentials

    def account(self) -> Account:
        """The account the connection writes to (what the import's asset is named after)."""
        return account(self.target, credentials=self.get_conn())

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: the connection's variables pass contactpipe's checks."""
        try:
            found = self.account()
        except UsageError as exc:
            return False, str(exc)
        return True, f"{registry.info(self.target).title} account {found.label}"


def connection_fields(conn: Any) -> dict[str, Any]:
    """The fields of an Airflow connection that contactpipe reads, by keyword."""
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "login": conn.login,
        "password": conn.password,
        "port": conn.port,
        "schema": conn.schema,
        "extra": conn.extra,
    }


def _with_scheme(host: str, port: int | None, schema: str | None) -> str:
    if "://" in host:
        return host
    url = f"https://{host}"
    if port:
        url += f":{port}"
    if schema:
        url += "/" + schema.lstrip("/")
    return url


def connection_credentials(
    target: str,
    conn_id: str,
    *,
    conn_type: str | None,
    host: str | None,
    login: str | None,
    password: str | None,
    port: int | None = None,
    schema: str | None = None,
    extra: str | dict[str, Any] | None = None,
) -> Credentials:
    """The target's variables from a connection's fields (see the module docstring).  A
    connection of another type, or an extra key that is not one of the target's variables,
    is a :class:`~contactpipe.errors.UsageError` naming the connection, never a value."""
    info = registry.info(target)
    if conn_type and conn_type != info.name:
        raise UsageError(
            f"connection {conn_id!r} is of type {conn_type!r}, not {info.name!r}",
            hint=f"create a {info.title} connection (type {info.name!r})",
        )
    known = (*info.credentials, *info.optional, info.base_url_var)
    values: dict[str, str] = {}
    if extra:
        try:
            fields = json.loads(extra) if isinstance(extra, str) else dict(extra)
        except ValueError as exc:
            raise UsageError(f"connection {conn_id!r}: its extra is not JSON") from exc
        if not isinstance(fields, dict):
            raise UsageError(f"connection {conn_id!r}: its extra must be a JSON object")
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise UsageError(
                f"connection {conn_id!r}: extra keys {unknown} are not {info.title} variables",
                hint=f"use {', '.join(known)}",
            )
        values.update({k: str(v) for k, v in fields.items() if v not in (None, "")})
    if host:
        values[info.base_url_var] = _with_scheme(host.strip(), port, schema)
    if password and info.secret:
        values[info.secret] = password
    if login and info.account:
        values[info.account] = login
    return Credentials(values)


def redis_store_url(
    conn_id: str,
    *,
    conn_type: str | None,
    host: str | None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: str | dict[str, Any] | None = None,
) -> str:
    """The ``--rate-limit-store`` URL of an Airflow connection of type ``redis`` (the fields of
    apache-airflow-providers-redis: host, port, login, password, extra ``db`` and ``ssl``;
    ``schema`` also names the database).  The URL holds the password: contactpipe masks it
    wherever it shows the store; never log it."""
    from urllib.parse import quote

    if conn_type and conn_type != "redis":
        raise UsageError(
            f"connection {conn_id!r} is of type {conn_type!r}, not 'redis'",
            hint="the shared rate limit store is a Redis connection",
        )
    if not host:
        raise UsageError(f"connection {conn_id!r} has no host")
    try:
        fields = json.loads(extra) if isinstance(extra, str) and extra else dict(extra or {})
    except ValueError as exc:
        raise UsageError(f"connection {conn_id!r}: its extra is not JSON") from exc
    if not isinstance(fields, dict):
        raise UsageError(f"connection {conn_id!r}: its extra must be a JSON object")
    db = fields.get("db", schema or 0)
    try:
        db = int(db)
    except (TypeError, ValueError):
        raise UsageError(f"connection {conn_id!r}: db {db!r} is not a number") from None
    ssl = str(fields.get("ssl", "")).lower() in ("1", "true", "yes")
    auth = ""
    if password:
        auth = f"{quote(login or '', safe='')}:{quote(password, safe='')}@"
    elif login:
        auth = f"{quote(login, safe='')}@"
    return f"{'rediss' if ssl else 'redis'}://{auth}{host.strip()}:{port or 6379}/{db}"


def rate_limit_store(conn_id: str) -> str:
    """:func:`redis_store_url` of the Airflow connection ``conn_id``."""
    return redis_store_url(conn_id, **connection_fields(BaseHook.get_connection(conn_id)))


@functools.cache
def hook_for(target: str) -> type[ContactpipeHook]:
    """The hook class of ``target`` (one class per registry name, made once)."""
    info = registry.info(target)
    cls = type(
        hook_class_name(target),
        (ContactpipeHook,),
        {
            "__module__": __name__,
            "__doc__": f"The {info.title} connection (type {info.name!r}) as credentials.",
            "target": info.name,
            "conn_type": info.name,
            "default_conn_name": f"{info.name}_default",
            "hook_name": f"{info.title} (contactpipe)",
        },
    )
    return cls


def __getattr__(name: str) -> type[ContactpipeHook]:
    for target in registry.names():
        if hook_class_name(target) == name:
            cls = hook_for(target)
            globals()[name] = cls
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
