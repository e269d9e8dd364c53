"""Command line of the sitemap job: options from flags or environment, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from service.settings import SettingsError, StorageSettings
from service.sitemaps import storage
from service.sitemaps.entries import Row
from service.sitemaps.errors import SitemapError
from service.sitemaps.progress import Progress
from service.sitemaps.sql_source import DEFAULT_DATABASE_URL
from service.sitemaps.stopping import EXIT_CODE, Stopped, sigterm_raises_stopped

if TYPE_CHECKING:
    from service.sitemaps.publisher import Publisher

log = logging.getLogger("service.sitemaps")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sitemaps: error: {message}\n")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=_env("SITEMAP_BASE_URL"),
        help="public URL the files are served under [SITEMAP_BASE_URL]",
    )
    parser.add_argument(
        "--source",
        choices=("bucket", "sql"),
        default=_env("SITEMAP_SOURCE", "bucket"),
        help="where URLs come from [SITEMAP_SOURCE]",
    )
    parser.add_argument(
        "--site-url",
        default=_env("SITEMAP_SITE_URL"),
        help="public API base for the bucket source; defaults to the base URL's origin [SITEMAP_SITE_URL]",
    )
    parser.add_argument(
        "--database-url",
        default=_env("SITEMAP_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="SQLAlchemy URL [SITEMAP_DATABASE_URL]",
    )
    parser.add_argument(
        "--query",
        default=_env("SITEMAP_QUERY"),
        help="SQL returning (loc, lastmod) [SITEMAP_QUERY]",
    )


def _kube_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingress",
        default=_env("SITEMAP_INGRESS", "sitemaps"),
        help="the sitemaps Ingress [SITEMAP_INGRESS]",
    )
    parser.add_argument(
        "--namespace",
        default=_env("SITEMAP_NAMESPACE"),
        help="its namespace; defaults to the pod's [SITEMAP_NAMESPACE]",
    )
    parser.add_argument(
        "--retain",
        default=_env("SITEMAP_RETAIN", "1"),
        help="earlier generations kept for rollback [SITEMAP_RETAIN]",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = _Parser(
        prog="python -m service.sitemaps", description="Generate and publish gzip sitemaps."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    generate = commands.add_parser("generate", help="write sitemaps into a local directory")
    _source_options(generate)
    generate.add_argument("--out", required=True, type=Path, help="directory to write into")
    publish = commands.add_parser("publish", help="generate, upload and switch the Ingress")
    _source_options(publish)
    _kube_options(publish)
    _kube_options(
        commands.add_parser("rollback", help="switch back to the previous retained generation")
    )
    _kube_options(commands.add_parser("status", help="show the live and retained generations"))
    return parser


def _http_url(option: str, value: str | None) -> str:
    if not value:
        raise SitemapError(
            f"bad option {option}: required (or set SITEMAP_{option[2:].upper().replace('-', '_')})"
        )
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SitemapError(f"bad option {option}: {value!r} is not an absolute http(s) URL")
    return value.rstrip("/")


def _storage_settings() -> StorageSettings:
    try:
        return StorageSettings.from_env()
    except SettingsError as error:
        raise SitemapError(f"bad storage settings: {error}") from None


def _batches(args: argparse.Namespace, base_url: str) -> Iterable[Sequence[Row]]:
    if args.source == "sql":
        if not args.query:
            raise SitemapError(
                "bad option --query: required with --source sql (or set SITEMAP_QUERY)"
            )
        from service.sitemaps.sql_source import sql_batches

        return sql_batches(args.database_url, args.query)
    from service.sitemaps.bucket_source import bucket_batches

    settings = _storage_settings()
    parts = urlsplit(base_url)
    site_url = _http_url("--site-url", args.site_url or f"{parts.scheme}://{parts.netloc}")
    return bucket_batches(storage.connect(settings), settings.processed_bucket, site_url)


def _retain(value: str) -> int:
    try:
        retain = int(value)
    except ValueError:
        retain = -1
    if retain < 0:
        raise SitemapError(f"bad option --retain: {value!r} is not a whole number of 0 or more")
    return retain


def _publisher(args: argparse.Namespace) -> Publisher:
    # Imported here so that `generate` starts without loading the Kubernetes client.
    from service.sitemaps.ingress import IngressSwitch, api_client, default_namespace
    from service.sitemaps.publisher import Publisher

    retain = _retain(args.retain)
    settings = _storage_settings()
    switch = IngressSwitch(api_client(), args.ingress, args.namespace or default_namespace())
    return Publisher(storage.connect(settings), switch, retain)


def run(args: argparse.Namespace) -> int:
    """Carry out one parsed command."""
    if args.command == "generate":
        from service.sitemaps.writer import write_sitemaps

        base_url = _http_url("--base-url", args.base_url)
        with Progress("generate", "URL") as progress:
            batches = _batches(args, base_url)
            generation = write_sitemaps(batches, args.out, base_url, on_progress=progress.update)
        log.info(
            "generate: %s URLs in %d files under %s",
            f"{generation.urls:,}",
            len(generation.files) - 1,
            args.out,
        )
        return 0
    base_url = _http_url("--base-url", args.base_url) if args.command == "publish" else ""
    publisher = _publisher(args)
    if args.command == "publish":
        publisher.publish(_batches(args, base_url), base_url, dry_run=args.dry_run)
    elif args.command == "rollback":
        publisher.rollback(dry_run=args.dry_run)
    else:
        status = publisher.status()
        print(f"live: {status.live}")
        print(f"retained: {', '.join(status.retained) or 'none'}")
        print(f"orphans: {', '.join(status.orphans) or 'none'}")
        print(f"newer than live: {', '.join(status.newer) or 'none'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every expected failure is one line on stderr and a non-zero exit."""
    logging.basicConfig(level=logging.INFO, format="sitemaps: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        with sigterm_raises_stopped():
            return run(args)
    except Stopped:
        # The Ingress is only ever switched to a verified, complete generation; a bucket this
        # run created and did not switch to is removed by the next publish, as after a crash.
        print(
            f"sitemaps: stopped by SIGTERM before {args.command} finished; nothing was half-published",
            file=sys.stderr,
        )
        return EXIT_CODE
    except SitemapError as error:
        print(f"sitemaps: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sitemaps: interrupted", file=sys.stderr)
        return 130
