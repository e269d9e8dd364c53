"""TLS on an Ingress: its `tls:` block and the annotations that issue and enforce HTTPS."""

from __future__ import annotations

from pulumi_kubernetes.networking.v1 import IngressTLSArgs

from infra.config.cluster import TlsConfig

CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
ISSUER_ANNOTATION = "cert-manager.io/issuer"

SSL_REDIRECT_ANNOTATION = "nginx.ingress.kubernetes.io/ssl-redirect"


def tls_secret_name(tls: TlsConfig, ingress_name: str) -> str:
    """The configured Secret, else the one cert-manager creates for this Ingress."""
    return tls.secret_name or f"{ingress_name}-tls"


def tls_annotations(tls: TlsConfig | None) -> dict[str, str]:
    """The issuer cert-manager's ingress-shim reads, and HTTP redirected to HTTPS."""
    if tls is None:
        return {}
    # ingress-nginx keeps /.well-known/acme-challenge out of this redirect by default
    # (no-tls-redirect-locations), so HTTP-01 challenges still answer over plain HTTP.
    annotations = {SSL_REDIRECT_ANNOTATION: "true"}
    if tls.cluster_issuer:
        annotations[CLUSTER_ISSUER_ANNOTATION] = tls.cluster_issuer
    if tls.issuer:
        annotations[ISSUER_ANNOTATION] = tls.issuer
    return annotations


def ingress_tls(tls: TlsConfig | None, host: str | None, ingress_name: str) -> list[IngressTLSArgs]:
    """The Ingress's `tls:` block for its one host; empty without TLS."""
    if tls is None or host is None:
        return []
    return [IngressTLSArgs(hosts=[host], secret_name=tls_secret_name(tls, ingress_name))]
