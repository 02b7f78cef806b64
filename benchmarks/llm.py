"""Benchmarks of ``kitaru.llm()``: ``python -m benchmarks.llm [--quick]``.

(a) Storage. A flow-body loop of 100 calls resends its growing conversation every
    time (user messages and replies of 0.5 to 2 KB each). Stored naively, message k
    would be written once per later call. The figure is the bytes of the journal's
    message store (the prompt chain's nodes and message contents, and the responses)
    over the bytes of the conversation's unique messages (target: at most 1.2x); the
    whole ``payloads`` table and the journal file's growth are printed beside it.
(b) Overhead. N flow-body ``kitaru.llm()`` calls in one flow against N calls of the
    ``openai`` SDK itself, with the client settings kitaru uses, to the same local
    server and with the same messages. Each call is timed on its own; the figures are
    the medians per call and their difference: what journaling a model call costs
    (one durable SQLite commit, hashing and storing the prompt and the response).

A minimal OpenAI-compatible server on 127.0.0.1, started and stopped here, answers
every request; nothing leaves the machine. The measurements run in a worker process
with its own journal files (``python -m benchmarks.llm --worker DIR ...``).

Nothing is asserted: the figures are printed with MET / MISSED beside the target.
``python -m benchmarks`` runs this as one of its sections.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec

import kitaru
from benchmarks.common import (
    REPO_ROOT,
    Target,
    child_env,
    emit_result,
    median,
    run_worker,
    us,
    verdict,
)
from kitaru import KitaruClient, flow
from kitaru.journal.events import LlmCallRecorded, decode_event

TARGET_RATIO = 1.2
MODEL = "openai/gpt-4o-mini"
SYSTEM = "You are a careful assistant. Answer in a few paragraphs."
_API_KEY = "sk-benchmark-local-server"  # the local server accepts any key
_WORDS = [
    "journal",
    "replay",
    "durable",
    "checkpoint",
    "agent",
    "model",
    "prompt",
    "response",
    "crash",
    "resume",
    "token",
    "sqlite",
    "event",
    "payload",
    "hash",
    "message",
    "conversation",
    "context",
    "latency",
    "provider",
]
_DB_SUFFIXES = ("", "-wal")


def text_of(seed: int, size: int) -> str:
    """Deterministic prose of about ``size`` bytes, different for every seed."""
    words = [f"[{seed}]"]
    index, length = seed, len(words[0])
    while length < size:
        index = (index * 1103515245 + 12345) % 2**31
        word = _WORDS[index % len(_WORDS)]
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def message_size(seed: int) -> int:
    """A size between 0.5 and 2 KB."""
    return 500 + (seed * 7919) % 1548


# --------------------------------------------------------------------------- the server


class _Server:
    """Answers OpenAI chat completions with a reply derived from the request's last message."""

    def __init__(self, *, realistic: bool):
        self.count = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, realistic))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler(server: _Server, realistic: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm on, the second
        # waits for the client's delayed ACK (40 ms on Linux) and every call would too.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            with server._lock:
                server.count += 1
            last = body["messages"][-1]["content"]
            seed = len(body["messages"]) * 1009 + len(last)
            text = text_of(seed, message_size(seed)) if realistic else "A short answer."
            data = json.dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


# --------------------------------------------------------------------------- the flows

_timings: list[float] = []
"""Seconds each call of ``timed_calls`` took, in the flow body, around ``kitaru.llm()``."""


@flow
def growing_conversation(calls: int) -> int:
    history: list[dict[str, str]] = []
    for turn in range(calls):
        history.append({"role": "user", "content": text_of(turn, message_size(turn))})
        reply: str = kitaru.llm(history, model=MODEL, system=SYSTEM).load()
        history.append({"role": "assistant", "content": reply})
    return len(history)


@flow
def timed_calls(prompts: list[str]) -> int:
    for prompt in prompts:
        started = time.perf_counter()
        kitaru.llm([{"role": "user", "content": prompt}], model=MODEL).load()
        _timings.append(time.perf_counter() - started)
    return len(prompts)


def _files_bytes(db: pathlib.Path) -> int:
    return sum(
        db.with_name(db.name + s).stat().st_size
        for s in _DB_SUFFIXES
        if db.with_name(db.name + s).exists()
    )


def _checkpointed_size(db: pathlib.Path) -> int:
    """The journal's size once its WAL is folded into the main file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return _files_bytes(db)


def _measure_storage(calls: int, db: pathlib.Path) -> dict[str, Any]:
    os.environ["KITARU_STORE"] = str(db)
    KitaruClient().executions.list()  # creates the empty journal: its size is the baseline
    empty = _checkpointed_size(db)
    with _Server(realistic=True) as server:
        os.environ["OPENAI_BASE_URL"] = server.url
        handle = growing_conversation.run(calls)
        handle.wait(timeout=600)
        sent = server.count
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = dict(conn.execute("SELECT hash, bytes FROM payloads").fetchall())
        events = conn.execute(
            "SELECT type, body FROM events WHERE exec_id = ? ORDER BY seq", (handle.exec_id,)
        ).fetchall()
        event_bytes = sum(len(body) for _, body in events)
    recorded = [
        event
        for kind, body in events
        if isinstance(event := decode_event(kind, bytes(body)), LlmCallRecorded)
    ]
    # Walk every prompt's chain of nodes: the rows that make up the message store.
    nodes: set[str] = set()
    contents: set[str] = set()
    unique: set[str] = set()
    naive = 0
    for event in recorded:
        node: str | None = event.prompt
        while node is not None:
            parent, _role, content = msgspec.msgpack.decode(rows[node])
            if node not in nodes:
                nodes.add(node)
                contents.add(content)
                unique.add(msgspec.msgpack.decode(rows[content]))
            naive += len(rows[content])
            node = parent
        if event.response.hash is not None:
            contents.add(event.response.hash)
            unique.add(msgspec.msgpack.decode(rows[event.response.hash]))
        else:
            unique.add(msgspec.msgpack.decode(event.response.inline or b""))
    store_bytes = sum(len(rows[h]) for h in nodes | contents)
    return {
        "calls": calls,
        "requests": sent,
        "unique_messages": len(unique),
        "unique_bytes": sum(len(text.encode()) for text in unique),
        "message_rows": len(nodes | contents),
        "node_rows": len(nodes),
        "store_bytes": store_bytes,
        "payload_rows": len(rows),
        "payload_bytes": sum(len(data) for data in rows.values()),
        "event_bytes": event_bytes,
        "naive_bytes": naive,
        "file_growth": _checkpointed_size(db) - empty,
    }


def _measure_overhead(calls: int, repeats: int, db: pathlib.Path) -> dict[str, Any]:
    import openai  # in the worker only: the parent process never loads the SDK

    from kitaru._llm.providers.protocol import (
        CONNECT_TIMEOUT_SECONDS,
        SDK_MAX_RETRIES,
        TIMEOUT_SECONDS,
    )

    os.environ["KITARU_STORE"] = str(db)
    prompts = [text_of(10_000 + i, 1000) for i in range(calls)]
    kitaru_runs: list[list[float]] = []
    sdk_runs: list[list[float]] = []
    with _Server(realistic=False) as server:
        os.environ["OPENAI_BASE_URL"] = server.url
        client = openai.OpenAI(
            api_key=_API_KEY,
            base_url=server.url,
            max_retries=SDK_MAX_RETRIES,
            timeout=openai.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        )

        def sdk_batch(batch: list[str]) -> list[float]:
            times = []
            for prompt in batch:
                started = time.perf_counter()
                client.chat.completions.create(
                    model=MODEL.partition("/")[2], messages=[{"role": "user", "content": prompt}]
                )
                times.append(time.perf_counter() - started)
            return times

        def kitaru_batch(batch: list[str]) -> list[float]:
            _timings.clear()
            timed_calls.run(batch).wait(timeout=600)
            return list(_timings)

        warm = prompts[: min(10, calls)]
        sdk_batch(warm)
        kitaru_batch(warm)
        # Alternate, so that disk and CPU hiccups hit both sides alike.
        for _ in range(repeats):
            kitaru_runs.append(kitaru_batch(prompts))
            sdk_runs.append(sdk_batch(prompts))
        client.close()
    return {"calls": calls, "repeats": repeats, "kitaru": kitaru_runs, "sdk": sdk_runs}


def _worker(folder: pathlib.Path, calls: int, overhead_calls: int, repeats: int) -> None:
    os.environ["OPENAI_API_KEY"] = _API_KEY
    for name in ("KITARU_LLM_MOCK_RESPONSE", "KITARU_DEFAULT_MODEL", "KITARU_MODEL_REGISTRY"):
        os.environ.pop(name, None)
    storage = _measure_storage(calls, folder / "storage.db")
    overhead = _measure_overhead(overhead_calls, repeats, folder / "overhead.db")
    emit_result({"storage": storage, "overhead": overhead})


# --------------------------------------------------------------------------- the parent


@dataclass(frozen=True)
class LlmFigures:
    storage: dict[str, Any]
    kitaru: list[list[float]]
    """Seconds per call, per repeat, for flow-body kitaru.llm() calls."""
    sdk: list[list[float]]
    """Seconds per call, per repeat, for bare openai SDK calls."""

    @property
    def ratio(self) -> float:
        return float(self.storage["store_bytes"]) / float(self.storage["unique_bytes"])

    @property
    def kitaru_s(self) -> float:
        return median([t for run in self.kitaru for t in run])

    @property
    def sdk_s(self) -> float:
        return median([t for run in self.sdk for t in run])


def measure(
    workdir: pathlib.Path, *, calls: int = 100, overhead_calls: int = 200, repeats: int = 5
) -> LlmFigures:
    """Run the worker in a fresh folder under ``workdir`` and collect its figures."""
    folder = workdir / "llm"
    folder.mkdir(parents=True, exist_ok=True)
    data = run_worker(
        "benchmarks.llm",
        ["--worker", str(folder), str(calls), str(overhead_calls), str(repeats)],
        env=child_env(),
    )
    overhead = data["overhead"]
    return LlmFigures(data["storage"], overhead["kitaru"], overhead["sdk"])


def report(figures: LlmFigures) -> list[Target]:
    """Print the figures; return the summary lines."""
    s = figures.storage
    unique, store = s["unique_bytes"], s["store_bytes"]
    met = figures.ratio <= TARGET_RATIO
    print(
        f"  (a) {s['calls']} flow-body calls resending a growing conversation "
        f"({s['requests']} requests), messages of 0.5-2 KB"
    )
    print(f"      unique messages: {s['unique_messages']}, {unique / 1e3:,.1f} kB of text")
    print(
        f"      message store: {s['message_rows']} payload rows ({s['node_rows']} chain "
        f"nodes + contents and responses), {store / 1e3:,.1f} kB"
    )
    print(f"      ratio {figures.ratio:.2f}x   target <= {TARGET_RATIO:.1f}x   {verdict(met)}")
    print(
        f"      whole payloads table: {s['payload_rows']} rows, {s['payload_bytes'] / 1e3:,.1f} kB "
        f"= {s['payload_bytes'] / unique:.2f}x; events of the execution: "
        f"{s['event_bytes'] / 1e3:,.1f} kB"
    )
    print(
        f"      journal file growth (WAL folded in): {s['file_growth'] / 1e3:,.1f} kB = "
        f"{s['file_growth'] / unique:.2f}x (SQLite pages, indexes and the events included)"
    )
    print(
        f"      for scale, every prompt stored whole: {s['naive_bytes'] / 1e6:,.1f} MB = "
        f"{s['naive_bytes'] / unique:.0f}x"
    )
    n = len(figures.kitaru[0])
    diff = figures.kitaru_s - figures.sdk_s
    print(
        f"  (b) {n} calls per run, {len(figures.kitaru)} runs each side, alternating, "
        "1 KB prompts, same local server"
    )
    print(f"      openai SDK directly:         median {us(figures.sdk_s)} per call")
    print(f"      kitaru.llm() in a flow body: median {us(figures.kitaru_s)} per call")
    print(f"      kitaru adds {us(diff)} per call ({figures.kitaru_s / figures.sdk_s:.2f}x)")
    per_run = ", ".join(
        f"{(median(k) - median(b)) * 1e6:.0f}"
        for k, b in zip(figures.kitaru, figures.sdk, strict=True)
    )
    print(f"      difference per run (µs): {per_run}")
    return [
        Target(
            name=f"llm message store ({s['calls']} calls)",
            figure=f"{store / 1e3:,.1f} kB",
            baseline=f"unique messages {unique / 1e3:,.1f} kB",
            ratio=f"{figures.ratio:.2f}x",
            target=f"<= {TARGET_RATIO:.1f}x",
            met=met,
        ),
        Target(
            name="kitaru.llm() per call",
            figure=us(figures.kitaru_s),
            baseline=f"openai SDK {us(figures.sdk_s)}",
            ratio=f"+{us(diff)}",
            target="",
            met=None,
        ),
    ]


def section(workdir: pathlib.Path, *, quick: bool, smoke: bool = False) -> list[Target]:
    """The ``python -m benchmarks`` section: measure and print."""
    if smoke:
        return report(measure(workdir, calls=10, overhead_calls=5, repeats=1))
    if quick:
        return report(measure(workdir, calls=100, overhead_calls=50, repeats=2))
    return report(measure(workdir))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        folder, calls, overhead_calls, repeats = argv[1:5]
        _worker(pathlib.Path(folder), int(calls), int(overhead_calls), int(repeats))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.llm", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--calls", type=int, default=100, help="calls in the storage loop")
    parser.add_argument("--overhead-calls", type=int, default=200, help="calls per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side")
    parser.add_argument("--quick", action="store_true", help="fewer timed calls")
    parser.add_argument(
        "--workdir", type=pathlib.Path, help="parent of the temporary folder (default: the repo)"
    )
    args = parser.parse_args(argv)
    base = args.workdir if args.workdir is not None else REPO_ROOT
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=".kitaru-bench-llm-", dir=base))
    os.environ["KITARU_CONFIG_PATH"] = str(workdir / "config")
    try:
        print("kitaru.llm() benchmarks")
        if args.quick:
            report(measure(workdir, calls=args.calls, overhead_calls=50, repeats=2))
        else:
            report(
                measure(
                    workdir,
                    calls=args.calls,
                    overhead_calls=args.overhead_calls,
                    repeats=args.repeats,
                )
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
