# One image for the image API (the default command) and the sitemap job
# (`python -m service.sitemaps publish`).

# The base is pinned by tag and by digest, so that one content-hash tag always means one image.
# Move it with --build-arg PYTHON_DIGEST=sha256:<digest>, the digest that
# `docker buildx imagetools inspect python:3.11-slim-bookworm` shows.
ARG PYTHON_DIGEST=sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM python:3.11-slim-bookworm@${PYTHON_DIGEST} AS build
# uv installs exactly what uv.lock pins; only the runtime dependencies, never infra or dev.
# --locked: a uv.lock that no longer matches pyproject.toml fails the build instead of being used.
# PIP_CERT and UV_SYSTEM_CERTS: pip and uv trust the system's CA store rather than their own
# copies, so a build behind a TLS-inspecting proxy works when that store is mounted for the
# build (mounts are never part of a layer, and nothing of this stage but /opt/venv is copied).
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_SYSTEM_CERTS=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-default-groups --no-install-project

FROM python:3.11-slim-bookworm@${PYTHON_DIGEST}
# libmagic1 follows bookworm's point releases of file 5.44; a new upstream version is a choice.
RUN apt-get update \
    && apt-get install -y --no-install-recommends 'libmagic1=1:5.44-*' \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY service ./service
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080
# service.serve checks the settings, then execs the API's server on port 8080.
CMD ["python", "-m", "service.serve"]
