# The two commands of the README: `make deploy` and `make test`.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv

.PHONY: deploy test run check reference lint format sync fuzz faults load bench xsd gateway-api

# The prerequisites are checked before anything is installed.
deploy:
	scripts/deploy.sh --check
	$(MAKE) --no-print-directory sync
	scripts/deploy.sh

test: sync xsd gateway-api
	scripts/check-system.sh
	.venv/bin/pytest

# Without a cluster: the API, an in-memory S3 server and sample images on 127.0.0.1, until Ctrl-C.
# ARGS='--sitemaps' also converts the samples and writes their sitemaps; ARGS='--port 8090'.
run: sync
	.venv/bin/python scripts/run_local.py $(ARGS)

# Checks a stack file as `pulumi up` would read it, without a cluster (STACK=prod for another).
STACK ?= dev
check: sync
	.venv/bin/python -m infra.check Pulumi.$(STACK).yaml

# Writes what the typed config generates: schema/, Pulumi.yaml's config keys, docs/configuration.md.
reference: sync
	.venv/bin/python -m infra.reference

lint: sync
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: sync
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The long forms of what `make test` runs briefly (see the README's Reliability section).
fuzz: sync
	FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/service/test_fuzz.py

faults: sync
	.venv/bin/python bench/faults.py --full

load: sync
	.venv/bin/python bench/load.py --duration 60 --clients 16

# Benchmarks print figures; greyscale needs Debian's imagemagick and libjpeg-turbo-progs.
bench: sync
	.venv/bin/python bench/greyscale.py
	.venv/bin/python bench/api_throughput.py
	.venv/bin/python bench/serving.py
	.venv/bin/python bench/sitemaps.py

# Creates .venv and installs exactly what uv.lock pins (runtime, infra and dev groups).
sync: $(UV)
	$(UV) sync --frozen

# The sitemaps.org schema the sitemap tests validate against, from npm (skipped without npm).
xsd:
	scripts/fetch-sitemap-xsd.sh

# The Gateway API v1 validators the HTTPRoute schema tests run, from npm (skipped without npm).
gateway-api:
	scripts/fetch-gateway-api-schema.sh

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)
