"""The docs stay true: the configuration reference is the code's table, every metric and RPC is
documented, every grpcurl example runs against a real server, every link leads somewhere."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re

import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from service.config import SETTINGS
from service.ops.metrics import Metrics
from tests.conftest import API_KEY, SITECODE
from tests.test_grpcurl import GRPCURL
from tools import gen_config_docs

ROOT = pathlib.Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
API = (ROOT / "docs" / "api.md").read_text()
OPERATING = (ROOT / "docs" / "operating.md").read_text()
# Named by the docs, not settings of the service: the tests' PostgreSQL binaries.
NOT_SETTINGS = {"KAMELEOON_TEST_PG_BINDIR"}


def test_the_configuration_reference_is_generated_from_the_settings_table():
    """docs/configuration.md is what `make docs` writes now: each variable, its real default, its meaning."""
    assert gen_config_docs.TARGET.read_text() == gen_config_docs.render(), "docs/configuration.md is stale: run make docs"


def test_the_configuration_reference_names_every_setting_once_in_its_section():
    text = gen_config_docs.render()
    for _, variable, _, _ in SETTINGS:
        assert text.count(f"| `{variable}` |") == 1, variable
    assert "| `KAMELEOON_TIMEOUT_S` | `10` |" in text  # a default as Config has it, no needless .0
    assert "| `KAMELEOON_API_KEY` | none |" in text


@pytest.mark.parametrize("page", [README, *DOCS, ROOT / "deploy" / "README.md"], ids=lambda p: p.name)
def test_every_variable_the_docs_name_is_a_setting(page):
    known = {variable for _, variable, _, _ in SETTINGS} | NOT_SETTINGS
    named = set(re.findall(r"KAMELEOON_[A-Z_]+[A-Z]", page.read_text()))
    assert named <= known, sorted(named - known)


def test_every_metric_is_documented():
    for metric in Metrics().registry.collect():
        assert f"`{metric.name}" in OPERATING, metric.name


def test_every_rpc_has_a_section_with_a_grpcurl_example():
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            section = API.split(f"\n### {method.name}\n", 1)
            assert len(section) == 2, f"docs/api.md has no '### {method.name}' section"
            body = section[1].split("\n#", 1)[0]
            assert f"{service.full_name}/{method.name}" in body, method.full_name


def _examples(text: str) -> list[str]:
    """The shell commands of a page's indented code blocks that call grpcurl, continuation lines joined."""
    commands, current = [], ""
    for line in text.splitlines():
        if not line.startswith("    ") and not current:
            continue
        current += line.strip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            if "grpcurl" in current and "localhost:50051" in current:
                commands.append(current)
            current = ""
    return commands


EXAMPLES = [(page.name, command) for page in (README, ROOT / "docs" / "api.md") for command in _examples(page.read_text())]


def test_the_examples_are_found():
    methods = {method.name for service in pb.DESCRIPTOR.services_by_name.values() for method in service.methods}
    called = {match for _, command in EXAMPLES for match in re.findall(r"/(\w+)\s*$", command)}
    assert methods <= called, sorted(methods - called)


@pytest.fixture
async def docs_server(start_service, tmp_path):
    """The server the examples are written for: default credentials, and an outbox for OutboxAdmin."""
    app, _ = await start_service(api_key=API_KEY, sitecode=SITECODE, outbox=f"sqlite:///{tmp_path}/outbox.db")
    return app.port


@pytest.mark.parametrize("page, command", EXAMPLES, ids=[f"{page}:{re.sub(r'.* ', '', c)[-40:]}" for page, c in EXAMPLES])
async def test_the_grpcurl_examples_run(page, command, docs_server, sink):
    """Each example, run by a shell as written (grpcurl from .venv, the server's free port for 50051)."""
    assert GRPCURL is not None, "grpcurl is missing: make install"
    line = command.replace("localhost:50051", f"127.0.0.1:{docs_server}")
    path = f"{os.path.dirname(GRPCURL)}{os.pathsep}{os.environ.get('PATH', '')}"
    process = await asyncio.create_subprocess_shell(
        line, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PATH": path}
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (command, err.decode())
    assert "ERROR" not in out.decode() + err.decode(), (command, out.decode(), err.decode())
    if "KameleoonDestination/Preview" in command:
        assert not sink.received, "a preview sent something to Kameleoon"
    elif "KameleoonDestination/" in command and "TestAuthentication" not in command:
        assert sink.received, "the example sent nothing to Kameleoon"


def _links(text: str) -> list[str]:
    return [target for target in re.findall(r"\]\(([^)]+)\)", text) if not re.match(r"[a-z]+:", target)]


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation gone, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_link_leads_somewhere(page):
    for link in _links(page.read_text()):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: {link}"
        if anchor:
            assert anchor in _anchors(target.read_text()), f"{page.name}: {link}"


def test_the_readme_is_a_front_page():
    """What it is, a quick start, how to call it and where to read on: the rest lives in docs/."""
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    for page in DOCS:
        assert f"docs/{page.name}" in text, f"the README does not lead to docs/{page.name}"
