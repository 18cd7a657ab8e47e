"""The work dir's own rules: one writer at a time, and stage markers read defensively.

One writer per work dir: an exclusive ``flock`` on ``<work_dir>/.lock``.

Every command that writes a work dir holds the lock for its whole run; a second writer is refused
at once (non-blocking) with one line naming the holder. The lock file records who holds it (pid,
host, command, start time) for that message; the lock itself is the kernel's ``flock`` on the
open file, so it goes away with the process however it ends (exit, exception, SIGKILL) and a
stale file never blocks anyone.

Stage markers (``prepare.json``, ``synth.json``, ``metrics.json``, a split's ``index.json``) are
written atomically; :func:`read_marker` still treats one that is truncated or corrupt (an older
version, a disk that lost power) as missing, naming it in one warning line, so its stage rebuilds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import logging
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "WorkDirBusy", "holder", "read_marker", "work_dir_lock"]

LOCK_NAME = ".lock"


class WorkDirBusy(RuntimeError):
    """Another process holds the work dir's lock."""


def read_marker(path: str | Path) -> dict:
    """A stage's JSON marker (an object), or {} when missing; a truncated or corrupt one is named in
    one warning line and read as {} (the stage is then not up to date and rebuilds).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        blob = json.loads(path.read_text())
        if isinstance(blob, dict):
            return blob
        reason = f"a JSON {type(blob).__name__}, not an object"
    except (OSError, UnicodeDecodeError, ValueError) as e:
        reason = " ".join(str(e).split())[:120]
    log.warning("%s is corrupt (%s); rebuilding it", path, reason)
    return {}


def holder(work: str | Path) -> dict:
    """What ``<work>/.lock`` says about its holder ({} when empty or unreadable)."""
    try:
        blob = json.loads((Path(work) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return blob if isinstance(blob, dict) else {}


def _describe(info: dict) -> str:
    if not info:
        return "another process (it has not written its name yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"])) if "since" in info else "?"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} ({info.get('command', '?')}, since {since})"


@contextlib.contextmanager
def work_dir_lock(work: str | Path, command: str) -> Iterator[Path]:
    """Hold ``<work>/.lock`` exclusively for the ``with`` block, or raise :class:`WorkDirBusy`.

    Args:
        work: The recipe's work dir (created if missing).
        command: What the holder is doing, shown to a refused second writer.
    """
    work = Path(work)
    created = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    path = work / LOCK_NAME
    # O_CREAT without O_TRUNC: a refused writer must not erase the holder's record.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkDirBusy(f"work dir {work} is in use by {_describe(holder(work))}; wait for it to finish "
                              f"or stop it") from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                             "since": time.time()}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        try:
            yield path
        finally:
            # A command that failed before writing anything leaves no work dir behind it.
            if created and [p.name for p in work.iterdir()] == [LOCK_NAME]:
                path.unlink()
                work.rmdir()
    finally:
        os.close(fd)  # releases the flock; the file otherwise stays (removing it would race a waiting writer)
