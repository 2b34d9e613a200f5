"""Checking a new configuration fully, then putting it in force; refusing a bad one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from service.errors import ConfigError
from service.reload.sources import Source, WorkspaceSource
from service.reload.watch import Watcher, signature

log = structlog.get_logger("kameleoon.config")
APPLIED, UNCHANGED, REFUSED = "applied", "unchanged", "refused"


class Reloader:
    """The versions in force of ``sources``; ``apply(name, value)`` puts a new value in force."""

    def __init__(self, sources: tuple[Source | WorkspaceSource, ...], apply: Callable[[str, Any], None], metrics, poll_s: float = 0.0):
        self._sources = {source.name: source for source in sources}
        self._apply = apply
        self._metrics = metrics
        self._poll_s = poll_s
        self._watcher: Watcher | None = None
        self._signatures: dict[str, tuple | None] = {}
        self.versions: dict[str, str] = {}

    def load_initial(self) -> dict[str, Any]:
        """Every configuration, as start-up needs it; ConfigError stops the start."""
        self._signatures = {name: signature(s.path) for name, s in self._sources.items() if s.path}  # before reading
        values = {}
        for name, source in self._sources.items():
            loaded = source.load()
            values[name] = loaded.value
            self.versions[name] = loaded.version
            self._metrics.config_in_force(name, loaded.version)
        return values

    def reload(self, names: tuple[str, ...] | None = None, reason: str = "SIGHUP") -> dict[str, str]:
        """Reload ``names`` (default: all); each one applied, unchanged or refused (the old one stays)."""
        results = {}
        for name in names or tuple(self._sources):
            results[name] = self._reload_one(self._sources[name], reason)
        return results

    def _reload_one(self, source: Source | WorkspaceSource, reason: str) -> str:
        previous = self.versions.get(source.name)
        try:
            loaded = source.load()
        except ConfigError as exc:
            return self._refuse(source, reason, str(exc), previous)
        except Exception as exc:  # a bug must not take the service down on a reload
            log.exception("configuration reload failed", config=source.name)
            return self._refuse(source, reason, f"{type(exc).__name__}: {exc}", previous)
        if loaded.version == previous:
            self._metrics.config_reload(source.name, UNCHANGED)
            log.info("configuration unchanged", config=source.name, version=previous, reason=reason)
            return UNCHANGED
        self._apply(source.name, loaded.value)
        self.versions[source.name] = loaded.version
        if self._watcher is not None:  # a workspace may name other files now
            self._watcher.watch(self._files())
        self._metrics.config_in_force(source.name, loaded.version, previous)
        self._metrics.config_reload(source.name, APPLIED)
        log.info("configuration reloaded", config=source.name, version=loaded.version, previous=previous, reason=reason, path=source.path)
        return APPLIED

    def _refuse(self, source: Source | WorkspaceSource, reason: str, problem: str, previous: str | None) -> str:
        self._metrics.config_reload(source.name, REFUSED)
        log.error(
            "configuration reload refused: the previous version stays in force",
            config=source.name,
            path=source.path,
            reason=reason,
            error=problem,
            version_in_force=previous,
        )
        return REFUSED

    # -- watching the files ----------------------------------------------------

    def _files(self) -> dict[str, str]:
        """Every watched file, keyed "<configuration>#<n>": a change reloads its configuration."""
        return {f"{name}#{n}": path for name, source in self._sources.items() for n, path in enumerate(source.watched())}

    def start_watching(self) -> None:
        files = self._files()
        if not files or self._poll_s <= 0:
            return
        self._watcher = Watcher(files, self._poll_s, lambda key: self.reload((key.split("#", 1)[0],), reason="file changed"))
        self._watcher.seen_before_load({f"{name}#0": sig for name, sig in self._signatures.items()})
        self._watcher.start()

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
