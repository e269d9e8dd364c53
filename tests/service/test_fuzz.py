"""Schemathesis against the API's own /openapi.json, over real HTTP, with a fixed seed.

The API runs as deployed (the address guard on) on the session's S3 server. POST /incoming
gets arbitrary URLs: the `fake_internet` stub makes every name outside it fail to resolve
and every connection outside loopback fail, at once and without a packet, so the run
cannot hang on DNS nor reach anything.

Every response must be documented (status, content type, headers, body schema), must not be
a server error (only POST /incoming may answer its documented 502 for an origin it could
not reach), and an invalid request must be rejected with a 4xx. `FUZZ_EXAMPLES` (default
200) sets the examples generated per operation; a longer run:

    FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/service/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_support import Api, FakeInternet, api_env, serve
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from service.openapi import document

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
# Origins are never reachable here, so the downloader's own limits keep each example short.
FETCH_TIMEOUT_SECONDS = "1"
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
]
ORIGIN_UNREACHABLE = 502

examples: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzz_api(s3_server: Any) -> Iterator[Api]:
    yield from serve(
        api_env(
            s3_server.env(),
            FETCH_ALLOW_PRIVATE_NETWORKS="false",
            FETCH_TIMEOUT_SECONDS=FETCH_TIMEOUT_SECONDS,
        )
    )


# The very document GET /openapi.json serves: service/openapi.json, loaded by the service.
schema = schemathesis.openapi.from_dict(document())


@pytest.fixture(scope="module", autouse=True)
def report_examples(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many examples each operation ran, for the figures of docs/operations.md."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print()
        for operation, count in sorted(examples.items()):
            print(f"fuzz examples: {operation}: {count}")
        print(f"fuzz examples: total: {sum(examples.values())}", flush=True)
    if examples:
        assert min(examples.values()) >= FUZZ_EXAMPLES, examples


@pytest.mark.timeout(1800)
@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_honours_its_openapi_document(
    case: schemathesis.Case, fuzz_api: Api, fake_internet: FakeInternet
) -> None:
    examples[case.operation.label] += 1
    response = case.call(base_url=fuzz_api.base, timeout=30)
    server_error = response.status_code >= 500
    origin_failed = response.status_code == ORIGIN_UNREACHABLE and (case.method, case.path) == (
        "POST",
        "/incoming",
    )
    if server_error and not origin_failed:
        case.validate_response(response, checks=[not_a_server_error])
    case.validate_response(response, checks=CHECKS)
