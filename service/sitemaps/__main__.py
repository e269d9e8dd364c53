"""Entry point of `python -m service.sitemaps generate|publish|rollback|status`."""

import sys

from service.sitemaps.errors import VENV_HINT

try:
    from service.sitemaps.cli import main
except ImportError as error:
    # A Python without the project's packages: one line that says what to run instead.
    print(f"sitemaps: error: {error}: {VENV_HINT}", file=sys.stderr)
    raise SystemExit(1) from None

raise SystemExit(main())
