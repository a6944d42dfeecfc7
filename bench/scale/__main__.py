"""`python -m bench.scale`: see docs/SCALE.md and `python -m bench.scale --help`."""

from bench.scale.cli import main

raise SystemExit(main())
