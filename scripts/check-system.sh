#!/usr/bin/env bash
# Names the system libraries the test suite needs that pip cannot install.
set -euo pipefail
if ! ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1'; then
    echo "error: libmagic is missing; install it with: sudo apt-get install libmagic1 (Debian/Ubuntu) or brew install libmagic (macOS)" >&2
    exit 1
fi
