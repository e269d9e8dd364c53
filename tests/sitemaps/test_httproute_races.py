"""The crash, race and rollback/clean-up interleavings of test_publish.py and test_races.py, run
again with the HTTPRoute switch on the stand-in of tests/sitemaps/gateway_api.py in place of the
Ingress: the Publisher's guarantees hold for any Router."""

from __future__ import annotations

import pytest

from service.sitemaps.publisher import Publisher
from tests.sitemaps.test_publish import (  # noqa: F401 - collected again here
    test_crash_after_each_step_leaves_a_complete_live_generation,
    test_retention_keeps_the_previous_generation_and_rollback_returns_to_it,
    test_two_racing_publishers_leave_one_live_generation,
)
from tests.sitemaps.test_races import (  # noqa: F401 - collected again here
    test_a_clean_up_between_the_rollbacks_claim_and_its_switch_keeps_the_target,
    test_a_crashed_runs_marker_expires,
    test_a_rollback_after_the_clean_up_claimed_its_target_refuses,
    test_a_rollback_between_the_clean_ups_plan_and_its_deletion,
    test_a_rollback_while_the_target_is_being_emptied_refuses,
    three,
)


@pytest.fixture
def kube(route):
    """The tests above ask for `kube`; here it is the HTTPRoute and its Gateway controller."""
    return route


@pytest.fixture
def publisher(client, route):
    return Publisher(client, route.switch(), retain=1, workers=4)
