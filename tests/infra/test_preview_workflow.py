"""The pull-request preview shows only real changes and skips cleanly where it cannot run."""

from __future__ import annotations

from typing import Any

import yaml
from stack_render import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"
READY = "steps.secrets.outputs.ready == 'true'"


def _job() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["preview"]


def _commands() -> str:
    return "\n".join(step.get("run", "") for step in _job()["steps"])


def test_no_resource_input_is_set_only_in_ci() -> None:
    """buildOnPreview lives in the stack file; set here, every preview would show a rollout."""
    assert "buildOnPreview" not in _commands()
    assert "config set --path" not in _commands()


def test_the_stack_is_selected_never_created() -> None:
    assert 'pulumi stack select "${{ matrix.stack }}"' in _commands()
    assert "--create" not in _commands()
    assert "stack init" not in _commands()


def test_fork_pull_requests_are_skipped() -> None:
    """GitHub gives no secrets to pull requests from forks."""
    assert _job()["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


def test_every_step_after_the_secret_check_waits_for_the_secrets() -> None:
    check, *rest = _job()["steps"]
    assert check["id"] == "secrets"
    assert "PULUMI_BACKEND_URL" in check["run"]
    assert 'echo "ready=false" >> "$GITHUB_OUTPUT"' in check["run"]
    for step in rest:
        assert step.get("if") == READY, step


POLICY_SYNC = "uv sync --frozen --project policy"


def test_the_preview_runs_the_policy_pack_from_its_own_locked_virtualenv() -> None:
    """`pulumi preview --policy-pack policy`, after installing what policy/uv.lock pins.

    Pulumi runs a Python pack with the interpreter of the virtualenv its PulumiPolicy.yaml
    names; `uv sync --project policy` installs into that project's .venv, the same one.
    """
    steps = _job()["steps"]
    install = next(i for i, step in enumerate(steps) if step.get("run") == POLICY_SYNC)
    preview = next(
        i for i, step in enumerate(steps) if (step.get("with") or {}).get("command") == "preview"
    )
    assert install < preview
    assert steps[preview]["with"]["policyPacks"] == "policy"
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    assert pack["runtime"]["options"] == {"toolchain": "uv", "virtualenv": ".venv"}
    assert (ROOT / "policy" / "uv.lock").is_file()
    # `make policy` installs it the same way.
    assert f"$(UV) {POLICY_SYNC.removeprefix('uv ')}" in (ROOT / "Makefile").read_text()
