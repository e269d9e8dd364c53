#!/usr/bin/env bash
# `make deploy`: stand the platform up on minikube with the dev stack, then check /readyz through
# the Ingress. `scripts/deploy.sh --check` only checks the prerequisites (make runs it before it
# installs anything).
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${STACK:-dev}"
missing=0
need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "error: $1 is missing; install it from $2" >&2
        missing=1
    fi
}
need pulumi "https://www.pulumi.com/docs/iac/download-install/"
need minikube "https://minikube.sigs.k8s.io/docs/start/"
need docker "https://docs.docker.com/get-docker/"
need curl "https://curl.se/download.html"
need python3 "https://www.python.org/downloads/"
[ "$missing" -eq 0 ] || exit 1
if [ "${1:-}" = --check ]; then
    exit 0
fi
if [ ! -x .tools/bin/uv ]; then
    echo "error: .tools/bin/uv is missing; run 'make deploy', which installs the pinned uv first" >&2
    exit 1
fi

if ! minikube status --format '{{.Host}}' 2>/dev/null | grep -q Running; then
    echo "==> starting minikube with the ingress addon"
    minikube start --addons=ingress
else
    minikube addons enable ingress >/dev/null
fi

echo "==> using the local file state backend (no account needed)"
pulumi login --local >/dev/null
# Pulumi.dev.yaml commits the encryptionsalt of the empty passphrase, so creating the stack
# leaves the file as it is (a stack file without one gets a fresh salt written into it).
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
if ! pulumi stack select "$STACK" --create; then
    echo "error: could not select or create the stack $STACK (see above); Pulumi.$STACK.yaml's" \
        "salt is for the empty passphrase: unset PULUMI_CONFIG_PASSPHRASE, or see the README's" \
        "'Set-up: two commands' to use your own" >&2
    exit 1
fi

# The API's HorizontalPodAutoscaler reads CPU use from metrics-server, which minikube ships as
# an addon but does not enable.
autoscaling="$(pulumi config get --path api.autoscaling.enabled --stack "$STACK" 2>/dev/null || true)"
if [ "$autoscaling" = true ]; then
    echo "==> api.autoscaling is on: enabling minikube's metrics-server addon, which the autoscaler reads"
    minikube addons enable metrics-server >/dev/null
fi

echo "==> pointing Docker at minikube's daemon, so the image is built where the node can use it"
# A Docker context with minikube's TLS material instead of DOCKER_HOST/DOCKER_TLS_VERIFY/
# DOCKER_CERT_PATH, which pulumi-docker-build does not read: see the script for the sources.
eval "$(scripts/minikube-docker-context.sh)"
if ! docker_error="$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null)"; then
    echo "error: Docker cannot reach minikube's daemon through the context $DOCKER_CONTEXT:" \
        "$docker_error" >&2
    exit 1
fi

# Pulumi's uv toolchain needs uv on PATH; `make sync` put the pinned one in .tools/bin.
export PATH="$PWD/.tools/bin:$PATH"
pulumi install
pulumi up --yes --stack "$STACK"

url="$(pulumi stack output api_url --stack "$STACK")"
host_header=()
ingress_host="$(pulumi config get --path api.host --stack "$STACK" 2>/dev/null || true)"
# With the docker driver on macOS or Windows, minikube's IP is unreachable: use `minikube tunnel`
# and INGRESS_ADDRESS=127.0.0.1.
target="http://${INGRESS_ADDRESS:-$(minikube ip)}"
if [ -n "$ingress_host" ]; then
    host_header=(-H "Host: $ingress_host")
fi

echo "==> waiting for $target/readyz through the Ingress"
for _ in $(seq 1 60); do
    if curl -fsS --max-time 5 ${host_header[@]+"${host_header[@]}"} "$target/readyz" >/dev/null 2>&1; then
        echo "The image API is ready: $url"
        if [ -n "$ingress_host" ]; then
            echo "(add '${target#http://} $ingress_host' to /etc/hosts, or send 'Host: $ingress_host')"
        fi
        exit 0
    fi
    sleep 5
done
echo "error: $target/readyz did not answer 200 within 5 minutes; see 'kubectl -n \$(pulumi stack output namespace) get pods'" >&2
exit 1
