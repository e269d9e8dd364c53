# The two commands of the README: `make deploy` and `make test`.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv

.PHONY: deploy test lint format sync

deploy: sync
	scripts/deploy.sh

test: sync
	scripts/check-system.sh
	.venv/bin/pytest

lint: sync
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: sync
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# Creates .venv and installs exactly what uv.lock pins (runtime, infra and dev groups).
sync: $(UV)
	$(UV) sync --frozen

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)
