"""The configurations that can be reloaded, and how each one is read and versioned."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.config import Config
from service.errors import ConfigError
from service.routing import filters, subscriptions
from service.routing.router import Router
from service.workspace import load as workspace_file

VERSION_CHARS = 12  # of the SHA-256 of the file's bytes


@dataclass(frozen=True)
class Loaded:
    value: Any
    version: str  # a content hash; "presets" / "none" when no file is configured


@dataclass(frozen=True)
class Source:
    name: str  # "subscriptions" or "filters": the ``config`` label of the metrics
    variable: str  # the setting naming the file
    path: str | None
    parse: Callable[[str, str], Any]  # (text, path) -> compiled value; ConfigError when wrong
    default: Callable[[], Any]  # the value when no file is configured
    default_version: str

    def load(self) -> Loaded:
        """Read, check and compile the file; ConfigError naming the problem."""
        if not self.path:
            return Loaded(self.default(), self.default_version)
        try:
            data = pathlib.Path(self.path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{self.variable}={self.path}: cannot read it ({exc.strerror})") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.variable}={self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        return Loaded(self.parse(text, self.path), hashlib.sha256(data).hexdigest()[:VERSION_CHARS])

    def watched(self) -> list[str]:
        """The files whose change is a new version."""
        return [self.path] if self.path else []


class WorkspaceSource:
    """The KAMELEOON_WORKSPACE file and the mappings and filters files it names: one configuration, whose
    version is a hash of every one of those files; each of them is watched."""

    name = "workspace"
    variable = "KAMELEOON_WORKSPACE"

    def __init__(self, path: str, make_router: Callable[..., Any]):
        self.path = path
        self._make_router = make_router
        self._files: list[str] = [path]

    def load(self) -> Loaded:
        loaded = workspace_file.load(self.path, self._make_router)
        self._files = [str(file) for file in loaded.files]
        return Loaded(loaded.workspace, loaded.version)

    def watched(self) -> list[str]:
        return list(self._files)


def sources_for(config: Config, make_router: Callable[..., Any] | None = None) -> tuple[Source | WorkspaceSource, ...]:
    """The workspace (KAMELEOON_WORKSPACE) when there is one, else the subscriptions (KAMELEOON_MAPPINGS) and
    the filters (KAMELEOON_FILTERS) of the KAMELEOON_* variables' one instance."""
    if config.workspace:
        return (WorkspaceSource(config.workspace, make_router or Router),)
    return (
        Source("subscriptions", "KAMELEOON_MAPPINGS", config.mappings, subscriptions.parse, lambda: subscriptions.load(None), "presets"),
        Source("filters", "KAMELEOON_FILTERS", config.filters, filters.parse, lambda: filters.NO_FILTERS, "none"),
    )
