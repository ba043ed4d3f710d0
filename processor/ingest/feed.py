"""The maintained WebSocket connection to the provider.

:meth:`Feed.run` connects (``websockets.asyncio.client.connect``), reads frames, validates and
deduplicates them and hands records to a sink (the writer's queue, which may make it wait). It
reconnects after any disconnection or failed attempt with capped, jittered exponential backoff,
and when no valid frame arrived for ``stale_timeout_ms`` (time spent waiting on a full queue
does not count). Every interruption becomes a :class:`~processor.ingest.records.Gap` when the
first valid frame arrives afterwards. Nothing the server sends ends :meth:`Feed.run`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from processor.ingest.backoff import Backoff
from processor.ingest.config import IngestConfig
from processor.ingest.dedup import RecentIds
from processor.ingest.gaps import GapTracker
from processor.ingest.records import Quarantined, Received, Record
from processor.ingest.validation import Rejection, parse_frame, quarantine_text
from processor.provider_clock import ProviderClock
from processor.stats import ProcessorCounters
from tradekit.logs import event_logger
from tradekit.tasks import cancel_and_wait

log = event_logger("processor.ingest.feed")

Clock = Callable[[], int]
Sink = Callable[[Record], Awaitable[None]]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system clock (integer arithmetic)."""
    return time.time_ns() // 1_000_000


def stream_url(url: str, symbols: frozenset[str]) -> str:
    """``url`` with ``tickers=`` set to ``symbols`` unless it already selects tickers."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "tickers" for key, _ in query):
        return url
    query.append(("tickers", ",".join(sorted(symbols))))
    return urlunsplit(parts._replace(query=urlencode(query, safe=",")))


def _closed_reason(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "disconnected: connection lost without a close frame"
    return f"disconnected: close code {frame.code} {frame.reason!r}"


class Feed:
    """Reads the provider stream forever, feeding validated records to ``sink``."""

    def __init__(
        self,
        *,
        url: str,
        symbols: frozenset[str],
        config: IngestConfig,
        sink: Sink,
        dedup: RecentIds,
        gaps: GapTracker,
        counters: ProcessorCounters,
        clock_ms: Clock = wall_clock_ms,
        rng: random.Random | None = None,
        provider_clock: ProviderClock | None = None,
    ) -> None:
        self._url = stream_url(url, symbols)
        #: Told each new trade's time and arrival, to estimate the provider's clock.
        self._provider_clock = provider_clock
        self._symbols = symbols
        self._config = config
        self._sink = sink
        self._dedup = dedup
        self._gaps = gaps
        self._counters = counters
        self._clock = clock_ms
        self._backoff = Backoff(
            initial_s=config.backoff_initial_ms / 1000,
            maximum_s=config.backoff_max_ms / 1000,
            rng=rng or random.Random(),
        )
        self.connections = 0
        self.stale_reconnects = 0

    @property
    def url(self) -> str:
        """The stream URL, with its ticker selection."""
        return self._url

    async def run(self) -> None:
        """Connect, read and reconnect until cancelled."""
        config = self._config
        while True:
            try:
                async with connect(
                    self._url,
                    max_size=config.max_frame_bytes,
                    open_timeout=config.connect_timeout_ms / 1000,
                    close_timeout=1.0,
                    compression=None,
                ) as ws:
                    self.connections += 1
                    self._counters.connections += 1
                    log.info("feed_connected", url=self._url, connection=self.connections)
                    reason = await self._read(ws)
            except ConnectionClosed as exc:
                reason = _closed_reason(exc)
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"connect failed: {type(exc).__name__}: {exc}"
            self._gaps.interrupted(self._clock(), reason)
            delay = self._backoff.next_delay()
            log.warning("feed_interrupted", reason=reason, retry_in_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _read(self, ws: ClientConnection) -> str:
        """Read frames until the connection ends or goes stale; return why it ended."""
        activity = _Activity(asyncio.get_running_loop().time())
        watchdog = asyncio.create_task(self._watch(ws, activity), name="feed-stale-watchdog")
        try:
            return await self._read_frames(ws, activity)
        finally:
            await cancel_and_wait(watchdog)

    async def _watch(self, ws: ClientConnection, activity: _Activity) -> None:
        """Abort the connection once no valid frame arrived for ``stale_timeout_ms`` (time spent
        waiting on the sink does not count). One timer for the connection, not one per frame."""
        loop = asyncio.get_running_loop()
        stale_s = self._config.stale_timeout_ms / 1000
        while True:
            if activity.waiting_since is not None:
                await asyncio.sleep(stale_s)
                continue
            left = activity.quiet_since + stale_s - loop.time()
            if left > 0:
                await asyncio.sleep(left)
                continue
            activity.stale = True
            self.stale_reconnects += 1
            ws.transport.abort()
            return

    async def _read_frames(self, ws: ClientConnection, activity: _Activity) -> str:
        loop = asyncio.get_running_loop()
        config = self._config
        counters = self._counters
        sink = self._sink
        while True:
            try:
                raw = await ws.recv()
            except ConnectionClosed as exc:
                if activity.stale:
                    return f"stale: no valid frame for {config.stale_timeout_ms} ms"
                return _closed_reason(exc)
            now = self._clock()
            counters.frames_received += 1
            result = parse_frame(
                raw,
                now_ms=now,
                symbols=self._symbols,
                max_age_ms=config.max_trade_age_ms,
                max_skew_ms=config.max_clock_skew_ms,
            )
            if isinstance(result, Rejection):
                activity.waiting_since = loop.time()
                await sink(Quarantined(quarantine_text(raw), result.reason, now))
                activity.quiet_since += loop.time() - activity.waiting_since
                activity.waiting_since = None
                continue
            self._backoff.reset()
            activity.waiting_since = loop.time()
            gap = self._gaps.valid_frame(now)
            if gap is not None:
                log.info("feed_gap_closed", start_ms=gap.start_ms, end_ms=gap.end_ms)
                await sink(gap)
            if self._dedup.add(result.symbol, result.trade_id):
                if self._provider_clock is not None:
                    self._provider_clock.observe(result.ts_ms, now)
                await sink(Received(result, now))
            else:
                counters.duplicates_dropped += 1
            activity.waiting_since = None
            activity.quiet_since = loop.time()


class _Activity:
    """What the staleness watchdog of one connection reads (loop-clock seconds)."""

    __slots__ = ("quiet_since", "stale", "waiting_since")

    def __init__(self, now: float) -> None:
        #: When the last valid frame was handed over (or the connection opened).
        self.quiet_since = now
        #: Set while the reader waits on the sink (a full queue is not the feed going quiet).
        self.waiting_since: float | None = None
        #: Set by the watchdog when it aborts the connection.
        self.stale = False
