"""The one error type the CLI turns into a single line on stderr."""


class SitemapError(Exception):
    """A failure the operator can act on; its message is one line."""


VENV_HINT = (
    "run it with the project's virtualenv: make sync, then .venv/bin/python -m service.sitemaps"
)


class RowError(SitemapError):
    """A value a sitemap cannot hold, in the row at index `row` of its batch.

    The writer, which knows the section and how many rows came before the batch, names
    the row in the message it passes on.
    """

    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.row = row
