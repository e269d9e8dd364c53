#!/usr/bin/env bash
# Names the system libraries the test suite needs that pip cannot install.
set -euo pipefail
# grep reads the whole list: with -q it could exit early and fail the pipe with SIGPIPE.
if ! ldconfig -p 2>/dev/null | grep 'libmagic\.so\.1' >/dev/null; then
    echo "error: libmagic is missing; install it with: sudo apt-get install libmagic1 (Debian/Ubuntu) or brew install libmagic (macOS)" >&2
    exit 1
fi
