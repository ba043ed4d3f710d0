"""The conflation rule of a subscriber's queue, as a pure data structure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vwap.conflation import ConflatingQueue

# An operation: ("push", key or None, value) or ("pop",).
Push = tuple[str, str | None, int]
_keys = st.one_of(st.none(), st.sampled_from(["BTC", "ETH", "SOL"]))
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), _keys, st.integers(0, 10**6)),
        st.tuples(st.just("pop")),
    ),
    max_size=80,
)


def test_a_pending_live_point_is_replaced_and_the_newer_one_moves_to_the_back() -> None:
    """live A1, closed C, live A2: A1 is skipped and A2 comes after C."""
    queue: ConflatingQueue[str] = ConflatingQueue()
    queue.push("A1", "A")
    queue.push("C", None)
    queue.push("A2", "A")
    assert [queue.pop() for _ in range(len(queue))] == ["C", "A2"]
    assert queue.conflated == 1
    assert queue.pushed == 3


def test_unkeyed_items_are_never_conflated() -> None:
    """Closed points and revisions (no key) all come out, in order, even when equal."""
    queue: ConflatingQueue[str] = ConflatingQueue()
    for item in ("closed", "revision", "closed"):
        queue.push(item)
    assert [queue.pop() for _ in range(3)] == ["closed", "revision", "closed"]
    assert queue.conflated == 0


def test_a_live_point_already_taken_is_not_replaced() -> None:
    """Once popped (being sent), a live point is gone; the next one of its key is queued."""
    queue: ConflatingQueue[str] = ConflatingQueue()
    queue.push("A1", "A")
    assert queue.pop() == "A1"
    queue.push("A2", "A")
    queue.push("B1", "B")
    assert [queue.pop(), queue.pop()] == ["A2", "B1"]
    assert not queue
    with pytest.raises(IndexError):
        queue.pop()


def _model(ops: list[tuple[object, ...]]) -> tuple[list[int], list[int], list[Push]]:
    """Run ``ops`` on a queue; (popped values, then the rest drained), and the pushes."""
    queue: ConflatingQueue[int] = ConflatingQueue()
    popped: list[int] = []
    pushes: list[Push] = []
    for op in ops:
        if op[0] == "push":
            _, key, value = op
            assert key is None or isinstance(key, str)
            assert isinstance(value, int)
            queue.push(len(pushes), key)
            pushes.append(("push", key, value))
        elif queue:
            popped.append(queue.pop())
    drained = [queue.pop() for _ in range(len(queue))]
    assert queue.pushed == len(pushes)
    assert queue.conflated == len(pushes) - len(popped) - len(drained)
    return popped, drained, pushes


@settings(max_examples=300, derandomize=True)
@given(_ops)
def test_no_unkeyed_item_is_ever_dropped(ops: list[tuple[object, ...]]) -> None:
    """Every closed point and revision pushed comes out exactly once."""
    popped, drained, pushes = _model(ops)
    out = popped + drained
    unkeyed = [i for i, (_, key, _) in enumerate(pushes) if key is None]
    assert [i for i in out if pushes[i][1] is None] == unkeyed


@settings(max_examples=300, derandomize=True)
@given(_ops)
def test_items_come_out_in_push_order(ops: list[tuple[object, ...]]) -> None:
    """What comes out is a subsequence of what went in: nothing reordered or repeated."""
    popped, drained, _ = _model(ops)
    out = popped + drained
    assert out == sorted(set(out))


@settings(max_examples=300, derandomize=True)
@given(_ops)
def test_the_newest_value_of_every_key_is_delivered(ops: list[tuple[object, ...]]) -> None:
    """For every key, the last item pushed comes out; a keyed item is only ever dropped in
    favour of a newer one of its key pushed while it was pending."""
    popped, drained, pushes = _model(ops)
    out = set(popped + drained)
    for key in {key for _, key, _ in pushes if key is not None}:
        mine = [i for i, (_, k, _) in enumerate(pushes) if k == key]
        assert mine[-1] in out
        for i in mine:
            if i not in out:
                assert any(j > i for j in mine)


@settings(max_examples=300, derandomize=True)
@given(_ops)
def test_at_most_one_live_item_per_key_is_pending(ops: list[tuple[object, ...]]) -> None:
    """However far behind the reader is, it has at most one pending item per key."""
    queue: ConflatingQueue[int] = ConflatingQueue()
    unkeyed = 0
    for n, op in enumerate(ops):
        if op[0] == "push":
            key = op[1]
            assert key is None or isinstance(key, str)
            queue.push(n, key)
            unkeyed += key is None
        assert len(queue) <= unkeyed + 3
