"""Entry point of `python -m service.sitemaps generate|publish|rollback|status`."""

from service.sitemaps.cli import main

raise SystemExit(main())
