"""Connecting and editing a company's store accounts: the rules behind the admin's forms.

An account is never deleted: its write-backs and their timelines refer to it. An admin
disables it instead. Its write-backs then wait (the engine's claim leaves them), and it
leaves the Connection Status panel, the health probes and the product syncs until it is
enabled again. Every change is audited; credentials only as the names of the fields set.

The API address is where the account's credentials go with every call, and the server
makes those calls: so it must be a public https address, unless it is the configured
sandbox or the operator allowed private addresses (:mod:`.addresses`). A company admin
must not be able to make the server call its internal services.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .addresses import AddressRules, origin, private_host
from .connectors import connector_class
from .credentials import set_credentials
from .crypto import CredentialBox
from .models import AuditEvent, StoreAccount, Writeback, WritebackStatus

MAX_NAME = 120
#: One DNS label; a host name is labels joined by dots.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


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


def endpoint_problem(url: str, rules: AddressRules = AddressRules()) -> str | None:  # noqa: B008
    """Why ``url`` cannot be a store's API address, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "Enter the store's full API address, starting with https://."
    if parts.scheme not in ("http", "https") or not _host_name(parts.hostname or ""):
        return "Enter the store's full API address, starting with https://."
    if parts.username or parts.password:
        return "Put the credentials in their own fields, not in the address."
    if parts.query or parts.fragment:
        return "The API address takes no ?query or #fragment."
    if rules.is_sandbox(origin(url)):
        return None
    private = private_host(parts.hostname or "")
    if private and not rules.allow_private:
        return ("This address is on this machine or a private network. Stores are reached "
                "on the internet; the operator of this installation can allow private "
                "addresses (SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS).")
    if parts.scheme == "http" and not private:
        return ("Use https://: the store's credentials go with every call. Plain http:// "
                "is taken only for the marketplace sandbox and allowed private addresses.")
    return None


def normalized_endpoint(url: str) -> str:
    return url.strip().rstrip("/")


def problems(session: Session, company_id: int, values: AccountValues,
             rules: AddressRules = AddressRules(),  # noqa: B008
             account: StoreAccount | None = None) -> dict[str, str]:
    """Every rule the values break, by field. A name or an order source that another
    account of the company has is compared ignoring case and spaces around, so that
    "Shopify-1" next to "shopify-1" is caught rather than silently never matching the
    host's shipments; an edit is checked only on what it changes, so that older
    accounts that break a rule can still be edited or turned off."""
    found: dict[str, str] = {}
    name, source = values.name.strip(), values.order_source.strip()
    for field, value in (("name", name), ("order_source", source)):
        if not value:
            found[field] = "This field is required."
        elif len(value) > MAX_NAME:
            found[field] = f"Field cannot be longer than {MAX_NAME} characters."
        elif any(ord(c) < 32 or ord(c) == 127 for c in value):
            found[field] = "This field cannot hold control characters."
    endpoint = normalized_endpoint(values.endpoint)
    if account is None or endpoint != account.endpoint:
        problem = endpoint_problem(endpoint, rules)
        if problem:
            found["endpoint"] = problem
    others = session.execute(sa.select(StoreAccount.name, StoreAccount.order_source).where(
        StoreAccount.company_id == company_id,
        StoreAccount.id != (account.id if account is not None else 0))).all()
    for other in others:
        if ("order_source" not in found and _changed(account, "order_source", source)
                and other.order_source.strip().casefold() == source.casefold()):
            found["order_source"] = (
                f"The account {other.name!r} already takes the shipments of order source "
                f"{other.order_source!r}; each order source belongs to one account.")
        if ("name" not in found and _changed(account, "name", name)
                and other.name.strip().casefold() == name.casefold()):
            found["name"] = (f"Another account of this company is called {other.name!r}; "
                             "give this one a name that tells them apart.")
    return found


def connect(session: Session, box: CredentialBox, company_id: int, platform: str,
            values: AccountValues, credentials: dict[str, str], actor: Actor,
            rules: AddressRules = AddressRules()) -> StoreAccount:  # noqa: B008
    """A new enabled account with its credentials (encrypted); committed and audited.
    Raises :class:`AccountRefused` with every rule the values break."""
    connector = connector_class(platform)
    found = problems(session, company_id, values, rules)
    secrets = {name: (credentials.get(name) or "").strip()
               for name in connector.credential_fields}
    found.update({name: "This field is required." for name, value in secrets.items()
                  if not value})
    if found:
        raise AccountRefused(found)
    endpoint = normalized_endpoint(values.endpoint)
    account = StoreAccount(company_id=company_id, platform=platform, name=values.name.strip(),
                           order_source=values.order_source.strip(), endpoint=endpoint,
                           options=account_options(platform, endpoint, values.options),
                           enabled=True)
    set_credentials(box, account, secrets)
    session.add(account)
    _commit(session, lambda: session.add(AuditEvent(
        company_id=company_id, user_id=actor.user_id, username=actor.username,
        action="account.connected", target=f"account:{account.id}",
        detail={"platform": platform, "name": account.name,
                "order_source": account.order_source, "endpoint": endpoint,
                "credential_fields": list(connector.credential_fields)})))
    return account


def update(session: Session, box: CredentialBox, account: StoreAccount, values: AccountValues,
           actor: Actor, credentials: dict[str, str] | None = None,
           rules: AddressRules = AddressRules()) -> dict[str, list[Any]]:  # noqa: B008
    """Apply the admin's edit; committed and audited when anything changed. Returns the
    changes as ``{field: [before, after]}``.

    ``credentials``: all of the platform's fields, to replace the stored ones, or none.
    An address on another host (or scheme or port) needs them: the stored ones were made
    for the old store, and a mistyped address must not receive them with the next call."""
    found = problems(session, account.company_id, values, rules, account)
    endpoint = normalized_endpoint(values.endpoint)
    fields = connector_class(account.platform).credential_fields
    given = {name: ((credentials or {}).get(name) or "").strip() for name in fields}
    moved = origin(endpoint) != origin(account.endpoint)
    if any(given.values()) and not all(given.values()):
        found.update({name: "Enter every credential to replace them, or none to keep them."
                      for name, value in given.items() if not value})
    elif moved and "endpoint" not in found and not all(given.values()):
        found.update({name: "Needed again: the address now names another host, and the "
                      "stored credentials are only sent to the host they were set for."
                      for name in fields})
    if found:
        raise AccountRefused(found)
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
    renewed = bool(fields) and all(given.values())
    if not changes and not renewed:
        session.rollback()
        return {}
    for key, (_, value) in changes.items():
        setattr(account, key, value)
    audit = []
    if changes:
        action = ("account.updated" if "enabled" not in changes
                  else "account.enabled" if values.enabled else "account.disabled")
        audit.append(AuditEvent(
            company_id=account.company_id, user_id=actor.user_id, username=actor.username,
            action=action, target=f"account:{account.id}", detail={"changed": dict(changes)}))
    if renewed:
        set_credentials(box, account, given)
        audit.append(AuditEvent(  # the same entry as the credentials form writes
            company_id=account.company_id, user_id=actor.user_id, username=actor.username,
            action="account.credentials_set", target=f"account:{account.id}",
            detail={"fields": list(fields)}))  # which fields, never their values
        changes["credentials"] = [None, list(fields)]
    _commit(session, lambda: session.add_all(audit))
    return changes


def account_options(platform: str, endpoint: str, edited: dict[str, str],
                    current: dict[str, Any] | None = None,
                    old_endpoint: str | None = None) -> dict[str, Any]:
    """The account's options: the platform's defaults for a new account (an option left
    empty keeps its default); for an edited one, what it had, with the options that
    followed the old address (Amazon's login URL, for instance) following the new one;
    then what the admin typed."""
    connector = connector_class(platform)
    defaults = connector.default_options(endpoint)
    allowed = {field.name for field in connector.option_fields}
    typed = {key: value for key, value in edited.items() if key in allowed}
    if current is None:
        options = dict(defaults)
        typed = {key: value for key, value in typed.items() if value or key not in defaults}
    else:
        options = dict(current)
        if old_endpoint is not None and old_endpoint != endpoint:
            before = connector.default_options(old_endpoint)
            for key, value in defaults.items():
                if key not in options or options[key] == before.get(key):
                    options[key] = value
    options.update(typed)
    return options


def option_problem(platform: str, name: str, value: str) -> str | None:
    """Why ``value`` cannot be the option ``name`` of a ``platform`` account, or None."""
    field = next(f for f in connector_class(platform).option_fields if f.name == name)
    if not value:
        return "This field is required." if field.required else None
    if field.pattern and not re.fullmatch(field.pattern, value):
        return field.pattern_message or "This value is not valid here."
    return None


def settings_version(account: StoreAccount) -> str:
    """A fingerprint of the settings the edit form shows. A form loaded before another
    admin's change carries an older one, and saving it would quietly undo that change."""
    shown = [account.name, account.order_source, account.endpoint, account.enabled,
             account.options or {}]
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


def open_writebacks(session: Session, account_id: int) -> int:
    """The account's write-backs not final yet: they go to its address as it is when
    they run, so the edit form says how many would follow an address change."""
    return session.execute(sa.select(sa.func.count()).select_from(Writeback).where(
        Writeback.account_id == account_id,
        Writeback.status.in_([WritebackStatus.PENDING, WritebackStatus.SUBMITTED]))
    ).scalar_one()


def _changed(account: StoreAccount | None, field: str, value: str) -> bool:
    return account is None or getattr(account, field).strip().casefold() != value.casefold()


def _commit(session: Session, then) -> None:
    """Flush (the account gets its id), ``then()`` (the audit), commit. Another admin may
    have taken the order source a moment ago: the unique key says so at the flush."""
    try:
        session.flush()
        then()
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AccountRefused({"order_source": "Another account of this company was just "
                              "given this order source; choose another."}) from None


def _host_name(hostname: str) -> bool:
    """A DNS name or an IP address, nothing else (no spaces, no empty labels)."""
    try:
        ipaddress.ip_address(hostname)
        return True
    except ValueError:
        pass
    labels = hostname.rstrip(".").split(".")
    return len(hostname) <= 253 and all(_LABEL.fullmatch(label) for label in labels) \
        and not labels[-1].isdigit()
