"""Entry point for ``python -m jetwatch``."""

from jetwatch.cli import main

raise SystemExit(main())
