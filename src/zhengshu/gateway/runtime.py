"""The gateway's hot path: a lean ASGI app that checks and serves interface calls.

Per call: signature (HMAC-SM3 over the canonical request, clock skew, nonce replay), the app's credential
and status, the service, the consumer organization's authorization in force today (only authorized items,
masked by the authorization's rules), rate limits and daily quotas, then the upstream (the pooled keep-alive
client of :mod:`upstream`, with a timeout and a circuit breaker) or the generated query over the mounted
table; every call is logged in batches. Nothing here touches the ORM per request: the process serves from a
:mod:`snapshot` that is reloaded when the generation counter moves (polled every
``ZHENGSHU_GATEWAY_REFRESH_MS``, and at once after a change made in this process).

``mount(app, settings)`` mounts it into the main app (``zhengshu serve``); :func:`create_standalone_app` is
the entry point of ``zhengshu gateway`` (one app per worker process).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import date
from typing import Any
from urllib.parse import quote, unquote

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import Database, utcnow
from zhengshu.core.timeutil import local_today
from zhengshu.gateway import service as control
from zhengshu.gateway import signing
from zhengshu.gateway.breaker import CircuitBreaker
from zhengshu.gateway.calllog import CallLogWriter
from zhengshu.gateway.snapshot import Credential, Item, Service, Snapshot, Version, load_from, read_generation
from zhengshu.gateway.tables import SourceUnavailable, TableSource, build_select, open_source
from zhengshu.gateway.upstream import UpstreamError, UpstreamPool
from zhengshu.lake.connectors import SourceConfig
from zhengshu.security.crypto import derive_key
from zhengshu.web.pagination import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
PROBLEM_CT = (b"content-type", b"application/problem+json")
RESERVED_PARAMS = frozenset({"fields", "limit", "cursor"})
_NONCE_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class CallError(Exception):
    """A refused or failed call: HTTP status, stable code, Chinese title and detail."""

    def __init__(self, status: int, code: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        self.extra = extra


# ---- counters shared by processes: rate limits, quotas, nonces ----------------------------------------------


class Counters:
    """Rate limits and daily quotas through ``limits`` (fixed windows), nonces with a TTL. In memory by
    default; with a Redis URL every gateway process shares them."""

    def __init__(self, url: str | None, prefix: str) -> None:
        from limits import RateLimitItemPerDay, RateLimitItemPerSecond

        self.per_second = RateLimitItemPerSecond
        self.per_day = RateLimitItemPerDay
        self._items: dict[tuple[str, int], Any] = {}
        self.url = url
        self.prefix = prefix
        self._nonces: dict[str, float] = {}
        self._nonce_sweep = 0.0
        self.redis: Any = None
        if url:
            from limits.aio.storage import RedisStorage
            from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixed
            from redis.asyncio import Redis

            storage = RedisStorage(
                url.replace("redis://", "async+redis://", 1) if url.startswith("redis://") else url,
                implementation="redispy",
                key_prefix=f"{prefix}:limits",
            )
            self._async = AsyncFixed(storage)
            self._sync = None
            self.redis = Redis.from_url(url)
        else:
            self._sync = _LocalWindows()
            self._async = None
        self.local: _LocalWindows | None = self._sync  # set when counters live in this process

    def item(self, per: str, amount: int) -> Any:
        key = (per, amount)
        item = self._items.get(key)
        if item is None:
            item = (self.per_second if per == "s" else self.per_day)(amount)
            self._items[key] = item
        return item

    async def hit(self, per: str, amount: int, *ids: str) -> bool:
        item = self.item(per, amount)
        if self._sync is not None:
            return self._sync.hit(item, *ids)
        return bool(await self._async.hit(item, *ids))  # type: ignore[union-attr]

    async def fresh_nonce(self, access_key: str, nonce: str, ttl_s: int) -> bool:
        """True the first time (access key, nonce) is seen within ``ttl_s``."""
        if self.redis is not None:
            return bool(await self.redis.set(f"{self.prefix}:nonce:{access_key}:{nonce}", b"1", nx=True, ex=ttl_s))
        return self.fresh_nonce_local(access_key, nonce, ttl_s)

    def fresh_nonce_local(self, access_key: str, nonce: str, ttl_s: int) -> bool:
        """:meth:`fresh_nonce` in process memory (no coroutine: the hot path calls it when there is no Redis)."""
        key = f"{access_key}:{nonce}"
        now = time.monotonic()
        if now > self._nonce_sweep:
            self._nonces = {k: v for k, v in self._nonces.items() if v > now}
            self._nonce_sweep = now + 5
        expires = self._nonces.get(key)
        if expires is not None and expires > now:
            return False
        self._nonces[key] = now + ttl_s
        return True

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


class _LocalWindows:
    """Fixed windows in process memory for ``limits`` items (the same contract as its ``FixedWindowRateLimiter``:
    every hit counts, allowed while the count stays within ``item.amount``). ``limits``' own memory storages
    expire keys with a timer thread or task per key, measured at about a tenth of a call's CPU here; this one
    sweeps stale windows once a second. Day windows follow the Asia/Shanghai day."""

    __slots__ = ("counts", "next_sweep")

    def __init__(self) -> None:
        self.counts: dict[tuple[Any, ...], int] = {}
        self.next_sweep = 0.0

    def _window(self, period: int, now: float) -> int:
        return int((now + (8 * 3600 if period >= 86400 else 0)) // period)

    def hit(self, item: Any, *ids: str) -> bool:
        return self.take(int(item.get_expiry()), item.amount, *ids)

    def take(self, period: int, amount: int, *ids: str) -> bool:
        """One hit in the current ``period``-second window of ``ids``; whether the count stays within ``amount``."""
        now = time.time()
        key = (period, self._window(period, now), *ids)
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        if now >= self.next_sweep:
            self.next_sweep = now + 1.0
            self.counts = {k: v for k, v in self.counts.items() if k[1] >= self._window(k[0], now)}
        return count <= amount


# ---- the app ------------------------------------------------------------------------------------------------


class Gateway:
    """The ASGI app of one gateway process."""

    def __init__(
        self, settings: Settings, database: Database, *, prefix: str | None = None, standalone: bool = False
    ) -> None:
        self.settings = settings
        self.standalone = standalone
        self.database = database
        self.prefix = (settings.gateway_mount_path if prefix is None else prefix).rstrip("/")
        self.snapshot: Snapshot | None = None
        # every change notice bumps ``_wanted``; a reload records which notice it started after, so a call that
        # arrives while an older reload is still loading waits for a fresh one instead of using the old snapshot
        self._wanted = 1
        self._have = 0
        self.counters = Counters(settings.gateway_limits_url or settings.redis_url, settings.gateway_key_prefix)
        self.calls = CallLogWriter(database, flush_ms=settings.gateway_log_flush_ms, batch=settings.gateway_log_batch)
        self.breakers: dict[tuple[str, int], CircuitBreaker] = {}
        self.sources: dict[str, tuple[SourceConfig, TableSource]] = {}
        self.http: UpstreamPool | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._macs: dict[bytes, crypto_hmac.HMAC] = {}
        self._log_key = derive_key(settings.resolved_secret_key(), "gateway-call-log", 32)
        self._today: tuple[float, date] = (0.0, local_today())
        self.max_body = settings.gateway_max_request_kb * 1024
        self.max_response = settings.gateway_max_response_kb * 1024
        self.skew = settings.gateway_clock_skew_s
        self.trust_forwarded = settings.trust_forwarded_for
        self._listener = _weak_listener(self)
        control.local_listeners.append(self._listener)

    # -- lifecycle --

    def mark_stale(self) -> None:
        self._wanted += 1

    @property
    def stale(self) -> bool:
        return self._have != self._wanted

    async def start(self) -> None:
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            self.http = UpstreamPool(limit_per_host=self.settings.gateway_upstream_connections)
            await self.reload()
            if self.standalone:
                _tune_gc()
            self._tasks = [
                asyncio.create_task(self.calls.run(), name="gateway-call-log"),
                asyncio.create_task(self._poll(), name="gateway-refresh"),
            ]
            self._started = True

    async def aclose(self) -> None:
        """Stop the background tasks, write the last call records, close pools (safe to call twice)."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        try:
            await self.calls.flush()
        except Exception:
            log.exception("the last gateway call records could not be written")
        if self.http is not None:
            await self.http.close()
            self.http = None
        for _, source in self.sources.values():
            await source.close()
        self.sources.clear()
        await self.counters.close()
        self._started = False
        if self._listener in control.local_listeners:
            control.local_listeners.remove(self._listener)

    async def reload(self) -> None:
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            if not self.stale and self.snapshot is not None:
                return
            target = self._wanted
            self.snapshot = await asyncio.to_thread(load_from, self.database)
            self._have = target
            await self._sync_sources()

    async def _sync_sources(self) -> None:
        assert self.snapshot is not None
        wanted = self.snapshot.sources
        for source_id in list(self.sources):
            config, source = self.sources[source_id]
            if wanted.get(source_id) != config:
                del self.sources[source_id]
                await source.close()

    async def _poll(self) -> None:
        every = self.settings.gateway_refresh_ms / 1000
        while True:
            await asyncio.sleep(every)
            try:
                generation = await asyncio.to_thread(read_generation, self.database)
                if self.snapshot is None or generation != self.snapshot.generation:
                    self.mark_stale()
                if self.stale:
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving the last snapshot; try again next tick
                log.exception("gateway refresh failed")

    def _mac_hex(self, key: bytes, message: bytes) -> str:
        """Hex HMAC-SM3 of ``message``, starting from a keyed state made once per key (copying it costs about
        half of keying a new one)."""
        base = self._macs.get(key)
        if base is None:
            if len(self._macs) > 10_000:
                self._macs.clear()
            base = self._macs[key] = crypto_hmac.HMAC(key, hashes.SM3())
        mac = base.copy()
        mac.update(message)
        return mac.finalize().hex()

    def today(self) -> date:
        now = time.monotonic()
        if now - self._today[0] > 1.0:
            self._today = (now, local_today())
        return self._today[1]

    # -- ASGI --

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        if not self._started:
            await self.start()
        if self.stale:
            await self.reload()
        await self.handle(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id()
        path: str = scope["path"]
        root = scope.get("root_path") or ""
        local = path[len(root) :] if root and path.startswith(root) else path
        if self.prefix and not root and local.startswith(self.prefix):
            local = local[len(self.prefix) :]
        method: str = scope["method"]
        if local in ("/_health", "/_health/"):
            snap = self.snapshot
            await _send_json(send, 200, {"status": "ok", "generation": snap.generation if snap else None}, request_id)
            return
        call = _CallRecord(request_id, method, self.prefix + "/…")
        status = 200
        code = "ok"
        try:
            payload, call.rows = await self._serve(scope, receive, local, call)
            body = orjson.dumps(payload)
            call.response_bytes = len(body)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        *JSON_HEADERS,
                        (b"content-length", str(len(body)).encode()),
                        (b"x-request-id", request_id.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        except CallError as exc:
            status, code = exc.status, exc.code
            await _send_problem(send, exc, request_id)
        except Exception:  # never leak internals to a caller
            log.exception("gateway call %s failed", request_id)
            status, code = 500, "gateway.internal"
            await _send_problem(
                send, CallError(500, code, "网关内部错误", "网关处理请求时出错，请稍后重试"), request_id
            )
        call.status = status
        call.code = code
        call.latency_ms = (time.perf_counter() - started) * 1000
        self._log(scope, call)

    def _log(self, scope: Scope, call: _CallRecord) -> None:
        svc = call.service
        self.calls.append(
            (
                call.request_id,
                utcnow(),
                call.request_id,
                call.credential.app_id if call.credential else None,
                call.credential.org_id if call.credential else None,
                svc.id if svc else None,
                call.version,
                svc.entry_id if svc else None,
                svc.provider_org_id if svc else None,
                call.method,
                call.path[:300],
                call.params_hash,
                call.status,
                call.code,
                call.rows,
                round(call.latency_ms, 3),
                round(call.upstream_ms, 3) if call.upstream_ms is not None else None,
                call.response_bytes,
                _client_ip(scope, self.trust_forwarded),
            )
        )

    # -- the checks, in order --

    async def _serve(self, scope: Scope, receive: Receive, local: str, call: _CallRecord) -> tuple[Any, int]:
        snap = self.snapshot
        assert snap is not None
        headers = _headers(scope)
        trimmed = local.strip("/")
        segments = [unquote(s) if "%" in s else s for s in trimmed.split("/")] if trimmed else []
        svc = snap.services.get(segments[0]) if segments else None
        call.service = svc  # refused calls count against the service they aimed at, in its provider's log
        # the log keeps the route, never the values in the path (an ID number is a parameter too)
        call.path = f"{self.prefix}/{svc.code}" + "/{…}" * (len(segments) - 1) if svc else f"{self.prefix}/…"
        access_key = headers.get(b"x-zs-accesskey")
        timestamp = headers.get(b"x-zs-timestamp")
        nonce = headers.get(b"x-zs-nonce")
        sig = headers.get(b"x-zs-signature")
        if not (access_key and timestamp and nonce and sig):
            raise CallError(
                401,
                "gateway.unsigned",
                "请求未签名",
                "缺少 X-ZS-AccessKey、X-ZS-Timestamp、X-ZS-Nonce 或 X-ZS-Signature",
            )
        ak = access_key.decode("latin-1")
        cred = snap.credentials.get(ak)
        if cred is None or (cred.expires_at is not None and cred.expires_at <= time.time()):
            raise CallError(401, "gateway.unknown_key", "访问密钥无效", "访问密钥不存在、已撤销或已过有效期")
        call.credential = cred
        ts_text = timestamp.decode("latin-1")
        try:
            ts = int(ts_text)
        except ValueError:
            raise CallError(401, "gateway.bad_timestamp", "时间戳无效", "X-ZS-Timestamp 应为 Unix 秒数") from None
        if abs(time.time() - ts) > self.skew:
            raise CallError(
                401,
                "gateway.stale_timestamp",
                "请求已过期",
                f"时间戳与网关时钟相差超过 {self.skew} 秒，请校准时钟后重新签名",
            )
        nonce_text = nonce.decode("latin-1")
        if not (16 <= len(nonce_text) <= 64) or not _NONCE_OK.issuperset(nonce_text):
            raise CallError(401, "gateway.bad_nonce", "随机串无效", "X-ZS-Nonce 应为 16–64 位字母、数字、- 或 _")
        body = await _read_body(receive, self.max_body)
        digest_name = (headers.get(b"x-zs-body-digest") or b"sm3").decode("latin-1").lower()
        if digest_name not in signing.BODY_DIGESTS:
            raise CallError(401, "gateway.bad_signature", "签名无效", "X-ZS-Body-Digest 只能是 sm3 或 sha256")
        body_hex = signing.body_digest(body, digest_name)
        raw_path = scope.get("raw_path")
        signed_path = raw_path.decode("latin-1").split("?", 1)[0] if raw_path else scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        message = signing.string_to_sign(
            method=call.method,
            path=signed_path,
            query=query,
            body_hex=body_hex,
            timestamp=ts_text,
            nonce=nonce_text,
            access_key=ak,
        )
        expected = self._mac_hex(cred.secret, message)
        if not _equal(expected, sig.decode("latin-1").lower()):
            raise CallError(401, "gateway.bad_signature", "签名无效", "签名与请求内容不符：请按规范重新计算签名")
        # the nonce is spent only by a correctly signed request, so nobody can burn another caller's nonces
        counters = self.counters
        if not (
            counters.fresh_nonce_local(ak, nonce_text, 2 * self.skew)
            if counters.redis is None
            else await counters.fresh_nonce(ak, nonce_text, 2 * self.skew)
        ):
            raise CallError(
                401, "gateway.replayed_nonce", "重复的请求", "该随机串已使用过（疑似重放），请用新的随机串重新签名"
            )
        call.params_hash = self._mac_hex(
            self._log_key, f"{call.method} {signed_path}?{signing.canonical_query(query)} {body_hex}".encode()
        )
        if not cred.app_active:
            raise CallError(403, "gateway.app_disabled", "应用已停用", "该应用已被停用，请联系本部门数据专员")

        if not segments:
            raise CallError(404, "gateway.service_not_found", "未找到该接口服务", "调用地址应为 /<服务代码>…")
        if svc is None:
            raise CallError(
                404, "gateway.service_not_found", "未找到该接口服务", f"没有代码为 {segments[0]} 的接口服务"
            )
        if not svc.active:
            raise CallError(503, "gateway.service_disabled", "接口服务已停用", "提供部门已停用该接口服务")
        number = svc.current
        pinned = headers.get(b"x-zs-version")
        if pinned:
            try:
                number = int(pinned)
            except ValueError:
                number = -1
        version = svc.versions.get(number)
        if version is None:
            raise CallError(
                404,
                "gateway.version_not_found",
                "没有该版本",
                f"接口服务没有版本 {pinned.decode('latin-1') if pinned else number}",
            )
        call.version = number

        allowed = snap.allowed_items(cred.org_id, svc.entry_id, self.today())
        if allowed is None:
            raise CallError(
                403,
                "gateway.not_authorized",
                "未获共享授权",
                "本部门没有该目录有效的共享授权（可能未申请、已暂停、已撤销或已到期）",
            )
        params = _parse_query(query)
        if "%00" in query or any("\x00" in segment for segment in segments):
            # PostgreSQL and MariaDB sources cannot take U+0000: a clear refusal, not a failed upstream
            raise CallError(400, "gateway.bad_parameter", "参数无效", "参数不能包含空字符（\\0）")
        fields = params.pop("fields", None)
        # the output items (and the proxy's field plan) depend only on the version, the authorization's
        # allowed items (one dict per snapshot, organization, entry and day) and the fields asked for
        cache_key = (id(allowed), fields)
        cached = version.out_cache.get(cache_key)
        if cached is None or cached[0] is not allowed:
            out = _output_items(version, allowed, _wanted_fields(fields))
            if len(version.out_cache) > 512:
                version.out_cache.clear()
            cached = (allowed, out, _proxy_plan(version, out) if svc.kind == "proxy" else None)
            version.out_cache[cache_key] = cached
        out = cached[1]

        local = self.counters.local
        if local is not None:  # counters in process memory: no coroutine needed
            self._limits_local(local, cred, svc)
        else:
            await self._limits(cred, svc)
        if svc.kind == "proxy":
            return await self._proxy(svc, version, cached[2], segments[1:], params, body, headers, call)
        return await self._table(svc, version, out, segments[1:], params, call)

    def _limits_local(self, local: _LocalWindows, cred: Credential, svc: Service) -> None:
        """:meth:`_limits` on counters in process memory (the same checks, in the same order)."""
        s = self.settings
        rate = svc.app_rate_per_s or cred.rate_per_s or s.gateway_rate_per_s
        if rate and not local.take(1, rate, "app", cred.app_id, svc.id):
            raise _refusal("rate", rate)
        quota = svc.app_daily_quota or cred.daily_quota or s.gateway_daily_quota
        if quota and not local.take(86400, quota, "quota", cred.app_id, svc.id):
            raise _refusal("quota", quota)
        total = svc.rate_per_s or s.gateway_service_rate_per_s
        if total and not local.take(1, total, "svc", svc.id):
            raise _refusal("service", total)

    async def _limits(self, cred: Credential, svc: Service) -> None:
        s = self.settings
        rate = svc.app_rate_per_s or cred.rate_per_s or s.gateway_rate_per_s
        if rate and not await self.counters.hit("s", rate, "app", cred.app_id, svc.id):
            raise _refusal("rate", rate)
        quota = svc.app_daily_quota or cred.daily_quota or s.gateway_daily_quota
        if quota and not await self.counters.hit("d", quota, "quota", cred.app_id, svc.id):
            raise _refusal("quota", quota)
        total = svc.rate_per_s or s.gateway_service_rate_per_s
        if total and not await self.counters.hit("s", total, "svc", svc.id):
            raise _refusal("service", total)

    # -- proxied upstream --

    def _breaker(self, svc: Service, number: int) -> CircuitBreaker:
        key = (svc.id, number)
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(self.settings.gateway_breaker_failures, self.settings.gateway_breaker_cooldown_s)
            self.breakers[key] = breaker
        return breaker

    async def _proxy(
        self,
        svc: Service,
        version: Version,
        plan: list[tuple[str, str, Callable[[Any], Any]]],
        rest: list[str],
        params: dict[str, str],
        body: bytes,
        headers: dict[bytes, bytes],
        call: _CallRecord,
    ) -> tuple[Any, int]:
        cfg = version.config
        url = cfg["upstream_url"]
        path_params = [p for p in cfg["params"] if p["location"] == "path"]
        if len(rest) != len(path_params):
            names = "/".join(f"{{{p['name']}}}" for p in path_params) or "（无）"
            raise CallError(404, "gateway.bad_path", "调用地址不正确", f"该服务的路径参数为 {names}")
        for p, value in zip(path_params, rest, strict=True):
            url = url.replace(f"{{{p['name']}}}", quote(value, safe=""))
        query_parts = []
        for p in cfg["params"]:
            if p["location"] != "query":
                continue
            value = params.get(p["name"])
            if value is None:
                if p["required"]:
                    raise CallError(400, "gateway.missing_param", "缺少参数", f"缺少必填参数 {p['name']}")
                continue
            query_parts.append(f"{quote(p['name'], safe='')}={quote(value, safe='')}")
        if query_parts:
            url += ("&" if "?" in url else "?") + "&".join(query_parts)
        breaker = self._breaker(svc, version.number)
        if not breaker.allow():
            raise CallError(
                503,
                "gateway.circuit_open",
                "上游接口暂不可用",
                "上游接口连续失败，网关已暂停转发，稍后自动重试",
                retry_after=round(breaker.retry_after(), 1),
            )
        send_headers = {"X-Request-Id": call.request_id}
        if cfg["method"] == "POST":
            send_headers["Content-Type"] = (headers.get(b"content-type") or b"application/json").decode("latin-1")
        up_start = time.perf_counter()
        assert self.http is not None
        try:
            status, raw = await self.http.request(
                cfg["method"],
                url,  # path and query values were percent-encoded above
                headers=send_headers,
                body=body if cfg["method"] == "POST" else None,
                timeout=float(cfg.get("timeout_s") or 5.0),
                max_body=self.max_response,
            )
        except TimeoutError:
            breaker.failure()
            call.upstream_ms = (time.perf_counter() - up_start) * 1000
            raise CallError(504, "gateway.upstream_timeout", "上游接口超时", "上游接口未在规定时间内响应") from None
        except UpstreamError as exc:
            breaker.failure()
            call.upstream_ms = (time.perf_counter() - up_start) * 1000
            raise CallError(502, "gateway.upstream_error", "上游接口不可用", f"无法连接上游接口（{exc}）") from None
        call.upstream_ms = (time.perf_counter() - up_start) * 1000
        if status >= 500:
            breaker.failure()
            raise CallError(
                502, "gateway.upstream_error", "上游接口出错", f"上游接口返回 {status}", upstream_status=status
            )
        breaker.success()
        if raw is None:
            raise CallError(
                502, "gateway.response_too_large", "上游响应过大", f"上游响应超过 {self.max_response // 1024} KB"
            )
        if status == 404:
            return {"items": [], "request_id": call.request_id}, 0
        if status >= 400:
            raise CallError(
                502, "gateway.upstream_rejected", "上游接口拒绝了请求", f"上游接口返回 {status}", upstream_status=status
            )
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise CallError(502, "gateway.upstream_bad_json", "上游响应无法解析", "上游接口返回的不是 JSON") from None
        for part in cfg["result_path"].split(".") if cfg["result_path"] else ():
            data = data.get(part) if isinstance(data, dict) else None
        records = data if isinstance(data, list) else ([data] if isinstance(data, dict) else [])
        items = [{f: fn(r.get(up)) for f, up, fn in plan} for r in records if isinstance(r, dict)]
        return {"items": items, "request_id": call.request_id}, len(items)

    # -- generated from a mounted table --

    def _source(self, source_id: str) -> TableSource:
        entry = self.sources.get(source_id)
        if entry is not None:
            return entry[1]
        assert self.snapshot is not None
        config = self.snapshot.sources.get(source_id)
        if config is None:
            raise CallError(502, "gateway.source_unavailable", "数据源不可用", "该服务的数据源已被删除或停用")
        source = open_source(config, self.settings.gateway_source_connections)
        self.sources[source_id] = (config, source)
        return source

    async def _table(
        self,
        svc: Service,
        version: Version,
        out: list[tuple[Item, Callable[[Any], Any]]],
        rest: list[str],
        params: dict[str, str],
        call: _CallRecord,
    ) -> tuple[Any, int]:
        cfg = version.config
        kind = cfg["source_kind"]
        where: list[str] = []
        values: list[Any] = []
        if rest:
            if len(rest) != 1 or not version.key_items:
                raise CallError(404, "gateway.bad_path", "调用地址不正确", "按键查询的地址为 /<服务代码>/<键值>")
            key_item = version.key_items[0]
            where.append(key_item.column or key_item.field)
            values.append(rest[0])
            limit, offset = self.settings.gateway_max_page_size, 0
        else:
            for name, value in params.items():
                if name in RESERVED_PARAMS:
                    continue
                item = version.filter_items.get(name)
                if item is None:
                    accepted = "、".join(sorted({i.field for i in version.filter_items.values()})) or "（无）"
                    raise CallError(
                        400, "gateway.bad_filter", "不支持的查询条件", f"可按 {accepted} 查询，不支持 {name}"
                    )
                where.append(item.column or item.field)
                values.append(value)
            try:
                limit = int(params.get("limit") or 20)
            except ValueError:
                limit = 0
            if not 1 <= limit <= self.settings.gateway_max_page_size:
                raise CallError(
                    400,
                    "gateway.bad_limit",
                    "每页条数不正确",
                    f"limit 应在 1 到 {self.settings.gateway_max_page_size} 之间",
                )
            try:
                offset = decode_cursor(params.get("cursor"))
            except Exception:
                raise CallError(400, "gateway.bad_cursor", "分页游标无效", "请使用上一页返回的 next_cursor") from None
        if not out:
            return {"items": [], "next_cursor": None, "request_id": call.request_id}, 0
        columns = [item.column or item.field for item, _ in out]
        order = [i.column or i.field for i in version.key_items[:1]] if not rest else []
        cache_key = (tuple(columns), tuple(where), limit + (0 if rest else 1), bool(offset), tuple(order))
        sql = version.sql_cache.get(cache_key)
        if sql is None or offset:
            sql = build_select(
                kind,
                schema=cfg.get("schema"),
                table=cfg["table"],
                columns=columns,
                where=where,
                order_by=order,
                limit=limit + (0 if rest else 1),
                offset=offset,
            )
            if not offset:
                version.sql_cache[cache_key] = sql
        up_start = time.perf_counter()
        try:
            rows = await self._source(cfg["source_id"]).fetch(sql, values, float(cfg.get("timeout_s") or 5.0))
        except SourceUnavailable as exc:
            call.upstream_ms = (time.perf_counter() - up_start) * 1000
            if exc.timeout:
                raise CallError(504, "gateway.source_timeout", "数据源查询超时", str(exc)) from None
            raise CallError(502, "gateway.source_unavailable", "数据源不可用", str(exc)) from None
        call.upstream_ms = (time.perf_counter() - up_start) * 1000
        next_cursor = None
        if not rest and len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(offset + limit)
        fields = [(item.field, fn) for item, fn in out]
        items = [{f: fn(_plain(v)) for (f, fn), v in zip(fields, row, strict=True)} for row in rows]
        return {"items": items, "next_cursor": next_cursor, "request_id": call.request_id}, len(items)


# ---- small helpers ------------------------------------------------------------------------------------------


class _CallRecord:
    __slots__ = (
        "code",
        "credential",
        "latency_ms",
        "method",
        "params_hash",
        "path",
        "request_id",
        "response_bytes",
        "rows",
        "service",
        "status",
        "upstream_ms",
        "version",
    )

    def __init__(self, request_id: str, method: str, path: str) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.credential: Credential | None = None
        self.service: Service | None = None
        self.version: int | None = None
        self.params_hash = ""
        self.status = 0
        self.code = ""
        self.rows = 0
        self.latency_ms = 0.0
        self.upstream_ms: float | None = None
        self.response_bytes = 0


_PROCESS_TAG = os.urandom(4).hex()
_sequence = itertools.count()


def _new_process_tag() -> None:
    global _PROCESS_TAG
    _PROCESS_TAG = os.urandom(4).hex()


os.register_at_fork(after_in_child=_new_process_tag)  # workers forked after import get their own tag


def _request_id() -> str:
    """Like ``new_id`` (time-ordered, unique across processes) without a random read per call: milliseconds,
    this process's random tag, then a sequence number."""
    return f"{int(time.time() * 1000):012x}{_PROCESS_TAG}{next(_sequence) & 0xFFFF:04x}"


def _tune_gc() -> None:
    """A gateway process holds a large, long-lived heap (every feature's modules, the ORM) and allocates many
    short-lived objects per call: freezing the startup heap keeps full collections from walking it again and
    again (measured: most of the CPU a call cost went to collections before this)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _weak_listener(gateway: Gateway) -> Callable[[], None]:
    ref = weakref.ref(gateway)

    def listener() -> None:
        gw = ref()
        if gw is not None:
            gw.mark_stale()

    return listener


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _client_ip(scope: Scope, trust_forwarded: bool) -> str | None:
    if trust_forwarded:
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[-1].strip()[:64]
    client = scope.get("client")
    return client[0] if client else None


def _parse_query(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    if not query:
        return params
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        params[unquote(name.replace("+", " "))] = unquote(value.replace("+", " "))
    return params


def _wanted_fields(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [f.strip() for f in value.split(",") if f.strip()]


def _output_items(
    version: Version, allowed: dict[str, Callable[[Any], Any]], wanted: list[str] | None
) -> list[tuple[Item, Callable[[Any], Any]]]:
    """The service's items the caller receives, each with its masking function."""
    if wanted is None:
        out = [(item, allowed[item.key]) for item in version.items if item.key in allowed]
        if not out:
            raise CallError(403, "gateway.not_authorized", "未获共享授权", "共享授权不包含该服务提供的任何信息项")
        return out
    by_field = {i.field: i for i in version.items} | {i.name: i for i in version.items}
    out = []
    refused = []
    for name in wanted:
        item = by_field.get(name)
        if item is None:
            raise CallError(400, "gateway.unknown_field", "没有该字段", f"该服务没有字段 {name}")
        if item.key not in allowed:
            refused.append(name)
        else:
            out.append((item, allowed[item.key]))
    if refused:
        raise CallError(
            403,
            "gateway.item_not_authorized",
            "信息项未获授权",
            f"以下信息项不在共享授权范围内：{'、'.join(refused)}",
            items=refused,
        )
    return out


def _refusal(limit: str, amount: int) -> CallError:
    """The 429 of a rate limit (per app and service, or per service) or of the daily quota."""
    if limit == "quota":
        return CallError(429, "gateway.quota_exceeded", "今日调用次数已用完", f"每日最多调用 {amount} 次")
    if limit == "service":
        return CallError(
            429,
            "gateway.rate_limited",
            "接口服务繁忙",
            f"该服务每秒最多受理 {amount} 次调用，请稍后重试",
            retry_after=1,
        )
    return CallError(
        429, "gateway.rate_limited", "调用过于频繁", f"每秒最多调用 {amount} 次，请稍后重试", retry_after=1
    )


def _proxy_plan(
    version: Version, out: list[tuple[Item, Callable[[Any], Any]]]
) -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(output field, upstream field, masking function) for each item the caller receives."""
    by_item = {item.key: up for up, item in version.fields}
    return [(item.field, by_item[item.key], fn) for item, fn in out if item.key in by_item]


def _plain(value: Any) -> Any:
    """Database values as JSON values (Decimal, dates and bytes are not JSON)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise CallError(413, "gateway.request_too_large", "请求体过大", f"请求体不能超过 {limit // 1024} KB")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


async def _send_json(send: Send, status: int, payload: Any, request_id: str) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_problem(send: Send, exc: CallError, request_id: str) -> None:
    problem = {
        "type": f"https://zhengshu.org/problems/{exc.code}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
        "request_id": request_id,
        **exc.extra,
    }
    body = orjson.dumps(problem)
    headers = [PROBLEM_CT, (b"content-length", str(len(body)).encode()), (b"x-request-id", request_id.encode())]
    if "retry_after" in exc.extra:
        headers.append((b"retry-after", str(max(1, round(float(exc.extra["retry_after"])))).encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---- entry points ---------------------------------------------------------------------------------------------


class _Dispatch:
    """In front of the main app's middleware stack: gateway calls skip the page sessions, the admission limit
    and the FastAPI routing (none of which they use); the main app's shutdown closes the gateway too."""

    def __init__(self, prefix: str, gateway: Gateway, app: Any) -> None:
        self.prefix = prefix
        self.gateway = gateway
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                await self.gateway(scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            gateway = self.gateway

            async def receive_then_close() -> MutableMapping[str, Any]:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await gateway.aclose()
                return message

            await self.app(scope, receive_then_close, send)
            return
        await self.app(scope, receive, send)


def mount(app: Any, settings: Settings | None = None) -> Gateway:
    """Serve the gateway from the main app (``zhengshu serve``) at ``ZHENGSHU_GATEWAY_MOUNT_PATH``.

    The gateway is placed in front of the app's middleware stack (built on the first request), so calls do not
    pass through the session and admission middleware of the pages; call before the app serves."""
    settings = settings or app.state.settings
    gateway = Gateway(settings, app.state.db)
    build = app.build_middleware_stack
    prefix = gateway.prefix

    def build_with_gateway() -> Any:
        return _Dispatch(prefix, gateway, build())

    app.build_middleware_stack = build_with_gateway
    app.middleware_stack = None
    app.state.gateway = gateway
    return gateway


def create_standalone_app() -> Gateway:
    """``uvicorn --factory zhengshu.gateway.runtime:create_standalone_app`` (what ``zhengshu gateway`` runs)."""
    from zhengshu.bootstrap import load_features

    load_features()
    settings = get_settings()
    url = settings.resolved_database_url()
    pool = {} if url.startswith("sqlite") else {"pool_size": 4, "max_overflow": 2}
    return Gateway(settings, Database(url, **pool), standalone=True)
