"""Connecting and editing a company's store accounts: the rules behind the admin's forms.

An account is never deleted: its write-backs and their timelines refer to it. An admin
disables it instead. Its write-backs then wait (the engine's claim leaves them), and it
leaves the Connection Status panel, the health probes and the Products tab until it is
enabled again. Every change is audited; credentials only as the names of the fields set.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .connectors import connector_class
from .credentials import set_credentials
from .crypto import CredentialBox
from .models import AuditEvent, StoreAccount

#: A host name (letters, digits, dots, dashes) or an IP address (IPv6 without brackets).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+")


class AccountRefused(ValueError):
    """Values the admin has to change: ``problems`` maps each field to why."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class AccountValues:
    """What the admin typed. ``options`` holds only the platform's ``option_fields``."""

    name: str
    order_source: str
    endpoint: str
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who made the change, for the audit."""

    user_id: int | None
    username: str | None


def endpoint_problem(url: str, sandbox_url: str | None = None) -> str | None:
    """Why ``url`` cannot be a store's API address, or None. Credentials go with every
    call, so plain http is taken only for this machine and the configured sandbox."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "Enter the store's full API address, starting with https://."
    if parts.scheme not in ("http", "https") or not _HOST.fullmatch(parts.hostname or ""):
        return "Enter the store's full API address, starting with https://."
    if parts.username or parts.password:
        return "Put the credentials in their own fields, not in the address."
    if parts.query or parts.fragment:
        return "The API address takes no ?query or #fragment."
    if parts.scheme == "http" and not (_loopback(parts.hostname)
                                       or _origin(url) == _origin(sandbox_url)):
        return ("Use https://: the store's credentials go with every call. Plain http:// "
                "is taken only for this machine and the marketplace sandbox.")
    return None


def normalized_endpoint(url: str) -> str:
    return url.strip().rstrip("/")


def problems(session: Session, company_id: int, values: AccountValues,
             sandbox_url: str | None = None, account_id: int | None = None) -> dict[str, str]:
    """Every rule the values break, by field: the address, and a name or an order source
    that another account of the company has (compared ignoring case and spaces around,
    so that "Shopify-1" next to "shopify-1" is caught rather than silently never
    matching the host's shipments)."""
    found = {}
    problem = endpoint_problem(normalized_endpoint(values.endpoint), sandbox_url)
    if problem:
        found["endpoint"] = problem
    others = session.execute(sa.select(StoreAccount.name, StoreAccount.order_source).where(
        StoreAccount.company_id == company_id, StoreAccount.id != (account_id or 0))).all()
    source, name = values.order_source.strip(), values.name.strip()
    for other in others:
        if other.order_source.strip().casefold() == source.casefold():
            found["order_source"] = (
                f"The account {other.name!r} already takes the shipments of order source "
                f"{other.order_source!r}; each order source belongs to one account.")
        if other.name.strip().casefold() == name.casefold():
            found["name"] = (f"Another account of this company is called {other.name!r}; "
                             "give this one a name that tells them apart.")
    return found


def connect(session: Session, box: CredentialBox, company_id: int, platform: str,
            values: AccountValues, credentials: dict[str, str], actor: Actor,
            sandbox_url: str | None = None) -> StoreAccount:
    """A new enabled account with its credentials (encrypted); committed and audited.
    Raises :class:`AccountRefused` with every rule the values break."""
    connector = connector_class(platform)
    endpoint = _checked(session, company_id, values, sandbox_url)
    account = StoreAccount(company_id=company_id, platform=platform, name=values.name.strip(),
                           order_source=values.order_source.strip(), endpoint=endpoint,
                           options=account_options(platform, endpoint, values.options),
                           enabled=True)
    set_credentials(box, account, {name: credentials[name]
                                   for name in connector.credential_fields})
    session.add(account)
    session.flush()
    session.add(AuditEvent(
        company_id=company_id, user_id=actor.user_id, username=actor.username,
        action="account.connected", target=f"account:{account.id}",
        detail={"platform": platform, "name": account.name,
                "order_source": account.order_source, "endpoint": endpoint,
                "credential_fields": list(connector.credential_fields)}))
    _commit(session)
    return account


def update(session: Session, box: CredentialBox, account: StoreAccount, values: AccountValues,
           actor: Actor, credentials: dict[str, str] | None = None,
           sandbox_url: str | None = None) -> dict[str, list[Any]]:
    """Apply the admin's edit; committed and audited when anything changed. Returns the
    changes as ``{field: [before, after]}``.

    An address on another host (or scheme or port) needs the credentials again: the
    stored ones were made for the old store, and a mistyped address must not receive
    them with the next call. ``credentials`` then replaces them."""
    endpoint = _checked(session, account.company_id, values, sandbox_url, account.id)
    moved = _origin(endpoint) != _origin(account.endpoint)
    fields = connector_class(account.platform).credential_fields
    given = {name: (credentials or {}).get(name) or "" for name in fields}
    if moved and fields and not all(given.values()):
        raise AccountRefused({name: "Enter it again: the address now names another host, "
                              "and the stored credentials are only sent where they were "
                              "set." for name, value in given.items() if not value})
    after = {
        "name": values.name.strip(),
        "order_source": values.order_source.strip(),
        "endpoint": endpoint,
        "enabled": values.enabled,
        "options": account_options(account.platform, endpoint, values.options,
                                   current=account.options or {},
                                   old_endpoint=account.endpoint),
    }
    changes = {key: [getattr(account, key), value] for key, value in after.items()
               if getattr(account, key) != value}
    renewed = all(given.values()) and bool(fields)
    if not changes and not renewed:
        session.rollback()
        return {}
    for key, (_, value) in changes.items():
        setattr(account, key, value)
    if renewed:
        set_credentials(box, account, given)
        changes["credentials"] = [None, list(fields)]  # which fields, never their values
    if "enabled" in changes:
        action = "account.enabled" if values.enabled else "account.disabled"
    else:
        action = "account.updated"
    session.add(AuditEvent(
        company_id=account.company_id, user_id=actor.user_id, username=actor.username,
        action=action, target=f"account:{account.id}", detail={"changed": changes}))
    _commit(session)
    return changes


def account_options(platform: str, endpoint: str, edited: dict[str, str],
                    current: dict[str, Any] | None = None,
                    old_endpoint: str | None = None) -> dict[str, Any]:
    """The account's options: the platform's defaults for a new account; for an edited
    one, what it had, with the options that followed the old address (Amazon's login
    URL, for instance) following the new one; then what the admin typed."""
    connector = connector_class(platform)
    defaults = connector.default_options(endpoint)
    if current is None:
        options = dict(defaults)
    else:
        options = dict(current)
        if old_endpoint is not None and old_endpoint != endpoint:
            before = connector.default_options(old_endpoint)
            for key, value in defaults.items():
                if key not in options or options[key] == before.get(key):
                    options[key] = value
    allowed = {field.name for field in connector.option_fields}
    options.update({key: value for key, value in edited.items() if key in allowed})
    return options


def option_problem(platform: str, name: str, value: str) -> str | None:
    """Why ``value`` cannot be the option ``name`` of a ``platform`` account, or None."""
    field = next(f for f in connector_class(platform).option_fields if f.name == name)
    if not value:
        return "This field is required." if field.required else None
    if field.pattern and not re.fullmatch(field.pattern, value):
        return field.pattern_message or "This value is not valid here."
    return None


def _checked(session: Session, company_id: int, values: AccountValues,
             sandbox_url: str | None, account_id: int | None = None) -> str:
    found = problems(session, company_id, values, sandbox_url, account_id)
    if found:
        raise AccountRefused(found)
    return normalized_endpoint(values.endpoint)


def _commit(session: Session) -> None:
    """Another admin may have taken the order source a moment ago (the unique key)."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AccountRefused({"order_source": "Another account of this company was just "
                              "given this order source; choose another."}) from None


def _loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _origin(url: str | None) -> tuple[str, str, int | None] | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname or "", parts.port
    except ValueError:
        return None
