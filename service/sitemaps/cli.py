"""Command line of the sitemap job: options from flags or environment, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from service.settings import SettingsError, SitemapSettings, StorageSettings, env_name, env_text
from service.settings import field_problem as _field_problem
from service.sitemaps.errors import VENV_HINT, SitemapError
from service.sitemaps.sections import Query, Section, from_json, from_options
from service.sitemaps.stopping import EXIT_CODE, Stopped, sigterm_raises_stopped

# Only the modules above load before a command runs: `generate` then imports what its
# source needs, and `publish` what the Kubernetes client needs.
if TYPE_CHECKING:
    from service.sitemaps.publisher import Publisher
    from service.sitemaps.router import Router

log = logging.getLogger("service.sitemaps")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sitemaps: error: {message}\n")


def _env(field: str) -> str | None:
    """The variable of one of the job's settings, stripped; None when unset or empty."""
    value = os.environ.get(env_name(SitemapSettings, field), "").strip()
    return value or None


def _option(
    parser: argparse.ArgumentParser, field: str, *, filled: bool = True, **options: object
) -> None:
    """A flag for one of the job's settings: its variable, else its default (when `filled`)."""
    info = SitemapSettings.model_fields[field]
    default = None if info.default is None else env_text(info.default)
    shown = f" (default {default})" if default is not None else ""
    parser.add_argument(
        f"--{field.replace('_', '-')}",
        default=_env(field) or (default if filled else None),
        help=f"{info.description}{shown} [{env_name(SitemapSettings, field)}]",
        **options,  # type: ignore[arg-type]
    )


def _source_options(parser: argparse.ArgumentParser) -> None:
    _option(parser, "base_url")
    _option(parser, "source", choices=("bucket", "sql"))
    _option(parser, "site_url")
    # Unfilled, so that the SQL source is inferred only from a URL somebody gave.
    _option(parser, "database_url", filled=False)
    parser.add_argument(
        "--query",
        help="SQL returning (loc, lastmod): one section, files sitemap-00001.xml.gz, … "
        f"[{env_name(SitemapSettings, 'query')}]",
    )
    parser.add_argument(
        "--section",
        action="append",
        metavar="NAME=QUERY",
        help="a named section, files sitemap-NAME-00001.xml.gz, …; repeatable "
        f'[{env_name(SitemapSettings, "sections")}, a JSON array of {{"name": …, "query": …}}]',
    )


def _kube_options(parser: argparse.ArgumentParser) -> None:
    # Unfilled, so that giving --httproute alone is not taken for giving both.
    _option(parser, "ingress", filled=False)
    _option(parser, "httproute")
    _option(parser, "accept_timeout")
    _option(parser, "namespace")
    _option(parser, "retain")
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


def _database_url(args: argparse.Namespace) -> str:
    return args.database_url or str(SitemapSettings.model_fields["database_url"].default)


def _http_url(option: str, value: str | None) -> str:
    if not value:
        raise SitemapError(f"bad option {option}: required (or set {_env_name(option)})")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SitemapError(f"bad option {option}: {value!r} is not an absolute http(s) URL")
    return value.rstrip("/")


def _env_name(option: str) -> str:
    return env_name(SitemapSettings, option[2:].replace("-", "_"))


def _storage_settings() -> StorageSettings:
    try:
        return StorageSettings.from_env()
    except SettingsError as error:
        raise SitemapError(f"bad storage settings: {error}") from None


def source_of(args: argparse.Namespace) -> str:
    """`bucket` or `sql`: as given, else inferred from the SQL options given (flags or env)."""
    sql_given = [
        option
        for option, value in (
            ("--database-url", args.database_url),
            ("--query", args.query or _env("query")),
            ("--section", args.section or _env("sections")),
        )
        if value
    ]
    if args.source is None:
        return "sql" if sql_given else "bucket"
    if args.source == "bucket" and sql_given:
        raise SitemapError(
            f"bad options: {', '.join(sql_given)} only apply to the SQL source, "
            f"but --source (or {_env_name('--source')}) is bucket; drop one of them"
        )
    return str(args.source)


def queries_of(args: argparse.Namespace) -> list[Query]:
    """The SQL source's sections: flags if any are given, else the environment."""
    if args.query and args.section:
        raise SitemapError("bad options: give --query or --section, not both")
    if args.section:
        return from_options(args.section)
    if args.query:
        return [Query("", args.query)]
    query, sections = _env("query"), _env("sections")
    if query and sections:
        raise SitemapError(
            f"bad environment: set {_env_name('--query')} or {_env_name('--sections')}, not both"
        )
    if sections:
        return from_json(sections)
    if query:
        return [Query("", query)]
    raise SitemapError(
        "bad options: the SQL source needs --query or --section "
        f"(or {_env_name('--query')} or {_env_name('--sections')})"
    )


def _site_url(args: argparse.Namespace, base_url: str) -> str:
    parts = urlsplit(base_url)
    return _http_url("--site-url", args.site_url or f"{parts.scheme}://{parts.netloc}")


def sections_of(args: argparse.Namespace, base_url: str) -> list[Section]:
    """The sections to write, each streaming from its source when iterated."""
    if source_of(args) == "sql":
        from service.sitemaps.sql_source import sql_batches

        database_url = _database_url(args)
        return [Section(q.name, sql_batches(database_url, q.query)) for q in queries_of(args)]
    from service.sitemaps import storage
    from service.sitemaps.bucket_source import bucket_batches

    settings = _storage_settings()
    client = storage.connect(settings)
    return [
        Section("", bucket_batches(client, settings.processed_bucket, _site_url(args, base_url)))
    ]


def plan_of_sources(args: argparse.Namespace) -> list[str]:
    """What a run would read and what it would still need, for `publish --dry-run`."""
    lines = []
    base_url = _http_url("--base-url", args.base_url) if args.base_url else ""
    if not base_url:
        lines.append(
            f"plan: missing for a real run: --base-url (or {_env_name('--base-url')}), the public URL "
            "the files are served under"
        )
    if source_of(args) == "sql":
        database_url = _database_url(args)
        where = _hide_password(database_url)
        for query in queries_of(args):
            files = f"sitemap-{query.name}-NNNNN.xml.gz" if query.name else "sitemap-NNNNN.xml.gz"
            lines.append(f"plan: section {query.name or '(one)'} from {where} into {files}")
    else:
        settings = _storage_settings()
        site = _site_url(args, base_url) if base_url or args.site_url else "<site URL>"
        lines.append(
            f"plan: list the images of bucket {settings.processed_bucket} as "
            f"{site}/processed/<name> into sitemap-NNNNN.xml.gz"
        )
    return lines


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _checked(option: str, value: str) -> str:
    """`value` of one of the job's numeric settings, by that setting's own rule."""
    wrong = _field_problem(SitemapSettings, option[2:].replace("-", "_"), value)
    if wrong is not None:
        raise SitemapError(f"bad option {option} (or {_env_name(option)}): {wrong}")
    return value


def _retain(value: str) -> int:
    return int(_checked("--retain", value))


def _accept_timeout(value: str) -> float:
    return float(_checked("--accept-timeout", value))


def _router(args: argparse.Namespace) -> Router:
    """The HTTPRoute switch when one is named, else the Ingress switch."""
    from service.sitemaps.ingress import IngressSwitch, kube_config

    if args.httproute and args.ingress:
        raise SitemapError(
            f"bad options: give --ingress or --httproute (or {_env_name('--ingress')} or "
            f"{_env_name('--httproute')}), not both"
        )
    if args.httproute is not None and not args.httproute.strip():
        raise SitemapError("bad option --httproute: the name is empty")
    accept_timeout = _accept_timeout(args.accept_timeout)
    config = kube_config()
    if args.httproute:
        from service.sitemaps.httproute import HTTPRouteSwitch

        return HTTPRouteSwitch.from_config(config, args.httproute, args.namespace, accept_timeout)
    default = str(SitemapSettings.model_fields["ingress"].default)
    return IngressSwitch.from_config(config, args.ingress or default, args.namespace)


def _publisher(args: argparse.Namespace) -> Publisher:
    # Imported here so that `generate` starts without loading the Kubernetes client.
    from service.sitemaps import storage
    from service.sitemaps.publisher import Publisher

    retain = _retain(args.retain)
    settings = _storage_settings()
    return Publisher(storage.connect(settings), _router(args), retain)


def _generate(args: argparse.Namespace) -> int:
    from service.sitemaps.progress import Progress
    from service.sitemaps.writer import EmptySourceError, write_sections

    base_url = _http_url("--base-url", args.base_url)
    sections = sections_of(args, base_url)
    try:
        with Progress("generate", "URL") as progress:
            generation = write_sections(sections, args.out, base_url, on_progress=progress.update)
    except EmptySourceError:
        log.info("generate: the source has no URLs; nothing written to %s", args.out)
        return 0
    log.info(
        "generate: %s URLs in %d files under %s",
        f"{generation.urls:,}",
        len(generation.files) - 1,
        args.out,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Carry out one parsed command."""
    if args.command == "generate":
        return _generate(args)
    if args.command == "publish" and args.dry_run:
        plan = plan_of_sources(args)  # checks the options before anything is contacted
        publisher = _publisher(args)
        print("\n".join(plan))
        publisher.print_plan(_http_url("--base-url", args.base_url) if args.base_url else None)
        return 0
    if args.command == "publish":
        base_url = _http_url("--base-url", args.base_url)
        sections = sections_of(args, base_url)  # bad options fail before anything is contacted
        _publisher(args).publish(sections, base_url)
        return 0
    publisher = _publisher(args)
    if args.command == "rollback":
        publisher.rollback(dry_run=args.dry_run)
    else:
        status = publisher.status()
        if status.live is None:
            print(
                f"live: nothing yet: no generation has been published to this {publisher.ingress.kind}"
            )
        else:
            print(f"live: {status.live}")
        print(f"retained: {', '.join(status.retained) or 'none'}")
        print(f"orphans: {', '.join(status.orphans) or 'none'}")
        print(f"newer than live: {', '.join(status.newer) or 'none'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every expected failure is one line on stderr and a non-zero exit."""
    logging.basicConfig(level=logging.INFO, format="sitemaps: %(message)s", stream=sys.stderr)
    # The Kubernetes client's HTTP library logs every request at INFO; errors speak for themselves.
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
    except ImportError as error:
        print(f"sitemaps: error: {error}: {VENV_HINT}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sitemaps: interrupted", file=sys.stderr)
        return 130
