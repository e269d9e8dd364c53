"""The official sitemaps.org 0.9 schemas, validated with libxml2 (lxml).

sitemap.xsd is fetched by `make xsd` from an npm package; siteindex.xsd, which no package
ships, is kept in this directory's xsd/ folder with its licence (xsd/NOTICE).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

XSD_DIR = Path(__file__).resolve().parents[2] / ".tools" / "xsd"
KEPT_DIR = Path(__file__).resolve().with_name("xsd")


@cache
def _schema(path: Path) -> etree.XMLSchema | None:
    return etree.XMLSchema(etree.parse(str(path))) if path.is_file() else None


def schema(name: str, why_missing: str) -> etree.XMLSchema:
    """The schema `name` from XSD_DIR; skips the test without it (fails it in CI)."""
    found = _schema(XSD_DIR / name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{XSD_DIR / name} is missing in CI: {why_missing}")
        pytest.skip(f"{XSD_DIR / name} is missing: {why_missing}")
    return found


def kept_schema(name: str) -> etree.XMLSchema:
    """The schema `name` kept in the repository (KEPT_DIR): always there, never skipped."""
    found = _schema(KEPT_DIR / name)
    assert found is not None, f"{KEPT_DIR / name} is part of the repository but missing"
    return found


def assert_valid(document: bytes, against: etree.XMLSchema) -> None:
    """The document validates; else the failure names libxml2's first complaint and its line."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    if not against.validate(root):
        error = against.error_log[0]
        raise AssertionError(f"line {error.line}: {error.message}")
