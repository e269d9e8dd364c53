"""The one error type the CLI turns into a single line on stderr."""


class SitemapError(Exception):
    """A failure the operator can act on; its message is one line."""
