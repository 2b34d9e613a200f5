"""Noticing that a configuration file changed: polling, no dependency.

Every ``interval`` seconds each file is read through its symlinks. Its
signature (the path it resolves to, its inode, size and times, and a hash of
its bytes) changing means the file changed: written in place, replaced by a
rename, or, as a Kubernetes ConfigMap update does, reached through a ``..data``
symlink that now points to a new directory. The bytes are hashed because two
writes within one tick of the file system's clock leave the times alike.
Reading a configuration file a second costs microseconds; inotify would miss
the ConfigMap swap unless the directory were watched, and needs a dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable


def signature(path: str) -> tuple | None:
    """What changes when the file behind ``path`` does; None when it cannot be read."""
    try:
        with open(path, "rb") as file:
            st = os.fstat(file.fileno())
            digest = hashlib.sha256(file.read()).digest()
    except OSError:
        return None
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)


class Watcher:
    """Calls ``on_change(name)`` when the file of ``name`` changes; files are read every ``interval`` seconds."""

    def __init__(self, files: dict[str, str], interval: float, on_change: Callable[[str], object]):
        self._files = files
        self._interval = interval
        self._on_change = on_change
        self._seen = {name: signature(path) for name, path in files.items()}
        self._task: asyncio.Task | None = None

    def watch(self, files: dict[str, str]) -> None:
        """Watch ``files`` from now on (a configuration naming other files after a reload); files kept keep their state."""
        self._seen = {
            name: self._seen[name] if name in self._seen and self._files.get(name) == path else signature(path) for name, path in files.items()
        }
        self._files = files

    def seen_before_load(self, signatures: dict[str, tuple | None]) -> None:
        """Start from signatures taken before the files were first read, so no change slips in between."""
        self._seen.update({name: sig for name, sig in signatures.items() if name in self._files})

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="config-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            changed = []
            for name, path in self._files.items():
                current = signature(path)
                if current != self._seen.get(name):
                    self._seen[name] = current
                    changed.append(name)
            for name in changed:  # after the look: a reload may change the files watched (watch())
                self._on_change(name)
