"""The official sitemaps.org 0.9 schemas, validated with libxml2 (lxml); fetched by `make xsd`."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

XSD_DIR = Path(__file__).resolve().parents[2] / ".tools" / "xsd"


@cache
def _schema(name: str) -> etree.XMLSchema | None:
    path = XSD_DIR / name
    return etree.XMLSchema(etree.parse(str(path))) if path.is_file() else None


def schema(name: str, why_missing: str, required_in_ci: bool = True) -> etree.XMLSchema:
    """The schema `name` from XSD_DIR; skips the test without it (fails it in CI if required)."""
    found = _schema(name)
    if found is None:
        if required_in_ci and os.environ.get("CI"):
            pytest.fail(f"{XSD_DIR / name} is missing in CI: {why_missing}")
        pytest.skip(f"{XSD_DIR / name} is missing: {why_missing}")
    return found


def assert_valid(document: bytes, against: etree.XMLSchema) -> None:
    """The document validates; else the failure names libxml2's first complaint and its line."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    if not against.validate(root):
        error = against.error_log[0]
        raise AssertionError(f"line {error.line}: {error.message}")
