"""The neighbour strategy's frame prefetch (:func:`~focusstudio.core.methods.strategies.prefetched`):
results in order, one frame ahead at most, the next one prepared on another thread, a failed load
raised where its result is taken."""

from __future__ import annotations

import threading

import pytest

from focusstudio.core.methods.strategies import prefetched


def test_results_in_order_one_ahead_on_another_thread() -> None:
    started: list[int] = []
    threads: set[int] = set()

    def load(index: int) -> int:
        started.append(index)
        threads.add(threading.get_ident())
        return index * 10

    taken = []
    for result in prefetched(load, 1, 6):
        taken.append(result)
        # while the caller holds result i, load(i + 1) may have started, never load(i + 2)
        assert max(started) <= result // 10 + 1
    assert taken == [10, 20, 30, 40, 50]
    assert started == [1, 2, 3, 4, 5]
    assert threading.get_ident() not in threads


def test_an_error_is_raised_where_its_result_is_taken() -> None:
    def load(index: int) -> int:
        if index == 3:
            raise ValueError("frame 3 is broken")
        return index

    loaded = prefetched(load, 1, 5)
    assert next(loaded) == 1
    assert next(loaded) == 2
    with pytest.raises(ValueError, match="frame 3"):
        next(loaded)


def test_empty_range() -> None:
    assert list(prefetched(lambda index: index, 3, 3)) == []
