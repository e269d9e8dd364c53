"""`make check STACK=<stack>`: every hand edit of a stack file that goes wrong is one line.

Each case edits a copy of Pulumi.dev.yaml the way a person would in an editor, and runs the
check as a user does (`python -m infra.check <file>`, which `make check` runs), in a process of
its own: no cluster, Docker or Pulumi CLI, and no test code imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stack_render import ROOT

import infra.check

DEV = (ROOT / "Pulumi.dev.yaml").read_text()


def check(tmp_path: Path, text: str, stack: str = "edited") -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "infra.check", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def edited(old: str, new: str) -> str:
    assert old in DEV, old
    return DEV.replace(old, new, 1)


def test_make_check_as_the_docs_type_it() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "check", "STACK=dev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("Pulumi.dev.yaml: ok:")


def test_the_dev_stack_file_is_fine(tmp_path: Path) -> None:
    done = check(tmp_path, DEV, "dev")
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines() == [
        # The program's own warning, as pulumi preview prints it (tests/infra/test_capacity.py).
        "Pulumi.dev.yaml: warning: api.resources.limits.memory 512Mi cannot convert a 12 MP "
        "lossless WebP with 2 workers (api.webConcurrency): the largest it converts is 8.0 MP. "
        "Give at least 631Mi, or fewer workers.",
        "Pulumi.dev.yaml: ok: 23 resources, as pulumi preview would plan them",
    ]


HAND_EDITS = [
    (
        "    replicas: 2",
        "    replica: 2",
        "Pulumi.edited.yaml: api.replica: is not a known key; did you mean replicas?",
    ),
    (
        "    replicas: 2",
        "    replicas: two",
        'Pulumi.edited.yaml: api.replicas: must be an integer from 1 to 2147483647, got "two"',
    ),
    (
        "    replicas: 2",
        "    replicas: 2.5",
        "Pulumi.edited.yaml: api.replicas: must be an integer from 1 to 2147483647, got 2.5",
    ),
    (
        "    replicas: 2",
        "    replicas: |\n      2",
        'Pulumi.edited.yaml: api.replicas: must be an integer from 1 to 2147483647, got "2\\n"',
    ),
    (
        "    replicas: 2",
        '    replicas: "١٢"',
        'Pulumi.edited.yaml: api.replicas: must be an integer from 1 to 2147483647, got "١٢"',
    ),
    (
        "    replicas: 2",
        "    replicas: " + "9" * 4000,
        "Pulumi.edited.yaml: api.replicas: must be an integer from 1 to 2147483647, got 9999999",
    ),
    (
        "    replicas: 2",
        "    replicas: " + "9" * 5000,
        "Pulumi.edited.yaml: api.replicas: must be an integer from 1 to 2147483647, got",
    ),
    (
        "    enabled: true",
        "    enabled: yes",
        'Pulumi.edited.yaml: sitemaps.enabled: must be true or false, got "yes"',
    ),
    (
        "    replicas: 4",
        "\treplicas: 4",
        "Pulumi.edited.yaml:15: while scanning for the next token found character '\\t' that cannot start any token",
    ),
    ("  kube-image-processing:api:", "  kube-image-processing:ingress:", "Pulumi.edited.yaml:"),
    (
        '    schedule: "0 * * * *"',
        '    schedule: "0 * * *"',
        "Pulumi.edited.yaml: sitemaps.schedule: is not a cron schedule",
    ),
    (
        '    schedule: "0 * * * *"',
        '    schedule: "CRON_TZ=Europe/Berlin 0 * * * *"',
        "set the time zone in sitemaps.timeZone",
    ),
    (
        "  kube-image-processing:namespace: kube-image-processing",
        "  namespace: kube-image-processing",
        "Pulumi.edited.yaml: namespace: config keys are namespace:name",
    ),
    (
        "    storageClass: standard",
        "    storageClass: Standard_SSD",
        "Pulumi.edited.yaml: minio.storageClass: must be a Kubernetes object name",
    ),
    (
        "        memory: 512Mi\n  kube-image-processing:sitemaps:",
        "        memory: 512MB\n  kube-image-processing:sitemaps:",
        "Pulumi.edited.yaml: api.resources.limits.memory: must be a quantity",
    ),
    (
        "    replicas: 4",
        "    replicas: [4]",
        "Pulumi.edited.yaml: minio.replicas: must be an integer",
    ),
    (
        "  kube-image-processing:ingress:\n    className: nginx\n    skipAwait: false",
        "  kube-image-processing:ingress: nginx",
        'Pulumi.edited.yaml: ingress: must be an object of keys and values, got "nginx"',
    ),
]


@pytest.mark.parametrize(("old", "new", "line"), HAND_EDITS)
def test_a_hand_edit_that_goes_wrong_is_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, line: str
) -> None:
    """In this process: each mistake is found before the program would run."""
    monkeypatch.setattr(infra.check, "run_program", _must_not_run)
    path = tmp_path / "Pulumi.edited.yaml"
    path.write_text(edited(old, new))
    (printed,) = infra.check.check(path)
    assert printed.startswith(line) or line in printed, printed


def _must_not_run(*_args: object, **_kwargs: object) -> dict[str, object]:
    raise AssertionError("the mistake should have been found before the program runs")


def test_a_secret_in_clear_text_is_refused_with_the_command_that_encrypts_it(
    tmp_path: Path,
) -> None:
    done = check(
        tmp_path,
        edited(
            "  kube-image-processing:namespace: kube-image-processing",
            "  kube-image-processing:namespace: kube-image-processing\n"
            "  kube-image-processing:minioRootPassword: hunter2hunter2",
        ),
    )
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "Pulumi.edited.yaml: minioRootPassword: is a secret held in clear text; use pulumi "
        "config set --secret minioRootPassword <value>"
    ]
    assert "hunter2" not in done.stdout + done.stderr


def test_a_duplicate_key_names_its_line(tmp_path: Path) -> None:
    done = check(
        tmp_path, edited("  kube-image-processing:api:", "  kube-image-processing:ingress:")
    )
    (printed,) = done.stdout.splitlines()
    line = DEV[: DEV.index("  kube-image-processing:api:")].count("\n") + 1
    assert (
        printed == f"Pulumi.edited.yaml:{line}: the key kube-image-processing:ingress appears twice"
    )


def test_a_misspelt_project_prefix_is_a_warning_and_the_default_applies(tmp_path: Path) -> None:
    done = check(
        tmp_path, edited("  kube-image-processing:sitemaps:", "  kube-image-procesing:sitemaps:")
    )
    assert done.returncode == 0, done.stdout
    warning, _capacity, ok = done.stdout.splitlines()
    assert warning == (
        "Pulumi.edited.yaml: warning: kube-image-procesing:sitemaps: the program reads only "
        "kube-image-processing:* keys, so it ignores this one; did you mean "
        "kube-image-processing:sitemaps?"
    )
    assert ok.startswith("Pulumi.edited.yaml: ok:")


def test_encrypted_secrets_count_as_set(tmp_path: Path) -> None:
    """The prod stack needs its registry token; once stored encrypted, the file passes."""
    prod = (ROOT / "Pulumi.prod.yaml").read_text()
    done = check(tmp_path, prod, "prod")
    assert done.stdout.splitlines() == [
        "Pulumi.prod.yaml: image.username: and its token go together: pulumi config set "
        "--secret registryPassword <token>"
    ]
    with_token = prod.replace(
        "config:\n", "config:\n  kube-image-processing:registryPassword:\n    secure: v1:AAAA\n", 1
    )
    done = check(tmp_path, with_token, "prod")
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1].startswith("Pulumi.prod.yaml: ok:")


def test_a_missing_file_and_an_empty_one(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "infra.check", str(tmp_path / "Pulumi.nope.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stdout.strip().endswith(
        "no such stack file (stack files are Pulumi.<stack>.yaml)"
    )
    empty = check(tmp_path, "")
    assert empty.stdout.splitlines() == [
        "Pulumi.edited.yaml: sitemaps.source: bucket needs api.host or sitemaps.siteUrl, or "
        "enabled=false"
    ]


def test_the_check_never_imports_test_code(tmp_path: Path) -> None:
    probe = (
        "import sys; from infra.check import main; main([sys.argv[1]]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tests', 'stack_render', 'stack_variants', 'manifests', 'conftest')))"
    )
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(DEV)
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr
