"""Live VWAP fan-out: one shared :class:`RollingWindow` per (symbol, window, step), many
subscribers.

A tracker is created on the first subscription: it registers with the hub first (so it buffers
every event dispatched from then on), then reads a database snapshot of recent trades together
with ``event_head``, then replays the buffered events newer than that head. The follower only
dispatches committed events, so the snapshot's head is never older than the hub's position:
nothing is missed, nothing applied twice.

A new subscriber first receives the state's current live point (when the symbol has trades):
a stream starts from the current value, not from the next trade. Each message is rendered to
protobuf and serialized once, and the same bytes are queued to every subscriber. A
subscriber's queue conflates live points (:mod:`vwap.conflation`): a live point not yet sent
is replaced by the newer one of its series, while closed points, revisions and
verifications are all delivered, in order. A subscriber whose closed points, revisions and
verifications pile up beyond ``max_queue`` is cut off rather than slowing others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import psycopg

from tradekit.logs import event_logger
from tradekit.tasks import raise_if_cancel_lost
from tradekit.timetext import human_ms
from vwap.convert import message_to_proto
from vwap.errors import LiveCapacityExhausted, LiveStateUnavailable
from vwap.events import DomainEvent, EventsLost, TradeArrived, TradeCorrected, WindowVerified
from vwap.outbox import Outlet
from vwap.rolling import Message, RevisionsLost, RollingWindow, Update
from vwap.storage import VwapStore

log = event_logger("vwap.live")

TrackerKey = tuple[str, int, int]


class Subscriber(Outlet):
    """One StreamVwap call: its queue of serialized ``StreamVwapResponse`` messages (``None``
    ends the stream; live points conflate by series, see :mod:`vwap.conflation`), sent by
    the :class:`~vwap.outbox.Outbox`."""

    __slots__ = ("attached", "lost")

    def __init__(self, max_queue: int) -> None:
        super().__init__(max_pending=max_queue)
        #: Trackers this subscriber is attached to (or being attached to), by key.
        self.attached: dict[TrackerKey, Tracker | None] = {}
        #: Why the stream was ended because its live state may miss a change (None: it was
        #: not); the client is to subscribe again, to state rebuilt from the store.
        self.lost: str | None = None


@dataclass(eq=False)
class Tracker:
    """The shared rolling state of one (symbol, window, step)."""

    key: TrackerKey
    subscribers: set[Subscriber] = field(default_factory=set)
    pending: list[DomainEvent] = field(default_factory=list)
    rolling: RollingWindow | None = None
    loaded_seq: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failed: BaseException | None = None

    def apply(self, event: DomainEvent) -> list[Message]:
        """Feed one event in sequence order; the messages it produces."""
        if self.rolling is None:
            self.pending.append(event)
            return []
        if event.sequence <= self.loaded_seq:
            return []
        if isinstance(event, TradeArrived):
            return self.rolling.on_trade(event.trade, event.sequence)
        if isinstance(event, TradeCorrected):
            return self.rolling.on_correction(
                event.old,
                event.new,
                correction_id=event.correction_id,
                kind=event.kind,
                sequence=event.sequence,
            )
        if isinstance(event, WindowVerified):
            return self.rolling.on_window_verified(
                event.start_ms,
                event.end_ms,
                event.verified_until_ms,
                event.verified_from_ms,
                event.sequence,
            )
        return []


class LiveHub:
    """Routes followed events to trackers and their subscribers."""

    def __init__(
        self,
        store: VwapStore,
        *,
        retention_ms: int,
        max_queue: int = 10_000,
        max_trades: int | None = None,
    ) -> None:
        self._store = store
        self._retention_ms = retention_ms
        self._max_queue = max_queue
        #: Most trades all trackers may hold when another is created (None: no limit).
        self._max_trades = max_trades
        self._trackers: dict[TrackerKey, Tracker] = {}
        self._by_symbol: dict[str, set[Tracker]] = {}
        #: Subscribers to all symbols, by (window_ms, step_ms).
        self._wildcards: dict[tuple[int, int], set[Subscriber]] = {}
        self._subscribers: set[Subscriber] = set()
        self._discovered: asyncio.Queue[str] = asyncio.Queue()
        self._discovering: set[str] = set()
        self._closed = False
        #: The instant boundaries were last closed through (None: not yet).
        self._closed_through: int | None = None
        self.sequence = 0
        self.messages_sent = 0

    def apply(self, event: DomainEvent) -> None:
        """Dispatch one committed event (called by the follower, in sequence order)."""
        self.sequence = event.sequence
        if isinstance(event, EventsLost):
            self._lose(event)
            return
        trackers = tuple(self._by_symbol.get(event.symbol, ()))
        for tracker in trackers:
            self._deliver(tracker, tracker.apply(event))
        if isinstance(event, WindowVerified):
            return
        if self._wildcards and event.symbol not in self._discovering:
            for (window_ms, step_ms), subscribers in self._wildcards.items():
                shared = self._trackers.get((event.symbol, window_ms, step_ms))
                if shared is None or not subscribers <= shared.subscribers:
                    self._discovering.add(event.symbol)
                    self._discovered.put_nowait(event.symbol)
                    break

    async def follow_new_symbols(self) -> None:
        """Attach all-symbol subscribers to symbols seen for the first time; run until
        cancelled (owned by the app's TaskGroup)."""
        while True:
            raise_if_cancel_lost()  # a pool borrow lost it: stop instead of waiting for more
            symbol = await self._discovered.get()
            try:
                for (window_ms, step_ms), subscribers in tuple(self._wildcards.items()):
                    key = (symbol, window_ms, step_ms)
                    for subscriber in tuple(subscribers):
                        try:
                            await self._attach_once(key, subscriber)
                        except LiveCapacityExhausted as exc:
                            # it cannot follow every symbol as it asked: ended, it subscribes
                            # again and is refused RESOURCE_EXHAUSTED with the reason
                            log.warning("symbol_attach_refused", symbol=symbol, error=str(exc))
                            if subscriber.lost is None:
                                subscriber.lost = str(exc)
                                subscriber.offer(None)
                        except (LiveStateUnavailable, psycopg.Error) as exc:
                            log.error("symbol_attach_failed", symbol=symbol, error=str(exc))
            finally:
                self._discovering.discard(symbol)

    def close_boundaries(self, now_ms: int) -> None:
        """Close every loaded tracker's step boundaries up to ``now_ms``."""
        self._closed_through = now_ms
        for tracker in tuple(self._trackers.values()):
            if tracker.rolling is not None:
                # a snapshot ahead of the follower: its points reflect the snapshot's events
                sequence = max(self.sequence, tracker.loaded_seq)
                self._deliver(tracker, tracker.rolling.close_through(now_ms, sequence))

    async def close_boundaries_on_time(
        self, *, grace_ms: int, period_s: float, clock_ms: Callable[[], int]
    ) -> None:
        """Close boundaries ``grace_ms`` after they pass on the clock (late trades get that long
        to arrive); run until cancelled (owned by the app's TaskGroup)."""
        while True:
            self.close_boundaries(clock_ms() - grace_ms)  # at once: states loaded start there
            await asyncio.sleep(period_s)

    def _lose(self, event: EventsLost) -> None:
        """End every stream whose live state may miss a change (of the symbol, or of any symbol
        for a gap) and drop that state: the clients subscribe again to state loaded afresh."""
        if event.symbol is None:
            trackers = tuple(self._trackers.values())
        else:
            trackers = tuple(self._by_symbol.get(event.symbol, ()))
        for tracker in trackers:
            self._end(tracker, event.reason)
        log.error("live_state_dropped", trackers=len(trackers), reason=event.reason)

    def _end(self, tracker: Tracker, reason: str) -> None:
        """Drop ``tracker`` and end its streams: their state may miss a change."""
        self._forget(tracker)
        for subscriber in tracker.subscribers:
            if subscriber.lost is None:
                subscriber.lost = reason
                subscriber.offer(None)

    def _deliver(self, tracker: Tracker, messages: Sequence[Message]) -> None:
        subscribers = tracker.subscribers
        for message in messages:
            if isinstance(message, RevisionsLost):
                self._end(tracker, message.reason)
                log.warning("live_state_dropped", trackers=1, reason=message.reason)
                return
            data = message_to_proto(message).SerializeToString()
            live = isinstance(message, Update) and not message.closed
            key = tracker.key if live else None
            for subscriber in subscribers:
                subscriber.offer(data, key)
            self.messages_sent += len(subscribers)

    async def _load(self, tracker: Tracker) -> None:
        symbol, window_ms, step_ms = tracker.key
        try:
            head, trades, verified_until, verified_from = await self._store.recent_trades(
                symbol, window_ms + step_ms
            )
        except BaseException as exc:
            tracker.failed = exc
            self._forget(tracker)
            tracker.ready.set()
            raise
        rolling = RollingWindow(
            symbol,
            window_ms=window_ms,
            step_ms=step_ms,
            retention_ms=self._retention_ms,
            trades=trades,
            verified_until_ms=verified_until,
            verified_from_ms=verified_from,
        )
        if self._closed_through is not None:
            rolling.take_closed_through(self._closed_through)
        held = self.trades_held + rolling.trades_held
        if self._max_trades is not None and held > self._max_trades:
            tracker.failed = LiveCapacityExhausted(
                f"streaming {symbol} over a {human_ms(window_ms)} window with a"
                f" {human_ms(step_ms)} step would hold {held:,} trades in memory, over this"
                f" service's VWAP_LIVE_MAX_TRADES ({self._max_trades:,}): subscribe with a"
                " window and step already streamed, or a shorter window, or retry later"
            )
            self._forget(tracker)
            tracker.ready.set()
            raise tracker.failed
        tracker.rolling, tracker.loaded_seq = rolling, head
        pending, tracker.pending = tracker.pending, []
        for event in pending:
            self._deliver(tracker, tracker.apply(event))
        tracker.ready.set()
        log.info(
            "tracker_loaded",
            symbol=symbol,
            window_ms=window_ms,
            step_ms=step_ms,
            head=head,
            trades=len(trades),
            replayed=len(pending),
        )

    def _forget(self, tracker: Tracker) -> None:
        if self._trackers.get(tracker.key) is tracker:
            del self._trackers[tracker.key]
            self._by_symbol[tracker.key[0]].discard(tracker)

    async def _attach(self, key: TrackerKey, subscriber: Subscriber) -> Tracker:
        while True:
            tracker = self._trackers.get(key)
            if tracker is None:
                tracker = Tracker(key)
                self._trackers[key] = tracker
                self._by_symbol.setdefault(key[0], set()).add(tracker)
                tracker.subscribers.add(subscriber)
                await self._load(tracker)
                return tracker
            tracker.subscribers.add(subscriber)
            try:
                await tracker.ready.wait()
            except BaseException:
                # Gone while another subscriber loads it (a client leaving, a deadline): the
                # caller does not record this tracker, so it would never be detached.
                self._detach(tracker, subscriber)
                raise
            if tracker.failed is None:
                return tracker
            tracker.subscribers.discard(subscriber)
            if isinstance(tracker.failed, LiveCapacityExhausted):
                raise LiveCapacityExhausted(str(tracker.failed))
            if not isinstance(tracker.failed, asyncio.CancelledError):
                raise LiveStateUnavailable(
                    f"the live state of {key[0]} could not be loaded, retry"
                ) from tracker.failed
            # The subscriber that was loading it went away: load it ourselves.

    async def _attach_once(self, key: TrackerKey, subscriber: Subscriber) -> None:
        """Attach ``subscriber`` to ``key`` unless it already is (or is being) attached."""
        if key in subscriber.attached or subscriber not in self._subscribers:
            return
        subscriber.attached[key] = None
        try:
            tracker = subscriber.attached[key] = await self._attach(key, subscriber)
        except BaseException:
            del subscriber.attached[key]
            raise
        if subscriber not in self._subscribers:
            # Gone while symbol discovery attached it (its stream's exit saw no tracker yet
            # to detach): it would hold the state, and get its messages, for ever.
            del subscriber.attached[key]
            self._detach(tracker, subscriber)
            return
        live = None if tracker.rolling is None else tracker.rolling.live_point()
        if live is not None:  # the current value first (a queued older one is replaced)
            seq = max(self.sequence, tracker.loaded_seq)  # the snapshot may be ahead
            data = message_to_proto(Update(live, False, seq)).SerializeToString()
            subscriber.offer(data, key)

    def _detach(self, tracker: Tracker, subscriber: Subscriber) -> None:
        tracker.subscribers.discard(subscriber)
        if not tracker.subscribers:
            self._forget(tracker)

    @asynccontextmanager
    async def subscribe(
        self, symbols: Sequence[str], *, window_ms: int, step_ms: int
    ) -> AsyncIterator[Subscriber]:
        """A subscriber receiving the live messages of ``symbols`` (all symbols, including
        ones first seen later, when empty) until the block exits."""
        subscriber = Subscriber(self._max_queue)
        self._subscribers.add(subscriber)
        wildcard = self._wildcards.setdefault((window_ms, step_ms), set()) if not symbols else None
        try:
            if self._closed:
                subscriber.offer(None)
            if wildcard is not None:
                # Registered before listing: a symbol first seen after the listing's snapshot
                # is discovered from its event.
                wildcard.add(subscriber)
                symbols = [s.symbol for s in await self._store.symbols()]
            for symbol in dict.fromkeys(symbols):
                await self._attach_once((symbol, window_ms, step_ms), subscriber)
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
            if wildcard is not None:
                wildcard.discard(subscriber)
                if not wildcard:
                    del self._wildcards[(window_ms, step_ms)]
            for tracker in subscriber.attached.values():
                if tracker is not None:
                    self._detach(tracker, subscriber)

    @property
    def closed(self) -> bool:
        """Whether the service is stopping (its streams ended by :meth:`close`)."""
        return self._closed

    def close(self) -> None:
        """End every live stream (shutdown)."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber.offer(None)

    def is_loaded(self, symbol: str, *, window_ms: int, step_ms: int) -> bool:
        """True when the shared state of (symbol, window, step) is loaded and following."""
        tracker = self._trackers.get((symbol, window_ms, step_ms))
        return tracker is not None and tracker.rolling is not None

    @property
    def trades_held(self) -> int:
        """Trades the loaded trackers hold in memory."""
        return sum(t.rolling.trades_held for t in self._trackers.values() if t.rolling is not None)

    @property
    def tracker_count(self) -> int:
        """Trackers currently shared by subscribers."""
        return len(self._trackers)

    @property
    def attachment_count(self) -> int:
        """Subscribers attached to (or waiting for) trackers, summed over the trackers."""
        return sum(len(tracker.subscribers) for tracker in self._trackers.values())
