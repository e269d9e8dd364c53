"""Entry point of `python -m service.sitemaps generate|publish|rollback|status`."""

# Before the imports that take a moment: from here on a SIGTERM is not lost (see stopping.py).
from service.sitemaps.stopping import hold_stops_from_start

hold_stops_from_start()

import sys  # noqa: E402

from service.sitemaps.errors import VENV_HINT  # noqa: E402
from service.sitemaps.stopping import EXIT_CODE, EXIT_WAIT_SECONDS, exit_within  # noqa: E402

try:
    from service.sitemaps.cli import main
except ImportError as error:
    # A Python without the project's packages: one line that says what to run instead.
    print(f"sitemaps: error: {error}: {VENV_HINT}", file=sys.stderr)
    raise SystemExit(1) from None

code = main()
if code == EXIT_CODE:
    exit_within(EXIT_WAIT_SECONDS, code)  # stopped: a thread left running must not hold the exit
raise SystemExit(code)
