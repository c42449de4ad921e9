"""WAAPI state: contacts and groups of one WhatsApp number, field validation, bulk upsert.

Choices made where the docs are silent
--------------------------------------
- Ids are 24 lowercase hex characters, like the MongoDB ObjectIds of the examples.
- Phones are accepted only in E.164 with ``+`` and stored and returned without it
  (``"919876543210"``); uniqueness is on that stored form.
- Unset optional fields come back as ``null`` (``email``, ``language_code``, ``notes``);
  booleans default to ``opt_out=false``, ``opt_out_marketing=false``,
  ``reply_bot_enabled=true``; ``tags`` to ``[]``, ``custom_fields`` to ``{}``.
- ``email`` must look like ``local@domain.tld`` (``""`` or null clears it).
- ``custom_fields``: keys outside ``waapi_custom_fields`` are silently dropped (the doc's
  "unknown field names are silently ignored"); ``None`` (the default) accepts every key.
  Updates merge ``custom_fields`` into the stored ones (the doc's update example sends one key);
  every other field sent replaces the stored value.
- Bulk: entries accept the create fields plus ``first_name`` / ``last_name`` (joined with a
  space when ``name`` is absent) and ``groups`` (names, matched case-insensitively, created
  when missing); an entry with another field, or any field of the wrong type, is skipped
  and listed in ``errors`` (``BulkEntry`` in ``schemas/apis/waapi.yaml``).  A new contact
  without any name gets ``""``.  Groups are only ever added,
  never removed, by a bulk call.
- Bulk counts: ``created + updated + skipped == len(contacts)``.  ``skipped`` counts entries
  not written: invalid entries, a phone repeated within the same request (the first occurrence
  wins), and entries that would change nothing.  The first two are also listed in ``errors``
  as ``{"index": <0-based position>, "phone": <as sent or null>, "error": <message>}``;
  unchanged entries are not.
- Group names are unique case-insensitively.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import E164_RE, Clock, is_e164, iso_ms, paused_gc
from .settings import SandboxSettings

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BOOLS = ("opt_out", "opt_out_marketing", "reply_bot_enabled")
INVALID_PHONE = "Invalid phone number. Use E.164 format (e.g. +919876543210)."


@dataclass(slots=True)
class Contact:
    id: str
    name: str
    phone: str
    created_at: str
    updated_at: str
    email: str | None = None
    language_code: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    opt_out: bool = False
    opt_out_marketing: bool = False
    reply_bot_enabled: bool = True
    custom_fields: dict[str, Any] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)

    def full(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "name": self.name,
            "phone": self.phone,
            "email": self.email,
            "language_code": self.language_code,
            "tags": list(self.tags),
            "notes": self.notes,
            "opt_out": self.opt_out,
            "opt_out_marketing": self.opt_out_marketing,
            "reply_bot_enabled": self.reply_bot_enabled,
            "custom_fields": dict(self.custom_fields),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "name": self.name,
            "phone": self.phone,
            "email": self.email,
            "tags": list(self.tags),
            "opt_out": self.opt_out,
            "createdAt": self.created_at,
        }


@dataclass(slots=True)
class Group:
    id: str
    name: str
    description: str | None
    created_at: str
    updated_at: str
    contacts: dict[str, None] = field(default_factory=dict)

    def to_dict(self, contacts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "_id": self.id,
            "name": self.name,
            "description": self.description,
            "contacts": list(self.contacts) if contacts is None else contacts,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


class FieldError(ValueError):
    """A field of a contact payload is invalid; the message is safe to return."""


def _email(value: Any, settings: SandboxSettings) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is not str or not EMAIL_RE.match(value):
        raise FieldError("Invalid email address.")
    return value


def _language(value: Any, settings: SandboxSettings) -> str | None:
    if value is not None and type(value) is not str:
        raise FieldError("language_code must be a string.")
    return value or None


def _tags(value: Any, settings: SandboxSettings) -> list[str]:
    if type(value) is not list or (value and set(map(type, value)) != {str}):
        raise FieldError("tags must be an array of strings.")
    return list(value)


def _notes(value: Any, settings: SandboxSettings) -> str | None:
    if value is not None and type(value) is not str:
        raise FieldError("notes must be a string.")
    if value is not None and len(value) > settings.waapi_notes_max:
        raise FieldError(f"notes must be at most {settings.waapi_notes_max} characters.")
    return value


def _custom(value: Any, settings: SandboxSettings) -> dict[str, Any]:
    if type(value) is not dict:
        raise FieldError("custom_fields must be an object.")
    allowed = settings.waapi_custom_fields
    return dict(value) if allowed is None else {k: v for k, v in value.items() if k in allowed}


def _boolean(key: str) -> Callable[[Any, SandboxSettings], bool]:
    def check(value: Any, settings: SandboxSettings) -> bool:
        if type(value) is not bool:
            raise FieldError(f"{key} must be a boolean.")
        return value

    return check


OPTIONAL: dict[str, Callable[[Any, SandboxSettings], Any]] = {
    "email": _email,
    "language_code": _language,
    "tags": _tags,
    "notes": _notes,
    "custom_fields": _custom,
    **{key: _boolean(key) for key in BOOLS},
}
OPTIONAL_KEYS = frozenset(OPTIONAL)
BULK_KEYS = OPTIONAL_KEYS | {"name", "first_name", "last_name", "phone", "groups"}
"""The fields of a bulk entry (``BulkEntry`` in ``schemas/apis/waapi.yaml``)."""


def optional_fields(body: dict[str, Any], settings: SandboxSettings, out: dict[str, Any]) -> None:
    """Validate the optional contact fields present in ``body`` into ``out``."""
    for key in body.keys() & OPTIONAL_KEYS:
        out[key] = OPTIONAL[key](body[key], settings)


def check_fields(
    body: dict[str, Any], settings: SandboxSettings, *, partial: bool
) -> dict[str, Any]:
    """Validated attribute changes for a contact payload (create when not ``partial``)."""
    out: dict[str, Any] = {}
    if "name" in body or not partial:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FieldError(
                "Name and phone are required." if not partial else "Name cannot be empty."
            )
        out["name"] = name.strip()
    if "phone" in body or not partial:
        phone = body.get("phone")
        if phone is None and not partial:
            raise FieldError("Name and phone are required.")
        if not is_e164(phone):
            raise FieldError(INVALID_PHONE)
        out["phone"] = phone[1:]
    optional_fields(body, settings, out)
    return out


def _group_name(value: object) -> bool:
    return type(value) is str and bool(value.strip())


class WaapiStore:
    def __init__(self, settings: SandboxSettings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self.contacts: dict[str, Contact] = {}
        self.by_phone: dict[str, str] = {}
        self.groups: dict[str, Group] = {}
        self.group_names: dict[str, str] = {}
        self._counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
        self._machine = os.urandom(5).hex()

    def _id_factory(self) -> Callable[[], str]:
        prefix = f"{int(self.clock.wall().timestamp()) & 0xFFFFFFFF:08x}{self._machine}"
        counter = self._counter
        return lambda: f"{prefix}{next(counter) & 0xFFFFFF:06x}"

    def new_id(self) -> str:
        return self._id_factory()()

    def now_iso(self) -> str:
        return iso_ms(self.clock.wall())

    def create(self, fields: dict[str, Any], now: str | None = None) -> Contact:
        now = now or self.now_iso()
        name, phone = fields.pop("name", ""), fields.pop("phone")
        contact = Contact(self.new_id(), name, phone, now, now, **fields)
        self.contacts[contact.id] = contact
        self.by_phone[contact.phone] = contact.id
        return contact

    @staticmethod
    def changes(contact: Contact, fields: dict[str, Any]) -> dict[str, Any]:
        """The subset of ``fields`` that would change ``contact`` (custom fields merged)."""
        diff: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "custom_fields":
                merged = {**contact.custom_fields, **value}
                if merged != contact.custom_fields:
                    diff[key] = merged
            elif getattr(contact, key) != value:
                diff[key] = value
        return diff

    def apply(self, contact: Contact, diff: dict[str, Any], now: str | None = None) -> None:
        if "phone" in diff:
            del self.by_phone[contact.phone]
            self.by_phone[diff["phone"]] = contact.id
        for key, value in diff.items():
            setattr(contact, key, value)
        contact.updated_at = now or self.now_iso()

    def delete(self, contact_id: str) -> bool:
        contact = self.contacts.pop(contact_id, None)
        if contact is None:
            return False
        del self.by_phone[contact.phone]
        for gid in contact.groups:
            self.groups[gid].contacts.pop(contact_id, None)
        return True

    def group_named(self, name: str) -> Group | None:
        gid = self.group_names.get(name.strip().casefold())
        return self.groups[gid] if gid else None

    def create_group(self, name: str, description: str | None, now: str | None = None) -> Group:
        now = now or self.now_iso()
        group = Group(self.new_id(), name.strip(), description, now, now)
        self.groups[group.id] = group
        self.group_names[group.name.casefold()] = group.id
        return group

    def rename_group(self, group: Group, name: str) -> None:
        self.group_names.pop(group.name.casefold(), None)
        group.name = name.strip()
        self.group_names[group.name.casefold()] = group.id

    def delete_group(self, group_id: str) -> bool:
        group = self.groups.pop(group_id, None)
        if group is None:
            return False
        self.group_names.pop(group.name.casefold(), None)
        for cid in group.contacts:
            self.contacts[cid].groups.discard(group_id)
        return True

    def join(self, group: Group, contact: Contact) -> bool:
        if contact.id in group.contacts:
            return False
        group.contacts[contact.id] = None
        contact.groups.add(group.id)
        return True

    def leave(self, group: Group, contact_id: str) -> bool:
        if contact_id not in group.contacts:
            return False
        del group.contacts[contact_id]
        self.contacts[contact_id].groups.discard(group.id)
        return True

    def bulk_upsert(self, entries: list[Any]) -> dict[str, Any]:
        """Upsert by phone; see the module docstring for the counting rules."""
        with paused_gc():
            return self._bulk_upsert(entries)

    def _bulk_upsert(self, entries: list[Any]) -> dict[str, Any]:
        now = self.now_iso()
        new_id = self._id_factory()
        created = updated = skipped = 0
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        groups: dict[str, Group] = {}
        contacts, by_phone, match = self.contacts, self.by_phone, E164_RE.match
        for index, entry in enumerate(entries):
            phone = entry.get("phone") if type(entry) is dict else None
            try:
                if type(entry) is not dict:
                    raise FieldError("Each contact must be an object.")
                if not entry.keys() <= BULK_KEYS:
                    unknown = ", ".join(sorted(map(str, entry.keys() - BULK_KEYS)))
                    raise FieldError(f"Unknown field(s): {unknown}.")
                if phone is None:
                    raise FieldError("phone is required.")
                if type(phone) is not str or match(phone) is None:
                    raise FieldError(INVALID_PHONE)
                digits = phone[1:]
                if digits in seen:
                    raise FieldError("Duplicate phone in this request; first occurrence kept.")
                fields = self._bulk_fields(entry)
                names = entry.get("groups", ())
                if ("groups" in entry and type(names) is not list) or (
                    names and not all(map(_group_name, names))
                ):
                    raise FieldError("groups must be an array of non-empty group names.")
            except FieldError as exc:
                skipped += 1
                errors.append({"index": index, "phone": phone, "error": str(exc)})
                continue
            seen.add(digits)
            existing_id = by_phone.get(digits)
            diff: dict[str, Any] = {}
            if existing_id is None:
                contact = Contact(new_id(), fields.pop("name", ""), digits, now, now, **fields)
                contacts[contact.id] = contact
                by_phone[digits] = contact.id
                created += 1
            else:
                contact = contacts[existing_id]
                diff = self.changes(contact, fields)
                if diff:
                    self.apply(contact, diff, now)
            joined = False
            for name in names:
                key = name.strip().casefold()
                group = (
                    groups.get(key) or self.group_named(name) or self.create_group(name, None, now)
                )
                groups[key] = group
                joined = self.join(group, contact) or joined
            if existing_id is not None:
                if diff or joined:
                    updated += 1
                    contact.updated_at = now
                else:
                    skipped += 1
        return {"created": created, "updated": updated, "skipped": skipped, "errors": errors}

    def _bulk_fields(self, entry: dict[str, Any]) -> dict[str, Any]:
        name = entry.get("name")
        parts = [entry.get("first_name"), entry.get("last_name")]
        if not all(p is None or isinstance(p, str) for p in parts):
            raise FieldError("first_name and last_name must be strings.")
        if name is None and ("first_name" in entry or "last_name" in entry):
            name = " ".join(p.strip() for p in parts if p and p.strip())
        if name is not None and type(name) is not str:
            raise FieldError("name must be a string.")
        fields: dict[str, Any] = {}
        optional_fields(entry, self.settings, fields)
        if name and name.strip():
            fields["name"] = name.strip()
        return fields
