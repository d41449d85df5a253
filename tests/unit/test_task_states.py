from __future__ import annotations

import itertools

import pytest

from glint import errors
from glint.tasks import states

ALLOWED = {("pending", "processing"), ("pending", "failure"),
           ("processing", "success"), ("processing", "failure"),
           ("processing", "pending"),  # the reaper re-queues a task whose runner was lost
           ("processing", "processing")}  # a claim takes over a task whose lease expired


@pytest.mark.parametrize(("current", "target"), list(itertools.product(states.STATUSES, repeat=2)))
def test_transition_table(current: str, target: str) -> None:
    if (current, target) in ALLOWED:
        states.check(current, target)
    else:
        with pytest.raises(errors.InvalidTransition):
            states.check(current, target)


def test_final_statuses_have_no_way_out() -> None:
    assert all(not states.TRANSITIONS[s] for s in states.FINAL)


def test_a_claim_takes_what_may_move_to_processing() -> None:
    assert {states.PENDING, states.PROCESSING} == states.CLAIMABLE
