"""``python -m service.routing.filters``: compile FQL texts (a JSON list on stdin) to tsub matchers (a JSON list on stdout).

Each answer is ``{"matcher": {...}}`` or ``{"error": "...", "where": "line L, column C"}``.
The golden recorder (tools/oracle/record_filters.js) feeds tsub what this compiler produces.
"""

import json
import sys

from service.errors import FQLError
from service.routing.filters.fql import compile_fql, where


def main() -> None:
    answers: list[dict] = []
    for text in json.load(sys.stdin):
        try:
            answers.append({"matcher": compile_fql(text)})
        except FQLError as exc:
            answers.append({"error": str(exc), "where": where(text, exc.offset)})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
