#!/usr/bin/env python3
"""Write what each stack would deploy, rendered under Pulumi's mocks, to <outdir>/<stack>.yaml.

    .venv/bin/python scripts/render-manifests.py build/manifests          # dev, prod and gateway
    .venv/bin/python scripts/render-manifests.py build/manifests --scan   # then checkov, offline

Secret values are redacted. No cluster, Docker or Pulumi CLI is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "infra"))

from manifests import STACKS, render_manifests, run_checkov, scan_directory  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, nargs="?", default=ROOT / "build" / "manifests")
    parser.add_argument(
        "--stack", action="append", choices=STACKS, help="a stack file to render (default: all)"
    )
    parser.add_argument(
        "--scan", action="store_true", help="scan them and the Dockerfile with checkov"
    )
    arguments = parser.parse_args()
    for path in render_manifests(arguments.outdir.resolve(), arguments.stack or STACKS):
        print(path)
    if not arguments.scan:
        return 0
    scan = run_checkov(scan_directory(arguments.outdir.resolve()))
    print(scan.cli, end="")
    for failure in scan.failures:
        print(f"FAILED {failure}", file=sys.stderr)
    for attempt in scan.blocked:
        print(attempt, file=sys.stderr)
    return 1 if scan.returncode or scan.failures or scan.blocked else 0


if __name__ == "__main__":
    sys.exit(main())
