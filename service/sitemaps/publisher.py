"""Publish, roll back and report generations: the steps in their safe order."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

from service.sitemaps import storage
from service.sitemaps.errors import SitemapError
from service.sitemaps.ingress import ConflictError
from service.sitemaps.naming import is_generation, new_bucket_name
from service.sitemaps.progress import Progress
from service.sitemaps.retention import doomed, retained
from service.sitemaps.router import LiveState, Router
from service.sitemaps.sections import Section
from service.sitemaps.writer import EmptySourceError, Generation, Limits, write_sections

log = logging.getLogger("service.sitemaps")
SWITCH_ATTEMPTS = 5


@dataclass(frozen=True)
class Status:
    """The live generation, the retained ones and the orphans, as storage and the router say."""

    live: str | None
    retained: list[str]
    orphans: list[str]
    newer: list[str]


class Publisher:
    """Runs the publishing steps against one storage client and one Ingress or HTTPRoute."""

    def __init__(self, client: Minio, ingress: Router, retain: int = 1, workers: int = 8) -> None:
        if retain < 0:
            raise SitemapError("bad option --retain: must be 0 or more")
        self.client, self.ingress, self.retain, self.workers = client, ingress, retain, workers

    def publish(
        self,
        sections: Sequence[Section],
        base_url: str,
        dry_run: bool = False,
        limits: Limits = Limits(),  # noqa: B008 - frozen dataclass, never mutated
    ) -> str | None:
        """Generate, upload, verify and switch to a new generation; returns it, or None when
        the source had no URLs or a newer generation went live first."""
        if dry_run:
            self.print_plan(base_url)
            return None
        state = self.ingress.read()  # fails fast on 403/404 before minutes of generating
        bucket = new_bucket_name()
        with storage.refusals(self.client):
            self.heal(state)
        # A failure to remove the local files must not hide why the run ended (a stop, an
        # error); they are in the pod's scratch volume, which goes with the pod.
        with tempfile.TemporaryDirectory(prefix="sitemaps-", ignore_cleanup_errors=True) as workdir:
            try:
                generation = self.generate(sections, Path(workdir), base_url, limits)
            except EmptySourceError:
                log.info(
                    "publish: the source has no URLs; nothing to publish, live stays %s", state.live
                )
                return None
            with storage.refusals(self.client):
                self.create_bucket(bucket)
                self.upload(bucket, generation)
                self.make_public(bucket)
                self.verify(bucket, generation)
        live = self.switch(bucket)
        with storage.refusals(self.client):
            if live != bucket:
                log.info("publish: %s is newer and already live; discarding %s", live, bucket)
                storage.delete_bucket(self.client, bucket)
                return None
            self.mark_went_live(bucket)
            self.clean_up()
        log.info("publish: %s is live with %s URLs", bucket, f"{generation.urls:,}")
        return bucket

    def generate(
        self, sections: Sequence[Section], out: Path, base_url: str, limits: Limits
    ) -> Generation:
        """Step 1: write the files locally."""
        with Progress("generate", "URL") as progress:
            return write_sections(sections, out, base_url, limits, on_progress=progress.update)

    def create_bucket(self, bucket: str) -> None:
        """Step 2: a fresh bucket for this generation."""
        storage.create_bucket(self.client, bucket)
        log.info("publish: created bucket %s", bucket)

    def upload(self, bucket: str, generation: Generation) -> None:
        """Step 3: every file, in parallel."""
        with Progress("upload", "file", total=len(generation.files)) as progress:
            storage.upload(self.client, bucket, generation, self.workers, on_file=progress.update)

    def make_public(self, bucket: str) -> None:
        """Step 4: anonymous reads of objects, no listing."""
        storage.make_public(self.client, bucket)

    def verify(self, bucket: str, generation: Generation) -> None:
        """Step 5: every object present with its size."""
        storage.verify(self.client, bucket, storage.sizes_of(generation))
        log.info("publish: verified %d objects in %s", len(generation.files), bucket)

    def switch(self, bucket: str) -> str:
        """Step 6: patch the Ingress at the version read; returns whichever generation is live."""
        for _ in range(SWITCH_ATTEMPTS):
            state = self.ingress.read()
            if is_generation(state.live) and str(state.live) > bucket:
                return str(state.live)
            try:
                self.ingress.switch(bucket, state.resource_version)
            except ConflictError:
                log.info(
                    "publish: the %s changed while switching; reading it again", self.ingress.kind
                )
                continue
            log.info(
                "publish: switched the %s from %s to %s", self.ingress.kind, state.live, bucket
            )
            return bucket
        raise SitemapError(
            f"the {self.ingress.kind} kept changing; gave up after {SWITCH_ATTEMPTS} attempts"
        )

    def mark_went_live(self, bucket: str) -> None:
        """Step 7a: remember that this generation served, so it counts as retained."""
        storage.mark_went_live(self.client, bucket)

    def clean_up(self) -> None:
        """Step 7b: delete generations beyond --retain and orphans, never the live one."""
        live = self.ingress.read().live
        names = storage.generations(self.client)
        served = {
            name for name in names if name < str(live) and storage.went_live(self.client, name)
        }
        for name in doomed(names, live, served, self.retain):
            self.delete_generation(name)

    def delete_generation(self, name: str) -> bool:
        """Delete one doomed generation, unless a rollback claims it or it went live since.

        The clean-up marks the bucket DELETING, then looks for a rollback's claim, then
        reads the Ingress; a rollback claims first and looks for DELETING after. Whichever
        order they run in, one of them sees the other and stands back.
        """
        if not storage.claim(self.client, name, storage.DELETING):
            return False  # deleted by someone else already
        live = None
        claimed = storage.claimed(self.client, name, storage.ROLLBACK_TARGET)
        if not claimed:
            live = self.ingress.read().live
        if claimed or name == live or (is_generation(live) and name > str(live)):
            storage.release(self.client, name, storage.DELETING)
            why = "a rollback is switching to it" if claimed else f"{live} is live now"
            log.info("publish: keeping %s: %s", name, why)
            return False
        log.info("publish: deleting %s", name)
        storage.delete_bucket(self.client, name)
        return True

    def heal(self, state: LiveState) -> None:
        """Mark the live generation as served in case a crash came between switch and mark."""
        if is_generation(state.live) and not storage.went_live(self.client, str(state.live)):
            names = storage.generations(self.client)
            if state.live in names:
                storage.mark_went_live(self.client, str(state.live))

    def status(self) -> Status:
        """What is live, retained, orphaned, and newer than live (runs in progress or rolled back)."""
        state = self.ingress.read()
        with storage.refusals(self.client):
            names = storage.generations(self.client)
            served = {name for name in names if storage.went_live(self.client, name)}
        live = state.live
        kept = retained(names, live, served, self.retain)
        older = [n for n in names if is_generation(live) and n < str(live)]
        orphans = [n for n in older if n not in served]
        newer = [n for n in names if not is_generation(live) or n > str(live)]
        return Status(live, kept, orphans, newer)

    def rollback(self, dry_run: bool = False) -> str:
        """Switch back to the newest retained generation older than the live one.

        The target is claimed (ROLLBACK_TARGET) before it is checked and switched to, so a
        publish's clean-up running at the same time keeps it; if that clean-up has begun
        deleting it already (DELETING), the rollback refuses instead.
        """
        status = self.status()
        if not status.retained:
            raise SitemapError(
                f"no earlier generation is retained to roll back to from {status.live}"
            )
        target = status.retained[0]
        with storage.refusals(self.client):
            if dry_run:
                storage.published_sizes(self.client, target)
                print(
                    f"plan: switch the {self.ingress.kind} from {status.live} back to {target} (verified complete)"
                )
                return target
            if not storage.claim(self.client, target, storage.ROLLBACK_TARGET):
                raise SitemapError(f"{target} was deleted during the rollback; not switching")
            try:
                self._switch_back(status.live, target)
            finally:
                storage.release(self.client, target, storage.ROLLBACK_TARGET)
        log.info("rollback: switched the %s from %s to %s", self.ingress.kind, status.live, target)
        return target

    def _switch_back(self, live: str | None, target: str) -> None:
        if storage.claimed(self.client, target, storage.DELETING):
            raise SitemapError(
                f"{target} is being deleted by a publish's clean-up; not switching "
                "(see status, and roll back to what it retains)"
            )
        storage.published_sizes(self.client, target)  # complete, now that no one deletes it
        state = self.ingress.read()
        if state.live != live:
            raise SitemapError(
                f"the {self.ingress.kind} changed to {state.live} during the rollback; not switching"
            )
        try:
            self.ingress.switch(target, state.resource_version)
        except ConflictError:
            raise SitemapError(
                f"the {self.ingress.kind} changed during the rollback; not switching"
            ) from None

    def print_plan(self, base_url: str | None) -> None:
        """What `publish` would do now, from the Ingress and the buckets as they are."""
        with storage.refusals(self.client):
            names = storage.generations(self.client)
            served = {name for name in names if storage.went_live(self.client, name)}
        print_plan(self.ingress, self.retain, base_url, Stored(names, served))


@dataclass(frozen=True)
class Stored:
    """The generations in storage, and those of them that went live."""

    names: list[str]
    served: set[str]


def print_plan(ingress: Router, retain: int, base_url: str | None, stored: Stored | str) -> None:
    """What `publish` would do now, from the Ingress as it is and from the generations in
    storage, or, where storage cannot be read, the reason its part is not shown."""
    state = ingress.read()
    bucket = new_bucket_name()
    where = f"{ingress.namespace}/{ingress.name}"
    if base_url:
        print(f"plan: generate sitemaps with index {base_url.rstrip('/')}/sitemap.xml")
    print(f"plan: create bucket {bucket}, upload every file, allow anonymous s3:GetObject, verify")
    print(
        f"plan: switch {ingress.kind.lower()} {where} from {state.live} to {bucket} (resourceVersion {state.resource_version})"
    )
    if isinstance(stored, str):
        print(
            f"plan: delete the generations past --retain {retain}: which ones is not shown, "
            f"as storage cannot be read ({stored})"
        )
        return
    live = {state.live} if state.live else set()
    would_delete = doomed([*stored.names, bucket], bucket, stored.served | live, retain)
    print(f"plan: delete {', '.join(would_delete) or 'nothing'} (retain {retain})")
