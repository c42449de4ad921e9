"""The three APIs' contracts (``schemas/apis/<api>.yaml``, OpenAPI 3.1) as a request and
response checker.

The sandbox checks every request against its API's document before its own logic runs and
refuses one outside it the way that API refuses a bad request; the test suites check every
request contactpipe sends, and every sandbox response, with the same code.

A request is checked for: its path and method (an unknown one is ``not_found``), the
security headers of one of the operation's alternatives (presence only: the sandbox's gate
knows the values), its query parameters (documented ones only, typed and bounded), its
``Content-Type`` (one of the operation's media types; a body where none is documented is
refused), and its body (JSON Schema 2020-12 of that media type; a multipart body by its parts,
each with the content type its ``encoding`` names).

Two modes.  ``strict`` (the test suites' checker) validates everything.  The sandbox's mode
skips the ``items`` of an array marked ``x-contactpipe-item-errors: true`` (WAAPI bulk
entries): the API checks those one by one and reports a bad entry in its answer instead of
refusing the call, so the sandbox's own logic does that.

Validation uses :mod:`jsonschema` (Draft 2020-12, the dialect of OpenAPI 3.1) over the
documents as they are: ``$ref`` s resolve inside each document through a ``referencing``
registry.  Messages never carry a header value, so no credential can leak through them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

APIS = ("msgflash", "waapi", "vobiz")
E164_PATTERN = "^\\+[1-9][0-9]{6,14}$"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a request (or response) is outside the contract.

    ``kind``: ``not_found``, ``security``, ``query``, ``content_type``, ``malformed`` or
    ``body`` (requests); ``response`` (responses).  ``field`` names the parameter, header or
    body location (``contacts/3/phone``); ``message`` says what is wrong."""

    kind: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.field}: {self.message}" if self.field else self.message


@dataclass(slots=True)
class Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    pointer: str
    spec: dict[str, Any]
    params: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.template}"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _strip_item_checks(node: Any) -> None:
    """Drop ``items`` under every ``x-contactpipe-item-errors: true`` (the sandbox mode)."""
    if isinstance(node, dict):
        if node.get("x-contactpipe-item-errors") is True:
            node.pop("items", None)
        for value in node.values():
            _strip_item_checks(value)
    elif isinstance(node, list):
        for value in node:
            _strip_item_checks(value)


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """A query string value as the type its schema names (left a string when it is not)."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds and re.fullmatch(r"[+-]?\d+", raw.strip()):
        return int(raw)
    if "boolean" in kinds and raw in ("true", "false"):
        return raw == "true"
    return raw


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(error: Any) -> str:
    """A short message for one schema error: never the whole (possibly 50,000-item) value."""
    rule, bound, value = error.validator, error.validator_value, error.instance
    size = len(value) if isinstance(value, list | str | dict) else 0
    if rule == "pattern" and bound == E164_PATTERN:
        return "must be an E.164 number ('+' then 7 to 15 digits)"
    messages = {
        "maxItems": f"at most {bound} items (got {size})",
        "minItems": f"at least {bound} item(s) (got {size})",
        "maxLength": f"at most {bound} characters (got {size})",
        "minLength": f"at least {bound} character(s)",
        "maximum": f"at most {bound} (got {_short(value)})",
        "minimum": f"at least {bound} (got {_short(value)})",
        "type": f"must be of type {bound} (got {_short(value)})",
        "enum": f"must be one of {bound} (got {_short(value)})",
        "const": f"must be {bound!r} (got {_short(value)})",
        "pattern": f"must match {bound} (got {_short(value)})",
    }
    return messages.get(rule, error.message if len(error.message) <= 200 else f"invalid ({rule})")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _location(path: Any) -> str:
    return "/".join(str(p) for p in path)


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, str, bytes]]:
    """{part name: (filename, content type, bytes)} of a ``multipart/form-data`` body.
    Raises ValueError when the body does not follow its boundary."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ValueError("no boundary in the Content-Type")
    delimiter = b"--" + match.group(1).encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("the body does not follow its multipart boundary")
    parts: dict[str, tuple[str | None, str, bytes]] = {}
    for chunk in chunks[1:-1]:
        chunk = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a multipart part has no header block")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'(?:^|;)\s*name="([^"]*)"', disposition)
        if not disposition.startswith("form-data") or name is None:
            raise ValueError("a multipart part has no form-data name")
        filename = re.search(r'filename="([^"]*)"', disposition)
        parts[name.group(1)] = (
            filename.group(1) if filename else None,
            _media_type(headers.get("content-type")) or "text/plain",
            content,
        )
    return parts


class Contract:
    """One API's OpenAPI document, ready to check requests and responses against.

    ``base_path`` is the path of the document's first server URL (``/api`` for WAAPI): request
    paths are matched after it."""

    def __init__(self, api: str, document: dict[str, Any]) -> None:
        self.api = api
        self.document = document
        self.base_path = urlsplit(document["servers"][0]["url"]).path.rstrip("/")
        self.security: list[dict[str, list[str]]] = document.get("security", [])
        self.schemes: dict[str, Any] = document.get("components", {}).get("securitySchemes", {})
        lenient = copy.deepcopy(document)
        _strip_item_checks(lenient)
        uri = f"urn:contactpipe:api:{api}"
        self._uri = {True: uri + ":strict", False: uri + ":lenient"}
        self._registry: Registry = Registry().with_resources(
            [
                (self._uri[True], Resource.from_contents(document, DRAFT202012)),
                (self._uri[False], Resource.from_contents(lenient, DRAFT202012)),
            ]
        )
        self._validators: dict[tuple[str, bool], Draft202012Validator] = {}
        self.operations: list[Operation] = []
        for template, item in document["paths"].items():
            regex = re.compile(
                "^"
                + re.sub(
                    r"\\\{([^}]+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(template)
                )
                + "$"
            )
            for method in METHODS:
                if method not in item:
                    continue
                pointer = f"/paths/{_escape(template)}/{method}"
                op = Operation(method, template, regex, pointer, item[method])
                for param in item.get("parameters", []):
                    self._add_param(op, param, f"/paths/{_escape(template)}/parameters")
                for param in item[method].get("parameters", []):
                    self._add_param(op, param, f"{pointer}/parameters")
                self.operations.append(op)
        # Literal segments win over templated ones (OpenAPI's matching rule).
        self.operations.sort(
            key=lambda op: tuple(s.startswith("{") for s in op.template.strip("/").split("/"))
        )

    def warm(self) -> Contract:
        """Build every request validator now, so that no request pays for it (a first request
        stalled by it would bunch the ones behind it against a rate limit)."""
        for op in self.operations:
            for param in op.params.values():
                self._validator(param["pointer"], True).is_valid(None)
            body = op.spec.get("requestBody")
            if body is None:
                continue
            pointer = f"{op.pointer}/requestBody"
            if "$ref" in body:
                pointer, body = body["$ref"].removeprefix("#"), self.resolve(body["$ref"])
            for media in body.get("content", {}):
                for strict in (True, False):
                    schema = f"{pointer}/content/{_escape(media)}/schema"
                    self._validator(schema, strict).is_valid(None)
        return self

    def _add_param(self, op: Operation, param: dict[str, Any], at: str) -> None:
        index = None
        if "$ref" in param:
            ref = param["$ref"]
            param = self.resolve(ref)
            pointer = ref.removeprefix("#") + "/schema"
        else:
            holder = at.rsplit("/parameters", 1)[0]
            spec_params = self.resolve("#" + holder).get("parameters", [])
            index = next(i for i, p in enumerate(spec_params) if p is param)
            pointer = f"{at}/{index}/schema"
        op.params[(param["in"], param["name"])] = {**param, "pointer": pointer}

    def resolve(self, ref: str) -> Any:
        node: Any = self.document
        for token in ref.removeprefix("#/").split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    def _validator(self, pointer: str, strict: bool) -> Draft202012Validator:
        key = (pointer, strict)
        validator = self._validators.get(key)
        if validator is None:
            schema = {"$ref": f"{self._uri[strict]}#{pointer}"}
            validator = Draft202012Validator(schema, registry=self._registry)
            self._validators[key] = validator
        return validator

    def _schema_errors(
        self, pointer: str, instance: Any, kind: str, prefix: str, strict: bool = True
    ) -> list[Violation]:
        errors = sorted(
            self._validator(pointer, strict).iter_errors(instance),
            key=lambda e: (list(map(str, e.absolute_path)), e.message),
        )
        out = []
        for error in errors[:20]:
            parts = [prefix, _location(error.absolute_path)]
            message = _message(error)
            if error.validator == "required" and isinstance(error.instance, dict):
                missing = [k for k in error.validator_value if k not in error.instance]
                parts.append(",".join(missing))
                message = "required field missing"
            elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
                known = error.schema.get("properties", {})
                parts.append(",".join(k for k in error.instance if k not in known))
                message = "field not in the contract"
            out.append(Violation(kind, "/".join(p for p in parts if p), message))
        return list(dict.fromkeys(out))

    # -- matching ----------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation serving ``method path`` (a full request path) and its path params."""
        if self.base_path:
            if path != self.base_path and not path.startswith(self.base_path + "/"):
                return None
            path = path[len(self.base_path) :]
        method = method.lower()
        for op in self.operations:
            if op.method != method:
                continue
            found = op.regex.match(path)
            if found is not None:
                return op, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    # -- requests ----------------------------------------------------------------------
    def check_request(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        strict: bool = True,
        parsed: dict[str, Any] | None = None,
    ) -> list[Violation]:
        """Every way this request is outside the document (empty: it conforms).
        ``headers`` must be case-insensitive (httpx / Starlette headers) or lower-cased.
        ``parsed`` (a dict) receives the decoded JSON body under ``"json"``, so that a server
        does not decode a 50,000-entry body twice."""
        matched = self.match(method, path)
        if matched is None:
            return [Violation("not_found", "", f"no operation {method.upper()} {path}")]
        op, path_params = matched
        problems = self._check_security(op, headers)
        problems += self._check_params(op, path_params, query)
        problems += self._check_body(op, headers.get("content-type"), body, strict, parsed)
        return problems

    def _check_security(self, op: Operation, headers: Mapping[str, str]) -> list[Violation]:
        alternatives = op.spec.get("security", self.security)
        if not alternatives:
            return []
        for alternative in alternatives:
            if all(self._has_credential(name, headers) for name in alternative):
                return []
        names = " or ".join(" + ".join(self._scheme_label(n) for n in alt) for alt in alternatives)
        return [Violation("security", "headers", f"credentials missing: send {names}")]

    def _scheme_label(self, name: str) -> str:
        scheme = self.schemes[name]
        if scheme["type"] == "apiKey":
            return scheme["name"]
        return f"Authorization: {scheme.get('scheme', 'bearer').title()}"

    def _has_credential(self, name: str, headers: Mapping[str, str]) -> bool:
        scheme = self.schemes[name]
        if scheme["type"] == "apiKey" and scheme["in"] == "header":
            return bool(headers.get(scheme["name"].lower(), "").strip())
        if scheme["type"] == "http":
            kind, _, value = headers.get("authorization", "").partition(" ")
            return kind.lower() == scheme.get("scheme", "").lower() and bool(value.strip())
        return False

    def _check_params(
        self, op: Operation, path_params: dict[str, str], query: str
    ) -> list[Violation]:
        problems: list[Violation] = []
        for name, value in path_params.items():
            param = op.params.get(("path", name))
            if param is not None:
                problems += self._schema_errors(
                    param["pointer"], _coerce(value, param["schema"]), "query", name
                )
        seen: dict[str, int] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            seen[name] = seen.get(name, 0) + 1
            param = op.params.get(("query", name))
            if param is None:
                problems.append(Violation("query", name, "unknown query parameter"))
                continue
            if seen[name] == 2:
                problems.append(Violation("query", name, "given more than once"))
            problems += self._schema_errors(
                param["pointer"], _coerce(value, param["schema"]), "query", name
            )
        for (where, name), param in op.params.items():
            if where == "query" and param.get("required") and name not in seen:
                problems.append(Violation("query", name, "required query parameter missing"))
        return problems

    def _check_body(
        self,
        op: Operation,
        content_type: str | None,
        body: bytes,
        strict: bool,
        parsed: dict[str, Any] | None = None,
    ) -> list[Violation]:
        spec = op.spec.get("requestBody")
        if spec is None:
            if body.strip():
                return [Violation("body", "", f"{op.name} takes no request body")]
            return []
        pointer = f"{op.pointer}/requestBody"
        if "$ref" in spec:
            pointer = spec["$ref"].removeprefix("#")
            spec = self.resolve(spec["$ref"])
        if not body.strip():
            if spec.get("required"):
                return [Violation("body", "", "a request body is required")]
            return []
        media = _media_type(content_type)
        content = spec.get("content", {})
        if media not in content:
            expected = " or ".join(content)
            got = f"'{media}'" if media else "no Content-Type"
            return [Violation("content_type", "Content-Type", f"must be {expected}, got {got}")]
        pointer = f"{pointer}/content/{_escape(media)}"
        if media == "application/json" or media.endswith("+json"):
            try:
                instance = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return [Violation("malformed", "", "the body is not valid JSON")]
            if parsed is not None:
                parsed["json"] = instance
            return self._schema_errors(f"{pointer}/schema", instance, "body", "", strict)
        if media == "multipart/form-data":
            return self._check_multipart(content[media], pointer, content_type or "", body)
        return []

    def _check_multipart(
        self, media: dict[str, Any], pointer: str, content_type: str, body: bytes
    ) -> list[Violation]:
        try:
            parts = parse_multipart(body, content_type)
        except ValueError as exc:
            return [Violation("malformed", "", str(exc))]
        problems: list[Violation] = []
        encoding = media.get("encoding", {})
        for name, (_, part_type, _) in parts.items():
            expected = encoding.get(name, {}).get("contentType")
            if expected and part_type not in [t.strip() for t in expected.split(",")]:
                problems.append(
                    Violation("content_type", name, f"part must be {expected}, got '{part_type}'")
                )
        instance = {name: content.decode("latin-1") for name, (_, _, content) in parts.items()}
        problems += self._schema_errors(f"{pointer}/schema", instance, "body", "")
        return problems

    # -- responses ---------------------------------------------------------------------
    def check_response(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[Violation]:
        """Every way this response to ``method path`` is outside the document."""
        matched = self.match(method, path)
        if matched is None:
            return [Violation("not_found", "", f"no operation {method.upper()} {path}")]
        op, _ = matched
        responses = op.spec.get("responses", {})
        key = next(
            (k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None
        )
        if key is None:
            return [Violation("response", "status", f"{status} is not documented for {op.name}")]
        spec = responses[key]
        pointer = f"{op.pointer}/responses/{key}"
        if "$ref" in spec:
            pointer = spec["$ref"].removeprefix("#")
            spec = self.resolve(spec["$ref"])
        problems: list[Violation] = []
        for name, header in spec.get("headers", {}).items():
            if "$ref" in header:
                header = self.resolve(header["$ref"])
            if header.get("required") and name.lower() not in headers:
                problems.append(Violation("response", name, "required header missing"))
        content = spec.get("content")
        if not content:
            if body.strip():
                problems.append(Violation("response", "body", f"{status} must have no body"))
            return problems
        media = _media_type(headers.get("content-type"))
        if media not in content:
            problems.append(
                Violation("response", "Content-Type", f"must be {' or '.join(content)}")
            )
            return problems
        try:
            instance = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return [*problems, Violation("response", "body", "not valid JSON")]
        problems += self._schema_errors(
            f"{pointer}/content/{_escape(media)}/schema", instance, "response", ""
        )
        return problems

    def iter_operations(self) -> Iterator[Operation]:
        return iter(self.operations)


def read_document(api: str) -> dict[str, Any]:
    """The parsed ``schemas/apis/<api>.yaml`` (shipped as package data)."""
    if api not in APIS:
        raise ValueError(f"unknown API {api!r}")
    text = resources.files("contactpipe.schemas").joinpath("apis", f"{api}.yaml").read_text("utf-8")
    return yaml.safe_load(text)


@cache
def contract(api: str) -> Contract:
    """The (cached) :class:`Contract` of ``api``: ``msgflash``, ``waapi`` or ``vobiz``."""
    return Contract(api, read_document(api)).warm()
