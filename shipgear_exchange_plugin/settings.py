"""Per-company plugin settings: the manifest declares them, the database holds values."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .manifest import Manifest
from .models import CompanySettings


def values(session: Session, manifest: Manifest, company_id: int) -> dict[str, Any]:
    """The company's settings with the manifest's defaults filled in."""
    merged = manifest.setting_defaults()
    row = session.get(CompanySettings, company_id)
    if row is not None:
        merged.update({k: v for k, v in row.values.items() if k in merged})
    return merged


def describe(session: Session, manifest: Manifest, company_id: int) -> list[dict[str, Any]]:
    current = values(session, manifest, company_id)
    return [
        {"key": s["key"], "label": s["label"], "type": s["type"], "value": current[s["key"]]}
        for s in manifest.data["settings"]
    ]


def update(session: Session, manifest: Manifest, company_id: int,
           changes: dict[str, Any]) -> dict[str, Any]:
    """Store new values for declared settings (unknown keys are refused); no commit."""
    known = manifest.setting_defaults()
    unknown = set(changes) - set(known)
    if unknown:
        raise KeyError(f"unknown settings: {', '.join(sorted(unknown))}")
    row = session.get(CompanySettings, company_id)
    if row is None:
        row = CompanySettings(company_id=company_id, values={})
        session.add(row)
    row.values = {**row.values, **changes}
    return row.values
