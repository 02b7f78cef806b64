"""A flow that stops for a person's approval, answered from another process.

Run it with ``python examples/approval_wait.py``. It works offline, and the journal
goes to a temporary folder unless ``KITARU_STORE`` names one.

What happens:
1. The flow drafts an announcement, then waits at ``kitaru.wait(schema=Review)``:
   the execution's status becomes ``waiting`` and the question and the expected JSON
   shape are recorded. The script prints the exact command that answers it.
2. A second process (this script again, as ``answer EXEC_ID``) plays the reviewer: it
   sends a ``Review`` with ``KitaruClient().executions.input(...)``, then confirms the
   second, yes/no wait (``schema=bool``). The waiting flow picks each answer up within
   a fraction of a second and goes on to publish.

Run ``python examples/approval_wait.py --manual`` to answer yourself: the script prints
the commands to type in another terminal, and waits up to five minutes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import kitaru
from kitaru import KitaruClient, checkpoint, flow


@dataclass
class Review:
    approved: bool
    reviewer: str
    comment: str = ""


@checkpoint
def draft(topic: str) -> str:
    return f"We are pleased to announce {topic}."


@checkpoint
def publish(text: str, review: Review) -> str:
    return f"published: {text} (approved by {review.reviewer}: {review.comment or 'no comment'})"


@flow
def announce(topic: str, patience: float = 60) -> str:
    text = draft(topic)
    review = kitaru.wait(
        schema=Review,
        name="review",
        question=f"Approve the announcement of {topic}?",
        timeout=patience,
    )
    if not review.approved:
        return f"withdrawn by {review.reviewer}"
    sure = kitaru.wait(schema=bool, name="confirm", question="Publish now?", timeout=patience)
    return publish(text, review).load() if sure else "kept as a draft"


def _show_commands(exec_id: str) -> None:
    review = json.dumps({"approved": True, "reviewer": "you", "comment": "looks good"})
    # Another terminal does not have this script's KITARU_STORE: the commands name it.
    kitaru_cmd = f"KITARU_STORE={shlex.quote(os.environ['KITARU_STORE'])} kitaru"
    print("Answer it from any terminal with:")
    print(f"    {kitaru_cmd} executions input {exec_id} --value {shlex.quote(review)}")
    print(f"    {kitaru_cmd} executions input {exec_id} --value true")
    print(f"(or refuse: {kitaru_cmd} executions input {exec_id} --abort)")


def answer(exec_id: str) -> None:
    """Play the reviewer: answer each wait of the execution as it comes up."""
    client = KitaruClient()
    deadline = time.monotonic() + 60
    answered: set[str] = set()
    while time.monotonic() < deadline:
        execution = client.executions.get(exec_id)
        if execution.status in ("completed", "failed", "cancelled"):
            return
        pending = execution.pending_wait
        if pending is not None and pending.name not in answered:
            print(f"    [reviewer process] {pending.question}", flush=True)
            if pending.name == "review":
                value: object = {"approved": True, "reviewer": "Ada", "comment": "ship it"}
            else:
                value = True
            client.executions.input(exec_id, value=value)
            answered.add(pending.name)
        time.sleep(0.05)
    raise SystemExit("the flow never finished")


def main() -> None:
    if "KITARU_STORE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="kitaru-approval-demo-")
        os.environ["KITARU_STORE"] = os.path.join(folder, "journal.db")
    manual = "--manual" in sys.argv[1:]
    handle = announce.run("kitaru 1.0", patience=300 if manual else 60)
    while handle.status == "running":
        time.sleep(0.05)
    print(f"Execution {handle.exec_id} is {handle.status}: it waits for a review.")
    _show_commands(handle.exec_id)
    if manual:
        print(handle.wait())
        return
    print("\nThis time a second process answers for you:")
    reviewer = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "answer", handle.exec_id],
        env=os.environ,
        check=False,
    )
    print(handle.wait(timeout=60))
    raise SystemExit(reviewer.returncode)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "answer":
        answer(sys.argv[2])
    else:
        main()
