"""Mutation testing of the event path (make mutate): how many small breakages the tests catch.

    python -m tools.mutate service/api/pipeline.py service/delivery/client.py ...

mutmut (pinned in the dev extra; settings under [tool.mutmut] in pyproject.toml) copies
``service/`` into ``mutants/``, makes every mutant of the modules named here, learns which
tests run each function, and runs just those tests against each mutant. This wrapper
chooses the modules (the Makefile's MUTATE, so a new module is one word there), starts
from a clean ``mutants/`` so no verdict is left over from older code or tests, and prints
the score per module with every surviving mutant, which ``mutmut show NAME`` displays.
It reports; it never fails a build (exit 0 unless mutmut itself could not run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import re
import shutil
import sys
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
REPORT = MUTANTS / "report.json"
# Verdicts that count as caught: a mutant whose tests hang was stopped because they ran (see tests/MUTANTS.md).
CAUGHT = ("killed", "timeout")
# A survivor that only changes the case of SQL outside its quoted literals is equivalent by rule:
# SQLite and PostgreSQL read keywords and unquoted names in any case (ours are all lower case).
SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|AND|SET|VALUES|PRAGMA|SAVEPOINT|ROLLBACK|RELEASE"
    r"|COMMIT|BEGIN|CONFLICT|ORDER BY|GROUP BY|LIMIT|RETURNING|NULL)\b|[=<>] [?$:]"
)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def run(modules: list[str], workers: int, names: list[str]) -> None:
    from mutmut import configuration
    from mutmut.__main__ import cli

    config = configuration.config()
    config.only_mutate = modules
    with shared_postgres():
        try:
            cli.main(["run", "--max-children", str(workers), *names], prog_name="mutmut", standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise


@contextlib.contextmanager
def shared_postgres():
    """One PostgreSQL server for the whole run, which every mutant's tests use (tests/outbox/pg.py):
    started per mutant, a server would cost each about 2 s. Without binaries, the tests skip as usual."""
    from tools import postgres_server

    if postgres_server.find_bindir() is None:
        yield
        return
    server = postgres_server.start_server()
    try:
        server.create_password_user()  # made once here: mutants testing at once would race to make it
        os.environ["KAMELEOON_TEST_PG_SERVER"] = server.handle()
        yield
    finally:
        os.environ.pop("KAMELEOON_TEST_PG_SERVER", None)
        server.destroy()


def verdicts(modules: list[str]) -> dict[str, dict[str, str]]:
    """{module: {mutant name: status}} from mutmut's files in mutants/."""
    from mutmut.stats import status_by_exit_code

    found = {}
    for module in modules:
        meta = json.loads((MUTANTS / (module + ".meta")).read_text())
        found[module] = {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}
    return found


def sql_case_only(diff: str) -> bool:
    """Whether a mutant's diff only changes the case of SQL: one line, one string literal changed in
    case alone, its quoted parts ('live', "a name") unchanged, and the original holding SQL's words."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if len(removed) != 1 or len(added) != 1 or removed == added or removed[0].lower() != added[0].lower():
        return False
    before, after = STRING.findall(removed[0]), STRING.findall(added[0])
    if STRING.sub("", removed[0]) != STRING.sub("", added[0]) or len(before) != len(after):
        return False
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    return len(changed) == 1 and all(QUOTED.findall(old[1:-1]) == QUOTED.findall(new[1:-1]) and SQL_WORDS.search(old) for old, new in changed)


def sql_case_survivors(found: dict[str, dict[str, str]]) -> set[str]:
    """The survivors that only change the case of SQL (read from mutants/, as ``mutmut show`` does)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return {
        name
        for module, statuses in found.items()
        for name, status in statuses.items()
        if status == "survived" and sql_case_only(get_diff_for_mutant(name, path=module))
    }


def report(found: dict[str, dict[str, str]]) -> dict:
    """Print the score per module and overall, and the survivors; return it all as a dict."""
    sql_case = sql_case_survivors(found)
    summary = {"modules": {}, "survived": [], "sql_case": sorted(sql_case)}
    total = Counter()
    print()
    print(f"{'module':32} {'mutants':>8} {'killed':>8} {'survived':>9} {'sql case':>9} {'other':>6} {'score':>7} {'of the rest':>12}")
    for module, statuses in found.items():
        counts = Counter(statuses.values())
        counts["sql case"] = sum(1 for name in statuses if name in sql_case)
        total.update(counts)
        summary["modules"][module] = _line(module, counts)
        summary["survived"] += sorted(name for name, status in statuses.items() if status not in CAUGHT and name not in sql_case)
    summary["total"] = _line("all", total)
    if sql_case:
        print(f"\n{len(sql_case)} survivors only change the case of SQL outside its quoted literals (equivalent: listed in report.json)")
    if summary["survived"]:
        print("\nNot killed (see each with `.venv/bin/mutmut show NAME`; why each is harmless: tests/MUTANTS.md):")
        for statuses in found.values():
            for name in sorted(statuses):
                if statuses[name] not in CAUGHT and name not in sql_case:
                    print(f"  {statuses[name]:10} {name}")
    return summary


def _line(label: str, counts: Counter) -> dict:
    """One module's line: a timeout counts as killed (the tests caught a mutant that makes them hang);
    "of the rest": the score with the SQL-case survivors (equivalent by rule) left out of the count."""
    sql_case = counts.pop("sql case", 0)
    mutants = sum(counts.values())
    killed = sum(counts[status] for status in CAUGHT)
    score = 100.0 * killed / mutants if mutants else 100.0
    rest = 100.0 * killed / (mutants - sql_case) if mutants > sql_case else 100.0
    other = mutants - killed - counts["survived"]
    print(f"{label:32} {mutants:8} {killed:8} {counts['survived']:9} {sql_case:9} {other:6} {score:6.1f}% {rest:11.1f}%")
    return {
        "mutants": mutants,
        "killed": killed,
        "survived": counts["survived"],
        "sql_case": sql_case,
        "other": other,
        "score": round(score, 1),
        "score_of_the_rest": round(rest, 1),
        "by_status": dict(counts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="+", help="source files to mutate, e.g. service/api/pipeline.py")
    # A mutant's tests mostly wait (on the stand-in, backoffs, deadlines, polls): with 3 at once a run
    # kept half a core busy on this 2-core machine, so 8 at once use about 1.3 cores.
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("MUTATE_WORKERS", "8")), help="mutants tested at once (default 8, or MUTATE_WORKERS)"
    )
    parser.add_argument("--keep", action="store_true", help="reuse mutants/ and its verdicts (faster, may be stale)")
    parser.add_argument(
        "--retest",
        nargs="+",
        default=[],
        metavar="NAME",
        help="with --keep: test these mutants again (names or globs, e.g. 'service.api.pipeline.*')",
    )
    parser.add_argument("--report", action="store_true", help="only print the score of the verdicts mutants/ holds")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    missing = [module for module in args.modules if not pathlib.Path(module).is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    if args.retest and not args.keep:
        parser.error("--retest goes with --keep")
    if not args.report:
        if not args.keep and MUTANTS.exists():
            shutil.rmtree(MUTANTS)
        run(args.modules, args.workers, args.retest)
    summary = report(verdicts(args.modules))
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nreport: {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
