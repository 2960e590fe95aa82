"""The cyclic collector kept off the batch path (kernel.heap): the pause
itself, and a real batch that parses and signs with no collection at all."""

from __future__ import annotations

import gc
import threading

import pytest

from credentials import csvimport, issuance
from kernel import heap
from kernel.heap import collector_paused, freeze_startup_heap
from kernel.jobs import Stage
from tests.test_issuance_csv import csv_of


@pytest.fixture(autouse=True)
def _collector_back_on():
    was = gc.isenabled()
    yield
    assert heap._holders == 0
    gc.enable() if was else gc.disable()


def test_the_pause_disables_the_collector_and_gives_it_back():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: still off, and still off after the inner block
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_pause_gives_the_collector_back_when_the_block_raises():
    with pytest.raises(RuntimeError, match="inside"), collector_paused():
        raise RuntimeError("inside the block")
    assert gc.isenabled()


def test_a_collector_disabled_before_the_pause_stays_disabled():
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_on_two_threads_end_with_the_last_one():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        seen["after first"] = gc.isenabled()
        first_out.set()

    def second():
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["inside second, first gone"] = gc.isenabled()
        seen["after second"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after first": False, "inside second, first gone": False, "after second": True}


def test_overlapping_pauses_that_last_collect_when_a_holder_leaves(monkeypatch):
    """Batches that overlap keep the pause from ending; after LONG_PAUSE a
    holder that leaves collects the young generations itself."""
    monkeypatch.setattr(heap, "LONG_PAUSE", 0.0)
    explicit = []

    def watch(phase, info):
        if phase == "start":
            explicit.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        with collector_paused():
            with collector_paused():
                pass
            assert explicit == [1] and not gc.isenabled()
    finally:
        gc.callbacks.remove(watch)
    assert gc.isenabled()


def test_a_frozen_heap_is_out_of_the_collector_s_reach():
    kept = [[i] for i in range(1000)]
    assert id(kept[0]) in {id(o) for o in gc.get_objects()}
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(kept)
        assert {id(x) for x in kept}.isdisjoint(id(o) for o in gc.get_objects())
    finally:
        gc.unfreeze()


def test_a_batch_is_parsed_and_signed_without_one_collection(session, registry, chain_settings, monkeypatch):
    """The fault as measured: a gc.callbacks timer in the issuing bench found
    about 105 collections in a 10,000-credential batch, one of them a full
    walk of the heap (0.23 s of 2.1 s). 2,000 credentials on the worker pool
    set off 19 collections without the pause."""
    # Watched from inside the paused functions: from the first row parsed to
    # the last, and from the signing stage to sign_and_save's last line (the
    # collections that the pause put off run when it ends, after these).
    inside = threading.Event()
    collections = []

    def watch(phase, info):
        if phase == "start" and inside.is_set():
            collections.append(info["generation"])

    parse_row, crash_point, rows = csvimport.parse_row, issuance._crash_point, []

    def parse_row_watched(*args):
        inside.set()
        rows.append(args[1])
        try:
            return parse_row(*args)
        finally:
            if len(rows) == 2000:
                inside.clear()

    def progress(stage, done, total):
        if stage == Stage.SIGNING:
            inside.set()

    def crash_point_watched(name):
        if name == "after_pending":
            inside.clear()
        crash_point(name)

    monkeypatch.setattr(csvimport, "parse_row", parse_row_watched)
    monkeypatch.setattr(issuance, "_crash_point", crash_point_watched)
    gc.callbacks.append(watch)
    try:
        parsed = csvimport.parse_csv(csv_of(*(f"Student {i},student{i}@example.edu,BSc Physics,BachelorDegree,Three years.,"
                                                  "2025-06-30,,2:1" for i in range(2000))))
        assert not parsed.errors
        result = issuance.issue_batch(session, registry, issuance.issuer_profile(session, registry, chain_settings),
                                      parsed.requests, "tester", progress=progress)
    finally:
        gc.callbacks.remove(watch)
    assert result.count == 2000 and result.tx_hash
    assert len(rows) == 2000 and not inside.is_set()
    assert collections == []
    assert gc.isenabled()
