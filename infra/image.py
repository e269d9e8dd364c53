"""AppImage: builds the root Dockerfile, tags it by content, pushes it and makes the pull Secret."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build
from pulumi_kubernetes.core.v1 import Secret
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.common import labels, secret_value
from infra.config.image import ImageConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
PULL_POLICY = "IfNotPresent"
# What the build reads: the Dockerfile itself and what `.dockerignore` lets into the context.
# A change anywhere else (README, tests, local caches) must not change the tag.
_BUILD_INPUTS = ("Dockerfile", ".dockerignore")


def dockerignore_allowlist(root: Path) -> list[str]:
    """The paths `.dockerignore` re-includes after its leading `*`."""
    lines = (root / ".dockerignore").read_text().splitlines()
    return [line[1:].strip("/") for line in lines if line.startswith("!")]


def context_digest(root: Path) -> str:
    """SHA-256 over the names and contents of the files the build uses."""
    digest = hashlib.sha256()
    paths: list[Path] = []
    for entry in (*_BUILD_INPUTS, *dockerignore_allowlist(root)):
        path = root / entry
        if path.is_dir():
            paths.extend(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.is_file():
            paths.append(path)
    for path in sorted(set(paths)):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def registry_host(config: ImageConfig) -> str | None:
    """The registry's host[:port]; a path given with image.registry belongs to the image name."""
    return config.registry.split("/", 1)[0] if config.registry else None


def image_name(config: ImageConfig) -> str:
    """The image name without a tag, registry-qualified when a registry is set."""
    return f"{config.registry}/{config.repository}" if config.registry else config.repository


def build_platform(config: ImageConfig) -> str | None:
    """Unpushed, the image runs on the daemon that builds it, so that daemon's own platform is
    right (None); a pushed image defaults to the usual node architecture."""
    return config.platform or ("linux/amd64" if config.pushes else None)


def docker_config_json(registry: str, username: str, password: str) -> str:
    """The `.dockerconfigjson` document of a `kubernetes.io/dockerconfigjson` Secret."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps(
        {"auths": {registry: {"username": username, "password": password, "auth": auth}}}
    )


@dataclass
class AppImageArgs:
    """Inputs of AppImage."""

    namespace: pulumi.Input[str]
    config: ImageConfig
    # The secret registryPassword: with image.username, the push's and the pull Secret's.
    password: pulumi.Output[str] | None = None
    context: Path = REPO_ROOT


class AppImage(pulumi.ComponentResource):
    """The one application image that the API and the sitemap job both run."""

    ref: pulumi.Output[str]
    tag: str
    pull_policy: str
    pull_secret_names: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: AppImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kube-image-processing:index:AppImage", name, None, opts)
        config = args.config
        # A tag per content: a reused tag such as `latest` never rolls a Deployment out
        # when the image only lives in minikube's Docker: the kubelet sees the same tag and
        # keeps the image it has.
        self.tag = f"{image_name(config)}:ctx-{context_digest(args.context)[:16]}"
        self.pull_policy = PULL_POLICY
        # Relative to where Pulumi runs the program, so the input is the same on every machine.
        location = os.path.relpath(args.context, Path.cwd())
        registries = None
        registry = registry_host(config)
        # Without static credentials the push uses the Docker credential helpers of the host.
        if registry is not None and config.username is not None:
            registries = [
                docker_build.RegistryArgs(
                    address=registry, username=config.username, password=args.password
                )
            ]
        image = docker_build.Image(
            name,
            context=docker_build.BuildContextArgs(location=location),
            dockerfile=docker_build.DockerfileArgs(location=os.path.join(location, "Dockerfile")),
            # None builds for the daemon's own architecture: minikube's node.
            platforms=(
                [docker_build.Platform(build_platform(config))] if build_platform(config) else None
            ),
            tags=[self.tag],
            push=config.pushes,
            # Without a push the image goes into the local daemon, which the Docker context of
            # scripts/minikube-docker-context.sh points at minikube's Docker, where the kubelet
            # finds it. pulumi-docker-build reads DOCKER_HOST only, never DOCKER_TLS_VERIFY or
            # DOCKER_CERT_PATH (pulumi-docker-build#54), so `minikube docker-env` alone would
            # send plain HTTP to minikube's TLS port.
            load=not config.pushes,
            registries=registries,
            build_on_preview=config.build_on_preview,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if config.pushes:
            # The digest-pinned ref, so the Deployment changes exactly when the image does.
            self.ref = image.ref
        else:
            tag = self.tag
            self.ref = image.ref.apply(lambda _: tag)

        self.pull_secret_names = []
        # No static credentials: the nodes pull with their own (node IAM, ECR, a kubelet
        # credential provider), so there is no pull Secret.
        if registry is not None and config.username is not None and args.password is not None:
            username = config.username
            document = pulumi.Output.from_input(args.password).apply(
                lambda password: docker_config_json(registry, username, password or "")
            )
            pull_secret = Secret(
                f"{name}-pull-secret",
                metadata=ObjectMetaArgs(namespace=args.namespace, labels=labels("registry")),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": secret_value(document)},
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.pull_secret_names.append(pull_secret.metadata.name)

        self.register_outputs({"ref": self.ref, "tag": self.tag})
