"""settle_heap: start-up's objects are frozen out of the collector's walks, and
collection is back on afterwards (serve disables it while importing)."""

from __future__ import annotations

import gc

from bot.worker_processes import settle_heap


def test_settle_heap_freezes_and_turns_collection_back_on() -> None:
    gc.disable()
    try:
        settle_heap()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        # Frozen objects are out of every generation, so a full collection skips them.
        before = len(gc.get_objects())
        gc.unfreeze()
        assert len(gc.get_objects()) > before
    finally:
        gc.unfreeze()
        gc.enable()
