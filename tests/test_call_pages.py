"""One page of an execution's calls is built without building all of them.

The dashboard shows a 10,000-call execution a page of calls at a time; the views of
that page, of one call, and the execution's saved artifacts and last call end must be
exactly what the whole list of calls says.
"""

from __future__ import annotations

from collections import Counter

import kitaru as kt
from kitaru import checkpoint, flow
from kitaru.client import Execution, KitaruClient

_failures: Counter[str] = Counter()


@checkpoint(retries=1)
def step(i: int) -> int:
    if i == 3 and _failures["step"] == 0:
        _failures["step"] += 1
        raise ConnectionError("a passing failure")
    if i % 4 == 0:
        kt.save(f"note_{i}", {"i": i}, tags=["page"])
    return i * 2


@flow
def steps(n: int) -> int:
    return sum(step(i).load() for i in range(n))


def fresh(exec_id: str) -> Execution:
    """A new snapshot, whose call views are not built yet."""
    return KitaruClient().executions.get(exec_id)


class TestPagesOfCalls:
    def test_a_page_is_the_same_slice_of_the_whole_list(self) -> None:
        """``checkpoints_between`` gives ``checkpoints[start:stop]``, call for call."""
        _failures.clear()
        handle = steps.run(12)
        assert handle.wait() == sum(i * 2 for i in range(12))
        whole = fresh(handle.exec_id).checkpoints
        assert fresh(handle.exec_id).call_count == len(whole) == 12
        for start, stop in ((0, 5), (3, 4), (5, 12), (10, 20), (12, 15)):
            assert fresh(handle.exec_id).checkpoints_between(start, stop) == whole[start:stop]

    def test_a_replay_page_names_the_calls_it_reused(self) -> None:
        """Calls a replay reused carry the original call ids on a page as in the list."""
        _failures.clear()
        handle = steps.run(6)
        handle.wait()
        replay = KitaruClient().executions.replay(handle.exec_id, from_="step_5", background=False)
        whole = fresh(replay.exec_id).checkpoints
        assert whole[0].original_call_id is not None
        assert fresh(replay.exec_id).checkpoints_between(0, 6) == whole

    def test_one_call_saved_artifacts_and_the_last_end_match_the_list(self) -> None:
        """``find_checkpoint`` (by identity or call id), ``saved_artifacts`` and
        ``last_call_ended_at`` say what the whole list says."""
        _failures.clear()
        handle = steps.run(9)
        handle.wait()
        execution = fresh(handle.exec_id)
        whole = execution.checkpoints
        retried = whole[3]
        assert len(retried.attempts) == 2
        assert fresh(handle.exec_id).find_checkpoint("step_4") == retried
        assert fresh(handle.exec_id).find_checkpoint(retried.call_id) == retried
        assert fresh(handle.exec_id).find_checkpoint("no_such_call") is None
        saved = [a for a in execution.artifacts if a.origin == "saved"]
        assert [a.name for a in saved] == ["note_0", "note_4", "note_8"]
        assert fresh(handle.exec_id).saved_artifacts == saved
        assert fresh(handle.exec_id).last_call_ended_at == max(
            c.ended_at for c in whole if c.ended_at is not None
        )
