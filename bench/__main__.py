"""``python -m bench``: the side-by-side benchmark (see bench/README.md); ``--queued``: queued delivery (bench/queued.py)."""

import sys

if "--queued" in sys.argv[1:]:
    from bench.queued import main

    sys.exit(main([arg for arg in sys.argv[1:] if arg != "--queued"]))

from bench.run import main

sys.exit(main())
