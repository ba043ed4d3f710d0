"""A subscriber's queue of pending StreamVwap messages, with conflation of live points.

The rule, as a pure data structure with no ``await``:

- an item pushed with a key (a live point: its key names the series, e.g. symbol + step) that
  finds a pending item of the same key removes it and goes to the back: the subscriber skips a
  live value it has not been sent yet in favour of the newer one, which includes it;
- an item pushed without a key (a closed point, a revision, a verification, the end of the
  stream) is never removed, replaced or reordered;
- items come out in the order they were (last) pushed, so sequences stay increasing and a live
  point never overtakes a closed point or revision that came before it.

So the newest value of every series is always delivered, and how many intermediate live values
a subscriber sees adapts to how fast it is served.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class ConflatingQueue(Generic[T]):
    """FIFO of pending items where a keyed item replaces the pending one of the same key."""

    __slots__ = ("_items", "_keys", "conflated", "pushed")

    def __init__(self) -> None:
        #: (key, item) in the order they come out.
        self._items: deque[tuple[Hashable | None, T]] = deque()
        #: The keys that have a pending item (at most one each).
        self._keys: set[Hashable] = set()
        #: Items removed because a newer item of their key replaced them.
        self.conflated = 0
        #: Items pushed in all.
        self.pushed = 0

    def push(self, item: T, key: Hashable | None = None) -> None:
        """Append ``item``; with a ``key``, first drop the pending item of that key."""
        self.pushed += 1
        items = self._items
        if key is not None:
            if key in self._keys:
                self.conflated += 1
                if items[-1][0] == key:  # the usual case: it is the newest, replace in place
                    items[-1] = (key, item)
                    return
                for at, (pending_key, _) in enumerate(items):
                    if pending_key == key:
                        del items[at]
                        break
            else:
                self._keys.add(key)
        items.append((key, item))

    def pop(self) -> T:
        """The oldest pending item; IndexError when empty."""
        key, item = self._items.popleft()
        if key is not None:
            self._keys.discard(key)
        return item

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)
