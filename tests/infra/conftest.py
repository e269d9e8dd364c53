"""Fixtures of the Pulumi program tests: every stack variant rendered once under Pulumi's mocks."""

from __future__ import annotations

import pytest
from stack_render import Rendered, render_all
from stack_variants import STACKS, VARIANTS


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """Every variant of VARIANTS, by name."""
    return render_all(VARIANTS, tmp_path_factory.mktemp("stacks"))


def _ok(rendered: dict[str, Rendered], name: str) -> Rendered:
    result = rendered[name]
    assert result.error is None, f"{name}: {result.error}"
    return result


@pytest.fixture(scope="session")
def dev(rendered: dict[str, Rendered]) -> Rendered:
    return _ok(rendered, "dev")


@pytest.fixture(scope="session")
def prod(rendered: dict[str, Rendered]) -> Rendered:
    return _ok(rendered, "prod")


@pytest.fixture(scope="session")
def dev_sql(rendered: dict[str, Rendered]) -> Rendered:
    return _ok(rendered, "dev-sql")


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    """Each full stack in turn: dev, prod, and dev with configured secrets and SQL."""
    return _ok(rendered, request.param)


@pytest.fixture(scope="session")
def variant(rendered: dict[str, Rendered]):
    """Look up a rendered variant by name, asserting it ran without error."""
    return lambda name: _ok(rendered, name)
