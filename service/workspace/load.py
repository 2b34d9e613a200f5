"""The KAMELEOON_WORKSPACE file: sources, their write keys, their destination instances; checked in full.

    sources:
      - name: checkout                         # unique; letters, digits, - and _
        write_keys: ["wk_live_1"]              # each a string, {env: NAME} or {file: PATH}
        allow_request_settings: true           # optional (default true): requests may carry their own settings
        destinations:                          # up to 25, names unique within the source
          - name: kameleoon-eu
            enabled: true                      # optional, default true
            settings:
              apiKey: {env: KAMELEOON_EU_API_KEY}   # or {file: PATH}, or a string (warned about)
              sitecode: "0123456789"
            mappings: mappings-eu.yaml         # optional, relative to this file; the four presets when absent
            filters: filters-eu.yaml           # optional
            consent_categories: [C0002]        # optional

JSON or YAML (by the file's name). Every error names the file and the path in it
(``sources[0].destinations[1].settings.sitecode``); an unknown key is refused, so a typo never
passes as a default. Secrets never appear in an error.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from service.config.values import SITECODE_LENGTH
from service.delivery.credentials import Credentials
from service.errors import ConfigError
from service.ingest.consent import Consent
from service.routing import filters as filter_files
from service.routing import specfile
from service.routing import subscriptions as subscription_files
from service.routing.filters import NO_FILTERS
from service.routing.router import Router
from service.workspace.model import Instance, Source, Workspace, digest

log = structlog.get_logger("kameleoon.config")

VARIABLE = "KAMELEOON_WORKSPACE"
MAX_INSTANCES = 25  # what Segment connects to one source
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
SOURCE_KEYS: tuple[set[str], set[str]] = ({"name", "write_keys", "destinations"}, {"allow_request_settings"})
INSTANCE_KEYS: tuple[set[str], set[str]] = ({"name", "settings"}, {"enabled", "mappings", "filters", "consent_categories"})
SETTINGS_KEYS: tuple[set[str], set[str]] = ({"apiKey", "sitecode"}, set())


class WorkspaceError(ConfigError):
    """A workspace file that cannot be used: names the file and the path in it."""


class Loaded:
    """A workspace and everything its version depends on: the file, and the files it names."""

    def __init__(self, workspace: Workspace, files: list[pathlib.Path], version: str):
        self.workspace, self.files, self.version = workspace, files, version


def load(path: str, make_router: Callable[..., Router] = Router, environ: Mapping[str, str] | None = None) -> Loaded:
    """Read, check and compile the workspace at ``path``; WorkspaceError naming the problem."""
    environ = os.environ if environ is None else environ
    file = pathlib.Path(path)
    text = _read(file, f"{VARIABLE}={path}")
    data = specfile.read(text, path, VARIABLE, WorkspaceError)
    reader = _Reader(file, make_router, environ)
    workspace = reader.workspace(data)
    version = hashlib.sha256(b"".join(reader.read_bytes)).hexdigest()[:12]
    return Loaded(workspace, [file, *reader.files], version)


def _read(file: pathlib.Path, label: str) -> str:
    try:
        return file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise WorkspaceError(f"{label}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise WorkspaceError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class _Reader:
    def __init__(self, file: pathlib.Path, make_router: Callable[..., Router], environ: Mapping[str, str]):
        self.file = file
        self.make_router = make_router
        self.environ = environ
        self.files: list[pathlib.Path] = []  # the mappings and filters files named
        self.read_bytes: list[bytes] = [file.read_bytes()]

    def error(self, where: str, problem: str) -> WorkspaceError:
        return WorkspaceError(f"{VARIABLE}={self.file}: {where}: {problem}")

    def keys(self, spec: Any, where: str, allowed: tuple[set, set]) -> dict:
        required, optional = allowed
        if not isinstance(spec, dict):
            raise self.error(where, f"expected an object with {', '.join(sorted(required))}")
        missing = required - spec.keys()
        if missing:
            raise self.error(where, f"missing {', '.join(sorted(missing))}")
        unknown = spec.keys() - required - optional
        if unknown:
            raise self.error(f"{where}.{sorted(map(str, unknown))[0]}", "unknown key")
        return spec

    def named(self, spec: Any, where: str, allowed: tuple[set, set], taken: set[str], scope: str = "") -> tuple[dict, str]:
        """A source's or an instance's object and its name: well formed, and not one of ``taken`` (added to it)."""
        spec = self.keys(spec, where, allowed)
        name = spec["name"]
        if not isinstance(name, str) or not NAME.match(name):
            raise self.error(f"{where}.name", "must be 1 to 64 letters, digits, - or _")
        if name in taken:
            raise self.error(f"{where}.name", f"{name!r} is used twice{scope}")
        taken.add(name)
        return spec, name

    def flag(self, spec: dict, key: str, where: str) -> bool:
        """An optional true/false, true by default."""
        value = spec.get(key, True)
        if not isinstance(value, bool):
            raise self.error(f"{where}.{key}", "must be true or false")
        return value

    def secret(self, value: Any, where: str, warn: bool = True) -> str:
        """A string, {env: NAME} or {file: PATH} (relative to the workspace). An apiKey written in the file is
        warned about; a write key need not be (Segment's sit in every web page that loads analytics.js)."""
        if isinstance(value, str) and value:
            if warn:
                log.warning("a secret is written in the workspace file: prefer {env: NAME} or {file: PATH}", path=where, workspace=str(self.file))
            return value
        if isinstance(value, dict) and len(value) == 1:
            ((kind, ref),) = value.items()
            if kind == "env" and isinstance(ref, str):
                found = self.environ.get(ref)
                if not found:
                    raise self.error(where, f"the environment variable {ref} is not set")
                return found
            if kind == "file" and isinstance(ref, str):
                path = self.file.parent / ref
                try:
                    raw = path.read_bytes()
                    found = raw.decode("utf-8").strip()
                except (OSError, UnicodeDecodeError):
                    raise self.error(where, f"cannot read the file {ref}") from None
                if not found:
                    raise self.error(where, f"the file {ref} is empty")
                self.files.append(path)  # watched: a rotated Secret is a new version (the hash never shows the key)
                self.read_bytes.append(raw)
                return found
        raise self.error(where, "must be a non-empty string, {env: NAME} or {file: PATH}")

    def named_file(self, value: Any, where: str, parse: Callable[[str, str], Any]) -> Any:
        if not isinstance(value, str) or not value:
            raise self.error(where, "must be a file name, relative to the workspace file")
        path = self.file.parent / value
        text = _read(path, f"{VARIABLE}={self.file}: {where}: {value}")
        self.files.append(path)
        self.read_bytes.append(path.read_bytes())
        return parse(text, str(path))

    def workspace(self, data: Any) -> Workspace:
        data = self.keys(data, "the file", ({"sources"}, set()))
        specs = data["sources"]
        if not isinstance(specs, list) or not specs:
            raise self.error("sources", "must be a non-empty list of sources")
        sources: list[Source] = []
        keys: dict[bytes, str] = {}
        names: set[str] = set()
        for index, spec in enumerate(specs):
            where = f"sources[{index}]"
            spec, name = self.named(spec, where, SOURCE_KEYS, names)
            write_keys = spec["write_keys"]
            if not isinstance(write_keys, list) or not write_keys:
                raise self.error(f"{where}.write_keys", "must be a non-empty list")
            for n, value in enumerate(write_keys):
                key = digest(self.secret(value, f"{where}.write_keys[{n}]", warn=False))
                if key in keys:
                    raise self.error(f"{where}.write_keys[{n}]", f"the same write key opens source {keys[key]!r} already")
                keys[key] = name
            allow = self.flag(spec, "allow_request_settings", where)
            sources.append(Source(name, self.instances(spec["destinations"], name, where), allow))
        return Workspace(tuple(sources), keys, from_file=True)

    def instances(self, specs: Any, source: str, where: str) -> tuple[Instance, ...]:
        if not isinstance(specs, list) or not specs:
            raise self.error(f"{where}.destinations", "must be a non-empty list of destination instances")
        if len(specs) > MAX_INSTANCES:
            raise self.error(f"{where}.destinations", f"{len(specs)} instances, Segment connects at most {MAX_INSTANCES} to a source")
        instances: list[Instance] = []
        names: set[str] = set()
        for index, spec in enumerate(specs):
            here = f"{where}.destinations[{index}]"
            spec, name = self.named(spec, here, INSTANCE_KEYS, names, " in this source")
            settings = self.keys(spec["settings"], f"{here}.settings", SETTINGS_KEYS)
            api_key = self.secret(settings["apiKey"], f"{here}.settings.apiKey")
            sitecode = settings["sitecode"]
            if not isinstance(sitecode, str) or len(sitecode) != SITECODE_LENGTH:
                raise self.error(f"{here}.settings.sitecode", f"must be exactly {SITECODE_LENGTH} characters")
            enabled = self.flag(spec, "enabled", here)
            subs = (
                self.named_file(spec["mappings"], f"{here}.mappings", subscription_files.parse)
                if "mappings" in spec
                else subscription_files.load(None)
            )
            filters = self.named_file(spec["filters"], f"{here}.filters", filter_files.parse) if "filters" in spec else NO_FILTERS
            categories = spec.get("consent_categories", [])
            if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
                raise self.error(f"{here}.consent_categories", "must be a list of category ids")
            instances.append(
                Instance(source, name, self.make_router(subs, filters), Consent(tuple(categories)), Credentials(api_key, sitecode), enabled)
            )
        return tuple(instances)
