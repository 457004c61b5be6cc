"""Reading matrices on threads: the same result as one at a time; the count can be set."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import refinewidgets as rw
from refinewidgets.core.threads import ordered_map, thread_count
from refinewidgets.io.refinebio.sources import RefinebioSource

from .conftest import bulk_ids


def test_threads_give_the_same_result_and_read_side_by_side(monkeypatch):
    monkeypatch.setenv("REFINEWIDGETS_PARSED_CACHE_MAX_BYTES", "0")
    cat = rw.open_catalog()
    seen = set()
    real = RefinebioSource.read_matrix

    def spy(self, matrix_id, samples):
        seen.add(threading.current_thread().name)
        return real(self, matrix_id, samples)

    ds = rw.Dataset({e: ["ALL"] for e in bulk_ids(cat)}, aggregate_by="SPECIES")
    one = rw.build(ds, cat, threads=1)
    monkeypatch.setattr(RefinebioSource, "read_matrix", spy)
    four = rw.build(ds, cat, threads=4)
    assert any(name.startswith("refinewidgets") for name in seen)  # pool threads did the reads
    assert sorted(one) == sorted(four)
    for key in one:
        assert list(one[key].obs_names) == list(four[key].obs_names)
        np.testing.assert_array_equal(one[key].X, four[key].X)


def test_the_thread_count(monkeypatch):
    monkeypatch.delenv("REFINEWIDGETS_THREADS", raising=False)
    assert thread_count() >= 1
    monkeypatch.setenv("REFINEWIDGETS_THREADS", "3")
    assert thread_count() == 3 and thread_count(2) == 2
    monkeypatch.setenv("REFINEWIDGETS_THREADS", "many")
    with pytest.raises(
        rw.DatasetSpecError, match=r"\$REFINEWIDGETS_THREADS must be a whole number"
    ):
        thread_count()
    with pytest.raises(rw.DatasetSpecError, match="at least 1, got 0"):
        thread_count(0)


def test_ordered_map_keeps_order_and_raises_in_order():
    def slow_first(x):
        if x == 3:
            raise ValueError("three")
        return x

    out = ordered_map(slow_first, range(6), threads=3)
    assert [next(out), next(out), next(out)] == [0, 1, 2]
    with pytest.raises(ValueError, match="three"):
        next(out)
