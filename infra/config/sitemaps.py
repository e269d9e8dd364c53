"""`sitemaps`: the sitemap publisher CronJob and the route it switches."""

import re
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from infra.config.base import StackModel, mirror
from infra.config.resources import Resources
from infra.cron import Schedule, TimeZone
from infra.kinds import Hostname, Quantity
from service.fields import Flag, Integer, Text, matching, refuse
from service.settings import SitemapSettings
from service.sitemaps.sections import NAME_PATTERN, NAME_RULE

Url = Annotated[Text, matching(r"https?://[^/\s]+(/\S*)?", "must be an absolute http(s) URL")]
SectionName = Annotated[Text, matching(NAME_PATTERN, f"must be {NAME_RULE}")]


class SitemapSection(StackModel):
    """One named family of sitemap files from one SQL query."""

    name: SectionName = Field(description="the section's name, in its file names")
    query: Text = Field(description="SQL returning (loc, lastmod)")


class SitemapsConfig(StackModel):
    """The sitemap publisher: when it runs, where it reads URLs, where the files are served."""

    enabled: Flag = Field(True, description="run the sitemap publisher")
    schedule: Schedule = Field("0 3 * * *", description="cron schedule, or a macro like @daily")
    time_zone: TimeZone = Field("Etc/UTC", description="the time zone of the schedule")
    host: Hostname = Field("sitemaps.kube-image-processing.test", description="their own host")
    base_url: Url | None = Field(None, description="URL of the files; unset: host/sitemaps")
    site_url: Url | None = Field(None, description="URL of the API; unset: from api.host")
    source: Literal["bucket", "sql"] = Field("bucket", description="the API's images, or SQL")
    query: Text | None = Field(None, description="with source sql: SQL of (loc, lastmod)")
    retain: int = mirror(SitemapSettings, "retain")
    backoff_limit: Annotated[Integer, Field(ge=0, le=20)] = Field(2, description="retries")
    active_deadline_seconds: Annotated[Integer, Field(ge=60, le=2**63 - 1)] = Field(
        3600, description="longest run, in seconds"
    )
    scratch_size: Quantity = Field("2Gi", description="the job's scratch volume")
    resources: Resources = Field(Resources.of("250m", "256Mi", "2", "512Mi"))
    sections: list[SitemapSection] = Field([], description="with source sql: named queries")

    @model_validator(mode="after")
    def _sources(self) -> Self:
        names = [section.name for section in self.sections]
        if len(set(names)) < len(names):
            raise refuse(f"names must differ, got {', '.join(names)}", "sections")
        for key in ("sections", "query"):
            if getattr(self, key) and self.source != "sql":
                raise refuse("needs sitemaps.source=sql", key)
        if self.source == "sql" and bool(self.query) == bool(self.sections):
            raise refuse("sql takes sitemaps.query or sitemaps.sections (one of them)", "source")
        url = self.base_url
        if url is not None and not re.fullmatch(
            rf"https?://{re.escape(self.host)}(:\d+)?/sitemaps/?", url
        ):
            raise refuse(
                f"must be http(s)://{self.host}/sitemaps (sitemaps.host serves them)", "baseUrl"
            )
        return self

    @property
    def index_url(self) -> str:
        """The public URL of the sitemap index."""
        return f"{self.base_url}/sitemap.xml"
