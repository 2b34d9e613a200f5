"""``python -m bench``: the side-by-side benchmark (see bench/README.md); ``--queued``: queued delivery (bench/queued.py);
``--postgres``: the PostgreSQL outbox beside the SQLite one (bench/postgres.py)."""

import sys

if "--queued" in sys.argv[1:]:
    from bench.queued import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--queued"]))

if "--postgres" in sys.argv[1:]:
    from bench.postgres import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--postgres"]))

from bench.run import main

sys.exit(main())
