"""Turns the true trades offered to one connection into the frames actually sent.

Pure and deterministic given the connection's `WsFaultPlan`: one plan decision per offered
trade, delayed frames (out-of-order, delayed duplicates) counted in offered trades.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable

from simulator.corrupt import malformed_frame, phantom_frame, wrong_value_frame
from simulator.faults import Disconnect, WsFault, WsFaultPlan
from simulator.trade import Trade


class FrameShaper:
    """Applies a connection's fault plan; counts injected faults into `faults`.

    Fault counter keys: each `WsFault` value, plus `malformed.<kind>` and
    `disconnect.<mode>` for the sub-kinds.
    """

    def __init__(self, plan: WsFaultPlan, faults: Counter[str] | None = None) -> None:
        self._plan = plan
        self.faults: Counter[str] = faults if faults is not None else Counter()
        self._index = 0
        self._seq = 0
        self._delayed: list[tuple[int, int, bytes]] = []
        self.disconnect: Disconnect | None = None

    def feed(self, trades: Iterable[Trade]) -> list[bytes]:
        """Frames to send for `trades`; stops early once a disconnect is decided."""
        out: list[bytes] = []
        if self.disconnect is not None:
            return out
        decide = self._plan.next
        delayed = self._delayed
        for trade in trades:
            self._index += 1
            action = decide()
            if action is None:
                out.append(trade.frame)
            else:
                fault = action.fault
                self.faults[fault.value] += 1
                if fault is WsFault.DUPLICATE:
                    out.append(trade.frame)
                    if action.delay == 0:
                        out.append(trade.frame)
                    else:
                        self._hold(self._index + action.delay, trade.frame)
                elif fault is WsFault.OUT_OF_ORDER:
                    self._hold(self._index + action.delay, trade.frame)
                elif fault is WsFault.MALFORMED:
                    assert action.malformed is not None
                    self.faults[f"malformed.{action.malformed.value}"] += 1
                    out.append(malformed_frame(trade, action.malformed, action.variant))
                elif fault is WsFault.WRONG_VALUE:
                    out.append(wrong_value_frame(trade, action.variant))
                elif fault is WsFault.PHANTOM:
                    phantom = phantom_frame(trade, action.variant)
                    if action.variant % 2:
                        out.append(phantom)
                        out.append(trade.frame)
                    else:
                        out.append(trade.frame)
                        out.append(phantom)
                elif fault is WsFault.DISCONNECT:
                    assert action.disconnect is not None
                    self.faults[f"disconnect.{action.disconnect.value}"] += 1
                    out.append(trade.frame)
                    self.disconnect = action.disconnect
                    return out
                # WsFault.DROP: nothing is sent.
            while delayed and delayed[0][0] <= self._index:
                out.append(heapq.heappop(delayed)[2])
        return out

    def _hold(self, due: int, frame: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._delayed, (due, self._seq, frame))

    @property
    def offered(self) -> int:
        """Trades offered so far (one plan decision each)."""
        return self._index

    @property
    def pending(self) -> int:
        """Frames held back and not yet sent."""
        return len(self._delayed)
