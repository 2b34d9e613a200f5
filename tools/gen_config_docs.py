"""Write docs/configuration.md from the settings table (make docs), or check it is current (--check).

The table is service.config.settings: SETTINGS (attribute, variable, parser, meaning) and SECTIONS;
each default is read off Config itself, so the reference cannot disagree with the code.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from service.config.settings import SECTIONS, SETTINGS, Config

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "configuration.md"

HEADER = """\
# Configuration reference

<!-- Generated from service/config/settings.py by `make docs`; do not edit by hand. -->

Environment variables, read at start-up; a bad value stops the service with the variable named
(`kameleoon-destination: configuration error: KAMELEOON_TIMEOUT_S='0': must be greater than 0`).
Secrets are never shown: not in logs, errors, nor `Config`'s repr. `serve --listen HOST:PORT` sets
the gRPC address (default `127.0.0.1:50051`; `0.0.0.0:50051` in a container).
"""


def shown_default(value) -> str:
    """A default as the reference writes it: none for unset, numbers without a needless .0."""
    if value in (None, ()):
        return "none"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple):
        value = ":".join(str(part) for part in value)
    return f"`{value}`"


def render() -> str:
    defaults = Config()
    starts = {attribute: title for title, attribute in SECTIONS}
    out = [HEADER.rstrip()]
    for attribute, variable, _, meaning in SETTINGS:
        if attribute in starts:
            out.append(f"\n## {starts[attribute]}\n\n| variable | default | meaning |\n|---|---|---|")
        out.append(f"| `{variable}` | {shown_default(getattr(defaults, attribute))} | {meaning} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when docs/configuration.md differs from the table")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/configuration.md is stale: run make docs", file=sys.stderr)
            return 1
        print("docs/configuration.md is current")
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
