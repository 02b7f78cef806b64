"""The collector pause around reading a journal back: nested, and leaving it as it was."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from kitaru.runtime.collector import collector_paused


@pytest.fixture
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


class TestCollectorPause:
    """Automatic collection is off inside the pause and as before once every pause ends."""

    @pytest.mark.usefixtures("collector_enabled")
    def test_off_inside_and_on_again_after(self) -> None:
        """The collector is off inside the block and on again after it."""
        with collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled()

    @pytest.mark.usefixtures("collector_enabled")
    def test_on_again_only_when_the_last_pause_ends(self) -> None:
        """A pause that ends while another thread's pause goes on leaves the collector off."""
        inner_started, outer_done = threading.Event(), threading.Event()
        seen: list[bool] = []

        def other() -> None:
            with collector_paused():
                inner_started.set()
                outer_done.wait(10)
                seen.append(gc.isenabled())

        thread = threading.Thread(target=other)
        with collector_paused():
            thread.start()
            assert inner_started.wait(10)
        seen.append(gc.isenabled())
        outer_done.set()
        thread.join(10)
        assert seen == [False, False]
        assert gc.isenabled()

    @pytest.mark.usefixtures("collector_enabled")
    def test_a_program_that_disabled_the_collector_keeps_it_disabled(self) -> None:
        """If the program turned collection off itself, the pause does not turn it on."""
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()

    @pytest.mark.usefixtures("collector_enabled")
    def test_on_again_after_an_error_inside(self) -> None:
        """An error raised inside the pause still ends it."""
        with pytest.raises(ValueError, match="inside"), collector_paused():
            raise ValueError("inside")
        assert gc.isenabled()
