"""``python -m bench``: the side-by-side benchmark (see bench/README.md); ``--queued``: queued delivery (bench/queued.py);
``--postgres``: the PostgreSQL outbox beside the SQLite one (bench/postgres.py); ``--instructions``: the service's own
work per event in instructions under callgrind, beside a baseline (bench/instructions.py); ``--throughput``: delivered
events/s to a distant or rate-limited stand-in (bench/throughput.py); ``--http``: accepting through Segment's HTTP API
beside queued SendBatch (bench/tracking_api.py); ``--overview``: what the delivery overview's samples and the operator's
page cost per event (bench/overview.py)."""

import sys

if "--overview" in sys.argv[1:]:
    from bench.overview import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--overview"]))
if "--queued" in sys.argv[1:]:
    from bench.queued import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--queued"]))

if "--postgres" in sys.argv[1:]:
    from bench.postgres import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--postgres"]))

if "--http" in sys.argv[1:]:
    from bench.tracking_api import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--http"]))

if "--throughput" in sys.argv[1:]:
    from bench.throughput import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--throughput"]))

if "--instructions" in sys.argv[1:]:
    from bench.instructions import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--instructions"]))

from bench.run import main

sys.exit(main())
