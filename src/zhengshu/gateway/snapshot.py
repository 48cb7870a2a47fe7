"""What one gateway process serves, loaded from the database as plain objects (no ORM on the hot path).

A snapshot holds the credentials (with their decrypted secrets), the services with every version, the
authorizations in force or about to be, and the sources of generated APIs. It is rebuilt whenever the
generation counter moves; the hot path only reads dictionaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from zhengshu.core.db import Database, utcnow
from zhengshu.core.timeutil import local_today
from zhengshu.demand.models import Authorization
from zhengshu.gateway.models import AppCredential, GatewayApp, GatewayService
from zhengshu.gateway.service import current_generation
from zhengshu.lake.connectors import SourceConfig
from zhengshu.lake.models import DataSource
from zhengshu.security.crypto import decrypt_secret
from zhengshu.security.masking import value_masker

# the delivery way (共享方式) an authorization must name to be used through the gateway: one granted for table
# or file delivery does not open the interface
INTERFACE_DELIVERY = "接口"


@dataclass(frozen=True)
class Credential:
    access_key: str
    secret: bytes
    app_id: str
    app_name: str
    org_id: str
    app_active: bool
    expires_at: float | None  # unix seconds; None = no end
    rate_per_s: int | None
    daily_quota: int | None


@dataclass(frozen=True)
class Item:
    key: str
    name: str
    field: str
    column: str | None


@dataclass
class Version:
    number: int
    items: list[Item]
    config: dict[str, Any]
    # proxy
    fields: list[tuple[str, Item]] = field(default_factory=list)  # upstream field → item
    # table
    key_items: list[Item] = field(default_factory=list)
    filter_items: dict[str, Item] = field(default_factory=dict)  # accepted query name → item
    sql_cache: dict[Any, str] = field(default_factory=dict)
    # per (authorization's allowed items, requested fields): the output items with their maskers, and for a
    # proxy the (output field, upstream field, masker) plan; filled by the gateway on first use
    out_cache: dict[Any, Any] = field(default_factory=dict)


@dataclass
class Service:
    id: str
    code: str
    name: str
    kind: str
    entry_id: str
    provider_org_id: str
    active: bool
    current: int
    versions: dict[int, Version]
    rate_per_s: int | None
    app_rate_per_s: int | None
    app_daily_quota: int | None


@dataclass(frozen=True)
class Grant:
    authorization_id: str
    start_on: date
    end_on: date
    rules: dict[str, str]  # item key → masking rule


@dataclass
class Snapshot:
    generation: int
    loaded_at: datetime
    credentials: dict[str, Credential]
    services: dict[str, Service]
    grants: dict[tuple[str, str], list[Grant]]  # (consumer org, entry) → authorizations in force
    sources: dict[str, SourceConfig]
    _allowed: dict[tuple[str, str, date], dict[str, Callable[[Any], Any]] | None] = field(default_factory=dict)

    def allowed_items(self, org_id: str, entry_id: str, today: date) -> dict[str, Callable[[Any], Any]] | None:
        """Item key → masking function for what the organization may receive today; None when it holds no
        authorization in force for the entry. Suppressed items are left out."""
        key = (org_id, entry_id, today)
        try:
            return self._allowed[key]
        except KeyError:
            pass
        grants = [g for g in self.grants.get((org_id, entry_id), ()) if g.start_on <= today <= g.end_on]
        result: dict[str, Callable[[Any], Any]] | None = None
        if grants:
            rules: dict[str, str] = {}
            # the newest authorization decides an item's masking when two cover it
            for grant in sorted(grants, key=lambda g: g.authorization_id):
                rules.update(grant.rules)
            result = {k: masker(r) for k, r in rules.items() if r != "suppress"}
        self._allowed[key] = result
        return result


_MASKERS: dict[str, Callable[[Any], Any]] = {}


def masker(rule: str) -> Callable[[Any], Any]:
    fn = _MASKERS.get(rule)
    if fn is None:
        try:
            fn = value_masker(rule)
        except ValueError:  # an unknown rule withholds the value rather than leak it
            fn = value_masker("suppress")
        _MASKERS[rule] = fn
    return fn


def _version(kind: str, number: int, config: dict[str, Any]) -> Version:
    items = [Item(i["key"], i["name"], i["field"], i.get("column")) for i in config.get("items", [])]
    by_key = {i.key: i for i in items}
    v = Version(number=number, items=items, config=config)
    if kind == "proxy":
        v.fields = [(up, by_key[k]) for up, k in config.get("fields", {}).items() if k in by_key]
    else:
        v.key_items = [by_key[k] for k in config.get("key_items", []) if k in by_key]
        for k in list(config.get("key_items", [])) + list(config.get("filter_items", [])):
            item = by_key.get(k)
            if item is not None:
                v.filter_items[item.field] = item
                v.filter_items[item.name] = item
    return v


def _source_config(source: DataSource) -> SourceConfig:
    return SourceConfig(
        kind=source.kind,
        name=source.name,
        host=source.host,
        port=source.port,
        database=source.database,
        username=source.username,
        password=decrypt_secret(source.secret_encrypted) if source.secret_encrypted else None,
        options=dict(source.options or {}),
    )


def load(session: Session) -> Snapshot:
    now = utcnow()
    today = local_today()
    generation = current_generation(session)
    credentials: dict[str, Credential] = {}
    rows = session.execute(
        select(AppCredential, GatewayApp)
        .join(GatewayApp, GatewayApp.id == AppCredential.app_id)
        .where(AppCredential.status != "revoked")
    ).all()
    for cred, app in rows:
        if cred.expires_at is not None and cred.expires_at <= now:
            continue
        credentials[cred.access_key] = Credential(
            access_key=cred.access_key,
            secret=decrypt_secret(cred.secret_encrypted).encode("utf-8"),
            app_id=app.id,
            app_name=app.name,
            org_id=app.org_id,
            app_active=app.status == "active",
            expires_at=cred.expires_at.timestamp() if cred.expires_at is not None else None,
            rate_per_s=app.rate_per_s,
            daily_quota=app.daily_quota,
        )
    services: dict[str, Service] = {}
    source_ids: set[str] = set()
    for svc in session.scalars(select(GatewayService).options(selectinload(GatewayService.versions))):
        versions = {v.number: _version(svc.kind, v.number, dict(v.config)) for v in svc.versions}
        services[svc.code] = Service(
            id=svc.id,
            code=svc.code,
            name=svc.name,
            kind=svc.kind,
            entry_id=svc.entry_id,
            provider_org_id=svc.provider_org_id,
            active=svc.status == "active",
            current=svc.current_version,
            versions=versions,
            rate_per_s=svc.rate_per_s,
            app_rate_per_s=svc.app_rate_per_s,
            app_daily_quota=svc.app_daily_quota,
        )
        if svc.kind == "table":
            source_ids.update(v.config["source_id"] for v in versions.values() if v.config.get("source_id"))
    grants: dict[tuple[str, str], list[Grant]] = {}
    auths = session.scalars(
        select(Authorization)
        .options(selectinload(Authorization.items))
        .where(
            Authorization.status == "active",
            Authorization.end_on >= today,
            Authorization.delivery_way == INTERFACE_DELIVERY,
        )
    )
    for auth in auths:
        grants.setdefault((auth.consumer_org_id, auth.entry_id), []).append(
            Grant(
                authorization_id=auth.id,
                start_on=auth.start_on,
                end_on=auth.end_on,
                rules={i.item_key: i.masking_rule for i in auth.items},
            )
        )
    sources: dict[str, SourceConfig] = {}
    if source_ids:
        for source in session.scalars(select(DataSource).where(DataSource.id.in_(source_ids))):
            sources[source.id] = _source_config(source)
    return Snapshot(
        generation=generation,
        loaded_at=now,
        credentials=credentials,
        services=services,
        grants=grants,
        sources=sources,
    )


def load_from(database: Database) -> Snapshot:
    with database.session() as session:
        return load(session)


def read_generation(database: Database) -> int:
    with database.session() as session:
        return current_generation(session)
