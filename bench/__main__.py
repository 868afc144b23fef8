"""``python -m bench``: see :mod:`bench.harness` and ``bench/README.md``."""

from bench.harness import main

raise SystemExit(main())
