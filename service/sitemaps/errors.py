"""The one error type the CLI turns into a single line on stderr."""


class SitemapError(Exception):
    """A failure the operator can act on; its message is one line."""


VENV_HINT = (
    "run it with the project's virtualenv: make sync, then .venv/bin/python -m service.sitemaps"
)
