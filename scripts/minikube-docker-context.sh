#!/usr/bin/env bash
# Prints shell lines that point Docker, and pulumi-docker-build, at minikube's daemon through a
# Docker context that carries the TLS material. Use: eval "$(scripts/minikube-docker-context.sh)"
#
# Why not `eval $(minikube docker-env)` alone: it exports DOCKER_HOST=tcp://<ip>:2376 with
# DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. pulumi-docker-build 0.0.22 (pulumi-docker-build#54)
# passes DOCKER_HOST as its `host` config into docker/cli's client options
# (provider/internal/provider.go Config.Host defaults to DOCKER_HOST; provider/internal/client.go
# newDockerCLI builds them with flags.NewClientOptions() and appends the host). docker/cli reads
# the two TLS variables only in ClientOptions.InstallFlags/SetDefaultOptions
# (cli/flags/options.go), which the provider never calls, so resolveDefaultDockerEndpoint
# (cli/command/cli.go) gets no TLS options and the build speaks plain HTTP to a TLS port. The
# provider's `host` setting is a host string only, so it cannot carry certificates either.
# With DOCKER_HOST unset and no host given, resolveContextName (cli/command/cli.go) takes
# DOCKER_CONTEXT, and resolveDockerEndpoint loads that context's CA, certificate and key from the
# context store; buildx does the same for its nodes (util/dockerutil/api.go NewClientAPI).
# `minikube docker-env --ssh-host --ssh-add` would work too, but needs a running ssh-agent and
# minikube's host key in known_hosts, which a first run does not have.
set -euo pipefail

CONTEXT="${DOCKER_CONTEXT_NAME:-kube-image-processing-minikube}"

if ! env_lines="$(minikube docker-env --shell bash)"; then
    echo "error: 'minikube docker-env' failed (see above); the dev stack builds into minikube's" \
        "Docker, so minikube must run the docker runtime (minikube start --container-runtime=docker)" >&2
    exit 1
fi
# Evaluated in this process only: the caller gets a context, never these variables.
unset DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH
eval "$env_lines"
host="${DOCKER_HOST:-}"
tls_verify="${DOCKER_TLS_VERIFY:-}"
cert_path="${DOCKER_CERT_PATH:-}"
unset DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONTEXT
if [ -z "$host" ]; then
    echo "error: 'minikube docker-env' printed no DOCKER_HOST" >&2
    exit 1
fi

endpoint="host=$host"
if [ -n "$tls_verify" ] && [ "$tls_verify" != 0 ]; then
    for file in ca.pem cert.pem key.pem; do
        if [ ! -r "$cert_path/$file" ]; then
            echo "error: minikube's TLS file $cert_path/$file is missing; run 'minikube start' again" >&2
            exit 1
        fi
    done
    endpoint="$endpoint,ca=$cert_path/ca.pem,cert=$cert_path/cert.pem,key=$cert_path/key.pem"
fi

# Updated on every run: `minikube delete` and `minikube start` may change the IP and certificates.
if docker context inspect "$CONTEXT" >/dev/null 2>&1; then
    docker context update "$CONTEXT" --docker "$endpoint" >/dev/null
else
    docker context create "$CONTEXT" --description "minikube's Docker daemon (kube-image-processing)" \
        --docker "$endpoint" >/dev/null
fi

echo "unset DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH"
echo "export DOCKER_CONTEXT=$CONTEXT"
