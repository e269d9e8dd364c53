# The two commands of the README: `make deploy` and `make test`.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv

.PHONY: deploy test run check reference lint format sync sync-run sync-infra policy fuzz faults load bench xsd gateway-api clean

# The prerequisites are checked before anything is installed.
deploy:
	scripts/deploy.sh --check
	$(MAKE) --no-print-directory sync
	scripts/deploy.sh

# One pytest-xdist worker more than the cores (most tests wait on servers they started); how
# many, and which tests share a worker, is decided in tests/conftest.py. A run starts hundreds
# of Python processes: each module is compiled once and its bytecode kept, even where the shell
# sets PYTHONDONTWRITEBYTECODE (docs/testing.md#disk-and-make-clean says why).
test: sync policy xsd gateway-api
	scripts/check-system.sh
	PYTHONDONTWRITEBYTECODE= .venv/bin/pytest --numprocesses auto --dist loadscope

# Without a cluster: the API, an in-memory S3 server and sample images on 127.0.0.1, until Ctrl-C.
# ARGS='--sitemaps' also converts the samples and writes their sitemaps; ARGS='--port 8090'.
run: sync-run
	.venv/bin/python scripts/run_local.py $(ARGS)

# Checks a stack file as `pulumi up` would read it, without a cluster (STACK=prod for another).
STACK ?= dev
check: sync-infra
	.venv/bin/python -m infra.check Pulumi.$(STACK).yaml

# Writes what the typed config generates: schema/, Pulumi.yaml's config keys, docs/configuration.md
# and docs/api.md's table of the largest images.
reference: sync-infra
	.venv/bin/python -m infra.reference

lint: sync
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: sync
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The long forms of what `make test` runs briefly (docs/operations.md#reliability).
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

# Creates .venv and installs exactly what uv.lock pins: the runtime and every group (run,
# test, lint, infra).
sync: $(UV)
	$(UV) sync --frozen

# Only what `make run` needs: the runtime and the run group (moto's S3 server). --inexact
# keeps whatever else an earlier `make sync` installed, so `make test` has nothing to redo.
sync-run: $(UV)
	$(UV) sync --frozen --inexact --no-default-groups --group run

# Only what the Pulumi program needs, for make check and make reference (--inexact as above).
sync-infra: $(UV)
	$(UV) sync --frozen --inexact --no-default-groups --group infra

# What the tests and make run leave behind: in the checkout, build/ and the tools' caches; in
# the machine's container storage, the container test's images and containers (found by their
# label, see tests/container/clean.py). Not .venv or .tools, which make would only install again.
clean:
	rm -rf build .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . \( -path ./.venv -o -path ./.tools -o -path ./.git \) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	python3 -m tests.container.clean

# The policy pack's own locked dependencies into policy/.venv, apart from the program's: it pins
# protobuf 5, the program's lock protobuf 6. `pulumi preview --policy-pack policy` runs it from there.
policy: $(UV)
	$(UV) sync --frozen --project policy

# The sitemaps.org schema the sitemap tests validate against, from npm (skipped without npm).
xsd:
	scripts/fetch-sitemap-xsd.sh

# The Gateway API v1 validators the HTTPRoute schema tests run, from npm (skipped without npm).
gateway-api:
	scripts/fetch-gateway-api-schema.sh

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)
