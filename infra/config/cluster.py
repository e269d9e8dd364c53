"""`kubernetes` and `ingress`: which cluster, and how its nginx Ingresses behave."""

from typing import Literal, Self

from pydantic import Field, model_validator

from infra.config.base import StackModel
from infra.kinds import Hostname, ObjectName
from service.fields import Flag, Text, refuse


class KubernetesConfig(StackModel):
    """The cluster: a kubeconfig context, and the cluster's DNS domain."""

    context: Text | None = Field(None, description="kubeconfig context; unset: the current one")
    kubeconfig: Text | None = Field(None, description="kubeconfig path or contents")
    cluster_domain: Hostname = Field("cluster.local", description="the cluster's DNS domain")


class TlsConfig(StackModel):
    """HTTPS on both hosts: an existing Secret, or a cert-manager issuer that makes one."""

    secret_name: ObjectName | None = Field(None, description="a kubernetes.io/tls Secret")
    cluster_issuer: ObjectName | None = Field(None, description="a cert-manager ClusterIssuer")
    issuer: ObjectName | None = Field(None, description="a cert-manager Issuer")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = sorted(str(type(self).model_fields[name].alias) for name in self.model_fields_set)
        if len(given) > 1:
            raise refuse(f"takes one of secretName, clusterIssuer, issuer; got {', '.join(given)}")
        return self


class IngressConfig(StackModel):
    """Settings shared by every Ingress of the stack."""

    class_name: Literal["nginx"] = Field("nginx", description="the IngressClass")
    skip_await: Flag = Field(False, description="set pulumi.com/skipAwait (no controller)")
    tls: TlsConfig | None = Field(None, description="HTTPS on both hosts; unset: plain HTTP")
