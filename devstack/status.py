"""The live status of a running stack: counters of the processor and the 5-minute VWAPs.

:class:`StatusReader` asks ``ProcessorService.GetProcessorStats``, ``VwapService.ListSymbols``
and ``VwapService.GetVwap``; :func:`render_table` and :func:`render_line` format a
:class:`StackStatus` for a terminal (redrawn in place) or a log (one line per refresh).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

import grpc
from trading.v1 import processor_pb2, processor_pb2_grpc, vwap_pb2, vwap_pb2_grpc

RPC_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class StackStatus:
    """One reading of the stack's counters, or the error that prevented it."""

    trades_ingested: int = 0
    duplicates_dropped: int = 0
    frames_quarantined: int = 0
    windows_verified: int = 0
    #: Window fetches REST could not answer completely (each holds its symbol's watermark).
    windows_rejected: int = 0
    #: Trades inserted, updated or deleted by reconciliation.
    corrections: int = 0
    #: Whether the processor's NATS relay is publishing.
    relay_ready: bool = False
    #: Current 5-minute VWAP per symbol (None: no trades in the window).
    vwaps: dict[str, str | None] = field(default_factory=dict)
    #: Why the reading failed, if it did.
    error: str | None = None


class StatusReader:
    """gRPC channels to the processor and the VWAP service; a context manager closing them."""

    def __init__(self, *, processor_address: str, vwap_address: str) -> None:
        self._processor_channel = grpc.insecure_channel(processor_address)
        self._vwap_channel = grpc.insecure_channel(vwap_address)
        self._processor = processor_pb2_grpc.ProcessorServiceStub(self._processor_channel)  # type: ignore[no-untyped-call]
        self._vwap = vwap_pb2_grpc.VwapServiceStub(self._vwap_channel)  # type: ignore[no-untyped-call]

    def read(self) -> StackStatus:
        """Ask the services now; a failed RPC becomes :attr:`StackStatus.error`."""
        try:
            stats = self._processor.GetProcessorStats(
                processor_pb2.GetProcessorStatsRequest(), timeout=RPC_TIMEOUT_S
            )
            listed = self._vwap.ListSymbols(vwap_pb2.ListSymbolsRequest(), timeout=RPC_TIMEOUT_S)
            vwaps: dict[str, str | None] = {}
            for summary in listed.symbols:
                answer = self._vwap.GetVwap(
                    vwap_pb2.GetVwapRequest(symbol=summary.symbol), timeout=RPC_TIMEOUT_S
                )
                point = answer.point
                vwaps[summary.symbol] = point.vwap if point.HasField("vwap") else None
        except grpc.RpcError as exc:
            return StackStatus(error=f"{exc.code().name}: {exc.details()}")
        return StackStatus(
            trades_ingested=stats.trades_ingested,
            duplicates_dropped=stats.duplicates_dropped,
            frames_quarantined=stats.frames_quarantined,
            windows_verified=stats.windows_verified,
            windows_rejected=stats.windows_rejected,
            corrections=(
                stats.corrections_inserted + stats.corrections_updated + stats.corrections_deleted
            ),
            vwaps=vwaps,
            relay_ready=stats.relay_ready,
        )

    def close(self) -> None:
        """Close both channels. Idempotent."""
        self._processor_channel.close()
        self._vwap_channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _counters(status: StackStatus) -> list[tuple[str, int]]:
    return [
        ("trades ingested", status.trades_ingested),
        ("duplicates dropped", status.duplicates_dropped),
        ("frames quarantined", status.frames_quarantined),
        ("windows verified", status.windows_verified),
        ("windows rejected", status.windows_rejected),
        ("corrections", status.corrections),
    ]


def render_table(status: StackStatus, clock: str) -> list[str]:
    """The status as a compact table, one string per line."""
    lines = [f"status at {clock}"]
    if status.error is not None:
        return [*lines, f"  unavailable: {status.error}"]
    lines += [f"  {name:<20}{value:>12}" for name, value in _counters(status)]
    lines.append(f"  {'NATS relay':<20}{_relay(status):>12}")
    lines.append("  5-minute VWAP")
    if not status.vwaps:
        lines.append("    (no trades yet)")
    for symbol, vwap in status.vwaps.items():
        lines.append(f"    {symbol:<8}{vwap if vwap is not None else '-'}")
    return lines


def _relay(status: StackStatus) -> str:
    """``publishing``, or ``waiting`` (starting, NATS unreachable or the stream refused: the
    processor's log says which)."""
    return "publishing" if status.relay_ready else "waiting"


def render_line(status: StackStatus, clock: str) -> str:
    """The status as one ``key=value`` line."""
    if status.error is not None:
        return f"{clock} status=unavailable error={status.error!r}"
    counters = " ".join(f"{name.replace(' ', '_')}={value}" for name, value in _counters(status))
    counters += f" relay={_relay(status)}"
    vwaps = " ".join(f"vwap_{s}={v if v is not None else '-'}" for s, v in status.vwaps.items())
    return f"{clock} {counters} {vwaps}".rstrip()
