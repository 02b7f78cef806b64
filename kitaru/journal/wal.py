"""Reading a journal's ``-wal`` file the way SQLite recovers it, to find what it would drop.

SQLite appends each committed change to the write-ahead log as frames (one database
page each); the last frame of a transaction is its commit frame. Every frame carries
the two salts of the log's header and a checksum that runs over the header and every
frame before it. When SQLite opens the database it keeps frames up to the last commit
frame of the unbroken chain and silently ignores everything from the first frame that
fails: one damaged byte makes every later transaction vanish, with no error. This
module reads the file itself, before anything opens the database (which would rebuild
the log's index and, later, overwrite or delete it), and reports such frames.

The file format is SQLite's "Database File Format", section "The WAL File Format".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WalFrame", "WalReport", "read_wal"]

_HEADER = 32
_FRAME_HEADER = 24
_MAGIC_LITTLE = 0x377F0682
_MAGIC_BIG = 0x377F0683
_VERSION = 3007000


@dataclass(frozen=True)
class WalFrame:
    index: int
    """Position in the file, from 1."""
    page: int
    commit: bool
    """The last frame of a transaction (it records the database size)."""


@dataclass
class WalReport:
    """What a ``-wal`` file holds, and what SQLite would keep of it."""

    path: str
    exists: bool = False
    size: int = 0
    page_size: int = 0
    frames: int = 0
    """Whole frames in the file, current or left over from before a checkpoint."""
    kept: int = 0
    """Frames SQLite keeps: the unbroken chain up to its last commit frame."""
    header_damaged: bool = False
    broken_at: WalFrame | None = None
    """The first frame of the current log that fails its checksum or salts."""
    dropped: list[WalFrame] = field(default_factory=list)
    """Frames of the current log after ``broken_at``, which SQLite ignores."""
    uncommitted: int = 0
    """Sound frames after the last commit frame: a transaction that never committed."""
    stale: int = 0
    """Frames of an older log generation (other salts), ignored as they should be."""

    @property
    def lost_commits(self) -> int:
        """Committed transactions SQLite would drop: commit frames from the break on."""
        if self.broken_at is None:
            return 0
        return sum(1 for frame in [self.broken_at, *self.dropped] if frame.commit)

    @property
    def damaged(self) -> bool:
        return self.header_damaged or self.lost_commits > 0

    def problems(self) -> list[str]:
        """One line per finding that means committed data is lost."""
        if self.header_damaged:
            return [
                f"wal: the header of {self.path} is damaged, so SQLite ignores all "
                f"{self.frames} frame(s) in it, committed ones included"
            ]
        if not self.damaged or self.broken_at is None:
            return []
        broken = self.broken_at
        lost = [broken, *self.dropped]
        pages = sorted({frame.page for frame in lost})
        line = (
            f"wal: frame {broken.index} (page {broken.page}) of {self.path} fails its "
            f"checksum or salts; SQLite ignores it and everything after it: "
            f"{len(lost) + self.uncommitted} frame(s), {self.lost_commits} committed "
            f"transaction(s), pages {_ranges(pages)}"
        )
        if not self.dropped:
            # Only the last commit frame is bad: with nothing written after it, a torn
            # write during a power loss looks exactly the same.
            line += (
                "; it is the last frame, so it may also be a commit cut short by a power "
                "loss (which then never reported success)"
            )
        return [line]

    def notes(self) -> list[str]:
        """What was read, and what the reading cannot prove."""
        if not self.exists:
            return ["wal: no -wal file; every committed change is in the database file"]
        out = [
            f"wal: {self.frames} frame(s) read, {self.kept} kept by SQLite; every "
            "checksum and salt checked as SQLite's recovery does"
        ]
        if self.broken_at is None and self.uncommitted:
            out.append(
                f"wal: {self.uncommitted} frame(s) after the last commit belong to a "
                "transaction that never committed (a write cut short); nothing is lost"
            )
        if self.broken_at is not None and not self.damaged:
            out.append(
                f"wal: frame {self.broken_at.index} fails its checksum but no commit is at "
                "or after it: a write in progress or cut short, not lost data"
            )
        if self.stale:
            out.append(
                f"wal: {self.stale} frame(s) are left over from before the last checkpoint "
                "and are rightly ignored"
            )
        out.append(
            "wal: this proves which frames SQLite will ignore; it cannot see damage inside "
            "frames it keeps or in the database file (the checks below cover those)"
        )
        return out


def _ranges(pages: list[int]) -> str:
    parts: list[str] = []
    start = prev = pages[0]
    for page in [*pages[1:], None]:
        if page is not None and page == prev + 1:
            prev = page
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if page is not None:
            start = prev = page
    return ", ".join(parts)


def _checksum(data: bytes, big_endian: bool, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum: two running sums over 32-bit words, taken two at a time."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


@dataclass(frozen=True)
class _Header:
    big_endian: bool
    page_size: int
    salts: tuple[int, int]
    checksum: tuple[int, int]

    @property
    def frame_size(self) -> int:
        return _FRAME_HEADER + self.page_size


def _header(data: bytes) -> _Header | None:
    """The log's header, or None if SQLite would not accept it."""
    magic, version, page_size, _, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:_HEADER])
    big_endian = magic == _MAGIC_BIG
    sane = (
        magic in (_MAGIC_LITTLE, _MAGIC_BIG)
        and version == _VERSION
        and 512 <= page_size <= 65536
        and page_size & (page_size - 1) == 0
    )
    if not sane or _checksum(data[:24], big_endian, 0, 0) != (c1, c2):
        return None
    return _Header(big_endian, page_size, (salt1, salt2), (c1, c2))


def read_wal(database: Path) -> WalReport:
    """Read ``<database>-wal`` (if there is one) as SQLite's recovery would."""
    path = Path(f"{database}-wal")
    report = WalReport(str(path))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return report
    report.exists = True
    report.size = len(data)
    if len(data) < _HEADER:
        return report  # SQLite treats a log shorter than its header as empty
    header = _header(data)
    if header is None:
        # Count frames by the page size the header claims, if it claims a sane one.
        (claimed,) = struct.unpack(">I", data[8:12])
        if 512 <= claimed <= 65536:
            report.frames = (len(data) - _HEADER) // (_FRAME_HEADER + claimed)
        report.header_damaged = True
        return report
    report.page_size = header.page_size
    report.frames = (len(data) - _HEADER) // header.frame_size
    _walk(data, header, report)
    return report


def _walk(data: bytes, header: _Header, report: WalReport) -> None:
    """Follow the checksum chain frame by frame; sort out what comes after a break."""
    s0, s1 = header.checksum
    pending = 0  # sound frames since the last commit frame
    frames = [_frame_at(data, header, index) for index in range(report.frames)]
    for index, (frame, head, current) in enumerate(frames):
        offset = _HEADER + index * header.frame_size
        body = data[offset + _FRAME_HEADER : offset + header.frame_size]
        s0, s1 = _checksum(head[:8], header.big_endian, s0, s1)
        s0, s1 = _checksum(body, header.big_endian, s0, s1)
        if current and frame.page != 0 and (s0, s1) == struct.unpack(">2I", head[16:24]):
            pending += 1
            if frame.commit:
                report.kept += pending
                pending = 0
            continue
        report.uncommitted = pending
        later = frames[index + 1 :]
        # A frame with other salts normally ends the log (it is left over from before a
        # checkpoint), unless frames of the current log follow it: then its salt was
        # damaged.
        if current or any(is_current for _, _, is_current in later):
            report.broken_at = frame
            report.dropped = [f for f, _, is_current in later if is_current]
        else:
            report.stale = len(frames) - index
        return
    report.uncommitted = pending


def _frame_at(data: bytes, header: _Header, index: int) -> tuple[WalFrame, bytes, bool]:
    offset = _HEADER + index * header.frame_size
    head = data[offset : offset + _FRAME_HEADER]
    page, db_size, salt1, salt2 = struct.unpack(">4I", head[:16])
    return WalFrame(index + 1, page, db_size != 0), head, (salt1, salt2) == header.salts
