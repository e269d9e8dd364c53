"""`image`: how the application image is built, tagged, pushed and pulled."""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from infra.config.base import PROJECT, StackModel
from infra.kinds import RepositoryPath
from service.fields import Flag, Text, matching, refuse

Registry = Annotated[
    Text,
    matching(
        r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._/-][a-z0-9]+)*)?",
        "must be a registry host[:port], optionally with a path, such as ghcr.io/org",
    ),
]


class ImageConfig(StackModel):
    """The one image the API and the sitemap job run: where it is pushed, for which platform."""

    repository: RepositoryPath = Field(PROJECT, description="the image's repository path")
    registry: Registry | None = Field(None, description="host[:port][/path] to push to")
    username: Text | None = Field(None, description="registry user, for a pull Secret")
    push: Flag | None = Field(None, description="push the image; unset: when a registry is set")
    platform: Literal["linux/amd64", "linux/arm64"] | None = Field(
        None, description="unset: the local daemon's own, or linux/amd64 when pushing"
    )
    build_on_preview: Flag = Field(True, description="build during pulumi preview too")

    @model_validator(mode="after")
    def _registry_rules(self) -> Self:
        if self.pushes and self.registry is None:
            raise refuse("true needs image.registry: there is nowhere to push to", "push")
        if self.registry is None and self.username is not None:
            raise refuse("is only read with image.registry", "username")
        return self

    @property
    def pushes(self) -> bool:
        """Whether the build pushes: as set, else whenever a registry is set."""
        return self.registry is not None if self.push is None else self.push
