"""Which windows to verify next (pure).

Windows are aligned to multiples of ``window_ms`` since the epoch. From the symbol's verified
watermark up to the settled instant ``floor((now - settle) / window) * window`` the plan is a
contiguous, non-overlapping run of windows (the first one shorter when the watermark is not
aligned). Windows overlapping a recorded feed gap come first, then the rest, each group in time
order. Windows already in flight or already verified beyond the watermark are skipped.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from tradekit.domain import TimeWindow


def settled_until(now_ms: int, settle_ms: int, window_ms: int) -> int:
    """The end of the last whole window that ended at least ``settle_ms`` before ``now_ms``."""
    return ((now_ms - settle_ms) // window_ms) * window_ms


def split_aligned(start_ms: int, end_ms: int, window_ms: int) -> Iterator[TimeWindow]:
    """``[start_ms, end_ms)`` cut at multiples of ``window_ms``, in time order."""
    cursor = start_ms
    while cursor < end_ms:
        boundary = (cursor // window_ms + 1) * window_ms
        yield TimeWindow(cursor, min(boundary, end_ms))
        cursor = boundary


def _overlaps(window: TimeWindow, gap: tuple[int, int]) -> bool:
    return gap[0] < window.end_ms and window.start_ms < gap[1]


def plan_windows(
    *,
    verified_until_ms: int,
    gaps: Sequence[tuple[int, int]],
    now_ms: int,
    settle_ms: int,
    window_ms: int = 60_000,
    skip_starts: Collection[int] = (),
    limit: int | None = None,
) -> list[TimeWindow]:
    """The next windows to fetch for one symbol, gap windows first.

    ``gaps`` are ``(start_ms, end_ms)`` feed gaps; ``skip_starts`` are start times of windows
    already in flight or verified; ``limit`` keeps only the first windows of the plan.
    """
    if window_ms < 1:
        raise ValueError("window_ms must be at least 1")
    end_ms = settled_until(now_ms, settle_ms, window_ms)
    windows = [
        w
        for w in split_aligned(verified_until_ms, end_ms, window_ms)
        if w.start_ms not in skip_starts
    ]
    in_gap = [w for w in windows if any(_overlaps(w, g) for g in gaps)]
    flagged = {w.start_ms for w in in_gap}
    plan = in_gap + [w for w in windows if w.start_ms not in flagged]
    return plan if limit is None else plan[:limit]
