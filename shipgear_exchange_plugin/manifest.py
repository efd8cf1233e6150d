"""The plugin manifest (``plugin.yaml``): its schema, and a loader that says what is wrong.

A host validates a plugin's manifest before importing anything else of it. A bad manifest
must produce one message naming the file and the field, so that an administrator can fix
it, and must never stop the host from starting: callers catch :class:`ManifestError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_NAME = {"type": "string", "minLength": 1}
_ID = {"type": "string", "pattern": r"^[a-z][a-z0-9_.-]*$"}

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id", "name", "version", "summary", "license", "host_api", "entry", "blueprint",
        "company_buttons", "permissions", "queues", "periodic_jobs", "settings", "migrations",
    ],
    "properties": {
        "id": _ID,
        "name": _NAME,
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+([.+-][0-9A-Za-z.+-]+)?$"},
        "summary": _NAME,
        "license": _NAME,
        "host_api": {"type": "string", "pattern": r"^\d+$"},
        "entry": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*$"},
        "blueprint": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "url_prefix"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                "url_prefix": {"type": "string", "pattern": r"^/"},
            },
        },
        "company_buttons": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["label", "endpoint", "permission"],
                "properties": {"label": _NAME, "endpoint": _NAME, "permission": _ID},
            },
        },
        "permissions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "description", "default_roles"],
                "properties": {
                    "id": _ID,
                    "description": _NAME,
                    "default_roles": {"type": "array", "items": _NAME},
                },
            },
        },
        "queues": {"type": "array", "minItems": 1, "items": _ID},
        "periodic_jobs": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "function", "every", "queue"],
                "properties": {
                    "id": _ID,
                    "function": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*$"},
                    "every": {"type": "integer", "minimum": 1},
                    "queue": _ID,
                },
            },
        },
        "settings": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "label", "type", "default"],
                "properties": {
                    "key": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"},
                    "label": _NAME,
                    "type": {"enum": ["string", "url", "integer", "boolean"]},
                    "default": {},
                },
            },
        },
        "migrations": {
            "type": "object",
            "additionalProperties": False,
            "required": ["package", "version_table", "table_prefix"],
            "properties": {
                "package": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*$"},
                "version_table": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"},
                "table_prefix": {"type": "string", "pattern": r"^[a-z][a-z0-9]*_$"},
            },
        },
    },
}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``data`` keeps the full document for the host."""

    path: Path
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def version(self) -> str:
        return self.data["version"]

    @property
    def queues(self) -> list[str]:
        return list(self.data["queues"])

    @property
    def permissions(self) -> list[dict[str, Any]]:
        return list(self.data["permissions"])

    def roles_with(self, permission: str) -> set[str]:
        for perm in self.data["permissions"]:
            if perm["id"] == permission:
                return set(perm["default_roles"])
        return set()

    def setting_defaults(self) -> dict[str, Any]:
        return {s["key"]: s["default"] for s in self.data["settings"]}


def _field_name(error: jsonschema.ValidationError) -> str:
    parts: list[str] = []
    for part in error.absolute_path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        parts.append(("." if parts else "") + missing)
    if error.validator == "additionalProperties":
        extra = error.message.split("'")[1] if "'" in error.message else "?"
        parts.append(("." if parts else "") + extra)
    return "".join(parts) or "(document)"


def parse_manifest(text: str, path: Path) -> Manifest:
    """Validate manifest text; raise :class:`ManifestError` naming ``path`` and a field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ManifestError(f"{path}: not valid YAML{where}: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: field '(document)': must be a mapping of fields")
    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        if first.validator == "required":
            detail = "is required"
        elif first.validator == "additionalProperties":
            detail = "is not a known manifest field"
        else:
            detail = first.message
        raise ManifestError(f"{path}: field '{_field_name(first)}' {detail}")
    return Manifest(path=path, data=data)


def load_manifest(path: Path | str) -> Manifest:
    """Read and validate the manifest at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return parse_manifest(text, path)
