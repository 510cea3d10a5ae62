"""The webhook endpoint's logic, apart from HTTP: secrets, replay cache, matching, waking."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from setpoint.errors import ConfigError
from setpoint.opsconfig import read_credential
from setpoint.secrets import Secret, register_known_values
from setpoint.server import webhooks
from setpoint.server.previews import Previewer, PreviewJob, PreviewQueue, QueueFull
from setpoint.server.webhooks import Delivery, Ignored, PullRequest, Push, Rejected, ReplayCache

if TYPE_CHECKING:
    from setpoint.engine.engine import Engine

log = logging.getLogger("setpoint.webhooks")

#: wake_source(source_name, reason): poll that source now and wake its targets if it moved.
WakeSource = Callable[[str, str], None]

#: At most one forced poll per source in this many seconds; deliveries in between are folded into
#: one poll at the end of the interval. The delivery ID that replay protection keys on is not
#: covered by any provider's HMAC, so a captured delivery can be resent with fresh IDs: this bound
#: makes such replays cost nothing beyond the polls a busy repository causes anyway.
FORCED_POLL_INTERVAL = 2.0


class ForcedPolls:
    """Rate-limits webhook-forced polls per source without ever dropping one."""

    def __init__(self, wake_source: WakeSource, interval: float = FORCED_POLL_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.wake_source = wake_source
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._pending: set[str] = set()

    def request(self, source: str, reason: str) -> bool:
        """Poll ``source`` now (True) or once at the end of the current interval (False)."""
        with self._lock:
            now = self.clock()
            wait = self._last.get(source, -self.interval) + self.interval - now
            if wait <= 0:
                self._last[source] = now
            elif source in self._pending:
                return False  # already folded into the poll at the end of the interval
            else:
                self._pending.add(source)
                timer = threading.Timer(wait, self._deferred, (source, reason))
                timer.daemon = True
                timer.start()
                return False
        self.wake_source(source, reason)
        return True

    def _deferred(self, source: str, reason: str) -> None:
        with self._lock:
            self._pending.discard(source)
            self._last[source] = self.clock()
        self.wake_source(source, reason)


class WebhookReceiver:
    def __init__(self, engine: Engine, wake_source: WakeSource) -> None:
        self.engine = engine
        self.wake_source = wake_source
        self.polls = ForcedPolls(wake_source)
        cfg = engine.config.server.webhooks
        self.replays = ReplayCache(cfg.replay_window, cfg.replay_cache_size)
        self.max_skew = cfg.generic.max_skew if cfg.generic else 300.0
        self.secrets: dict[str, Secret[bytes]] = {}
        problems = []
        for provider in ("github", "gitlab", "gitea", "bitbucket", "generic"):
            block = getattr(cfg, provider)
            if block is None:
                continue
            try:
                value = read_credential(block.secret_file, block.secret_env, engine.config.base_dir)
            except ValueError as exc:
                problems.append(f"server.webhooks.{provider}: {exc}")
                continue
            register_known_values([value])
            self.secrets[provider] = Secret(value.encode(), f"{provider} webhook secret")
        self.previewer: Previewer | None = None
        self.previews: PreviewQueue | None = None
        if cfg.previews is not None:
            try:
                self.previewer = Previewer(engine, cfg.previews)
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("\n".join(problems))
        if self.previewer is not None and cfg.previews is not None:
            self.previews = PreviewQueue(self.previewer, cfg.previews.max_pending)

    def close(self) -> None:
        """Stop the preview worker (queued previews are dropped; one running gets a while to end)."""
        if self.previews is not None:
            self.previews.stop()

    @property
    def providers(self) -> list[str]:
        return sorted(self.secrets) + (["forgejo"] if "gitea" in self.secrets else [])

    def handle(self, provider: str, headers: Mapping[str, str], body: bytes) -> Delivery:
        """Verify and act on one delivery; ``headers`` have lower-case names."""
        delivery = self._handle(provider, headers, body)
        self.engine.emit("webhook_received", None, {"provider": provider, "result": delivery.result})
        level = logging.INFO if delivery.status < 400 else logging.WARNING
        log.log(level, "webhook %s: %s (%s)%s", provider, delivery.result, delivery.message,
                f" -> {', '.join(delivery.targets)}" if delivery.targets else "")
        return delivery

    def _handle(self, provider: str, headers: Mapping[str, str], body: bytes) -> Delivery:
        key_name = "gitea" if provider == "forgejo" else provider
        secret = self.secrets.get(key_name)
        if secret is None:
            return Delivery(404, "not_configured", f"no secret is configured for {provider} webhooks")
        key = secret.reveal()
        try:
            if provider == "generic":
                delivery_id, push = webhooks.generic(headers, body, key, self.max_skew)
            else:
                parse: Any = getattr(webhooks, key_name)
                delivery_id, push = parse(headers, body, key)
        except Ignored as exc:
            return Delivery(202, "ignored", str(exc))
        except Rejected as exc:
            return Delivery(exc.status, exc.result, exc.message)
        replay_key = f"{provider}:{delivery_id or hashlib.sha256(body).hexdigest()}"
        if not self.replays.first_time(replay_key):
            return Delivery(409, "replayed", "this delivery was already received")
        if isinstance(push, PullRequest):
            return self._preview(push)
        sources = {name: (source.url, source.config.branch) for name, source in self.engine.sources.items()}
        matched = webhooks.matching_sources(push, sources)
        if not matched:
            return Delivery(202, "unmatched", f"no source follows this repository and branch ({push.branch or '-'})")
        targets = tuple(name for name, runner in self.engine.runners.items() if runner.target.source in matched)
        now = [name for name in matched if self.polls.request(name, f"webhook:{provider}")]
        later = [name for name in matched if name not in now]
        message = f"polling {', '.join(now)} now" if now else ""
        if later:
            message += ("; " if message else "") + (f"polling {', '.join(later)} within {self.polls.interval:g}s "
                                                    "(one forced poll per source per interval)")
        return Delivery(202, "accepted", message, tuple(matched), targets)

    def _preview(self, request: PullRequest) -> Delivery:
        """Queue a preview of the request's head on the sources that follow its base branch."""
        if self.previews is None or self.previewer is None or request.provider not in self.previewer.tokens:
            return Delivery(202, "ignored", f"previews of {request.provider} requests are not configured "
                                            f"(server.webhooks.previews.{request.provider})")
        previews = self.engine.config.server.webhooks.previews
        if request.fork and not (previews is not None and previews.forks):
            return Delivery(202, "ignored", f"{request.key} comes from a fork (or a deleted one): not previewed "
                                            "(server.webhooks.previews.forks)")
        sources = {name: (source.url, source.config.branch) for name, source in self.engine.sources.items()}
        matched = webhooks.matching_sources(Push(request.repositories, branch=request.base), sources)
        if not matched:
            return Delivery(202, "unmatched", f"no source follows this repository and branch ({request.base})")
        targets = tuple(name for name, runner in self.engine.runners.items() if runner.target.source in matched)
        try:
            done = self.previews.submit(PreviewJob(request, tuple(matched)))
        except QueueFull as exc:
            return Delivery(503, "overloaded", f"preview of {request.key} refused: {exc}; the reconciler is not "
                                               "affected, push again or run setpoint preview", tuple(matched), targets)
        message = (f"preview of {request.key} at {request.head_sha[:12]} queued" if done == "queued" else
                   f"preview of {request.key} at {request.head_sha[:12]} replaces the one still waiting")
        return Delivery(202, f"preview_{done}", message, tuple(matched), targets)
