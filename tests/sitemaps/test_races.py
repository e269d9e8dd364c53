"""A rollback and a publish's clean-up, interleaved step by step: the rollback's target is never lost.

Each test runs the two in one thread, with the second one started at a chosen point of the
first (through a hook on a storage step), so every interleaving is exact and repeatable.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.sitemaps import storage
from service.sitemaps.errors import SitemapError
from service.sitemaps.publisher import Publisher
from tests.sitemaps.test_publish import BASE, assert_live_is_complete, rows


@pytest.fixture
def three(s3_server, client, kube):
    """Generations g1 < g2 < g3, g3 live and all three kept; returns them oldest first."""
    keeper = Publisher(client, kube.switch(), retain=2, workers=2)
    return [keeper.publish(rows(n), BASE) for n in (10, 20, 30)]


def hook(
    monkeypatch: pytest.MonkeyPatch, step: str, when: Callable[..., bool], then: Callable[[], None]
) -> list[bool]:
    """Run `then` once, right after `storage.<step>(client, bucket, marker)` matches `when`."""
    original = getattr(storage, step)
    fired: list[bool] = []

    def wrapped(*args: object) -> object:
        result = original(*args)
        if not fired and when(*args):
            fired.append(True)
            then()
        return result

    monkeypatch.setattr(storage, step, wrapped)
    return fired


def cleaner(client, kube) -> Publisher:
    """A publish's clean-up that would keep nothing but the live generation."""
    return Publisher(client, kube.switch(), retain=0, workers=2)


def roller(client, kube) -> Publisher:
    return Publisher(client, kube.switch(), retain=1, workers=2)


def test_a_rollback_between_the_clean_ups_plan_and_its_deletion(
    s3_server, client, kube, three, monkeypatch
):
    """The clean-up planned with g3 live; the rollback switches to g2 before g2's turn."""
    _, g2, g3 = three
    original = Publisher.delete_generation
    rolled: list[str] = []

    def rollback_first(self: Publisher, name: str) -> bool:
        if name == g2 and not rolled:
            rolled.append(roller(client, kube).rollback())
        return original(self, name)

    monkeypatch.setattr(Publisher, "delete_generation", rollback_first)
    cleaner(client, kube).clean_up()
    assert rolled == [g2]
    assert kube.live == g2
    assert_live_is_complete(s3_server, kube)
    assert storage.generations(client) == [g2, g3]  # g1 went; g3 is newer than live


def test_a_rollback_after_the_clean_up_claimed_its_target_refuses(
    s3_server, client, kube, three, monkeypatch
):
    _, g2, g3 = three
    refusals: list[str] = []

    def rollback() -> None:
        with pytest.raises(SitemapError, match="being deleted by a publish's clean-up") as caught:
            roller(client, kube).rollback()
        refusals.append(str(caught.value))

    fired = hook(
        monkeypatch,
        "claim",
        lambda client_, bucket, marker: bucket == g2 and marker == storage.DELETING,
        rollback,
    )
    cleaner(client, kube).clean_up()
    assert fired
    assert refusals
    assert kube.live == g3
    assert_live_is_complete(s3_server, kube)
    assert storage.generations(client) == [g3]


def test_a_rollback_while_the_target_is_being_emptied_refuses(
    s3_server, client, kube, three, monkeypatch
):
    """Half the objects are gone: the DELETING marker, removed last, still turns it away."""
    _, g2, g3 = three
    refusals: list[str] = []

    def rollback() -> None:
        with pytest.raises(SitemapError, match="being deleted"):
            roller(client, kube).rollback()
        refusals.append(g2)

    fired = hook(
        monkeypatch,
        "_remove",
        lambda client_, bucket, names: bucket == g2 and storage.DELETING not in names,
        rollback,
    )
    cleaner(client, kube).clean_up()
    assert fired
    assert refusals
    assert kube.live == g3
    assert_live_is_complete(s3_server, kube)


def test_a_clean_up_between_the_rollbacks_claim_and_its_switch_keeps_the_target(
    s3_server, client, kube, three, monkeypatch
):
    _, g2, g3 = three
    fired = hook(
        monkeypatch,
        "claim",
        lambda client_, bucket, marker: marker == storage.ROLLBACK_TARGET,
        lambda: cleaner(client, kube).clean_up(),
    )
    assert roller(client, kube).rollback() == g2
    assert fired
    assert kube.live == g2
    assert_live_is_complete(s3_server, kube)
    assert storage.generations(client) == [g2, g3]
    assert not storage.claimed(client, g2, storage.ROLLBACK_TARGET)  # released after the switch
    assert not storage.claimed(client, g2, storage.DELETING)


def test_a_crashed_runs_marker_expires(s3_server, client, kube, three, monkeypatch):
    """A marker older than CLAIM_TTL was left by a run that died, and holds nothing back."""
    _, g2, g3 = three
    assert storage.claim(client, g2, storage.ROLLBACK_TARGET)
    assert storage.claimed(client, g2, storage.ROLLBACK_TARGET)
    monkeypatch.setattr(storage, "CLAIM_TTL", storage.CLAIM_TTL * 0)
    assert not storage.claimed(client, g2, storage.ROLLBACK_TARGET)
    cleaner(client, kube).clean_up()
    assert storage.generations(client) == [g3]
