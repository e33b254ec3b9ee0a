"""Error behaviours told as they happen (core.behaviours_live): each once, at the check after it,
with the card's message and what it costs - and the same list the score card has at the end."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, TARGET, synthetic_block_anatomy, synthetic_scenario
from simulator.core.behaviours_live import LiveBehaviours
from simulator.core.geometry import normalize
from simulator.core.procedure import Procedure
from simulator.core.scoring import score_attempt


@pytest.fixture(scope="module")
def block():
    return synthetic_block_anatomy()


def test_each_behaviour_is_told_once_when_it_happens_with_the_cards_words(block):
    sc = synthetic_scenario()  # fluoroscopy, an image every 10 mm, blind past 30 mm
    p = Procedure(sc, block, clock=lambda: 0.0)
    watch = LiveBehaviours(p)
    told = []
    watch.detected.subscribe(told.append)
    assert watch.check() == []  # nothing yet
    p.set_entry(ENTRY, normalize(np.array(TARGET) - np.array(ENTRY)), time_s=1.0)
    p.local_anaesthetic(5.0, "lidocaine", 1.0, time_s=2.0)
    p.record_fluoro_shot(dap_gycm2=0.01, duration_s=0.2, time_s=3.0)
    p.advance(8.0, time_s=4.0)
    assert watch.check() == []  # within the allowance
    p.advance(8.0, time_s=5.0)  # 16 mm since the image
    (first,) = watch.check()
    assert first.key == "advance_unseen" and first.time_s == 5.0
    assert watch.cost(first) == "-3 points" and LiveBehaviours.title(first).startswith("needle advanced")
    assert watch.check() == []  # nothing new: not told again
    for k in range(3):  # on without an image: 40 mm in all, a blind advance
        p.advance(8.0, time_s=6.0 + k)
    new = watch.check()
    assert [(b.key, b.time_s) for b in new] == [("advance_unseen", 7.0), ("advance_blind", 7.0)]
    blind = new[1]  # the unimaged advance that made 32 mm in one stretch
    assert watch.cost(blind) == "fails the attempt" and "32 mm without an image" in blind.message
    p.record_fluoro_shot(dap_gycm2=0.01, duration_s=0.2, time_s=10.0)
    p.inject("contrast", "iohexol", 0.0, 3.0, time_s=11.0)  # no aspiration first
    (noasp,) = watch.check()
    assert noasp.key == "injection_without_aspiration" and noasp.time_s == 11.0
    assert watch.cost(noasp) == "fails the attempt"
    assert told == watch.found and len(told) == 1 + len(new) + 1
    # the card at the end lists the same behaviours, at the same times, in the same words
    p.end(time_s=12.0)
    watch.check()
    card = score_attempt(p.recording, sc, block)
    assert [(b["key"], b["time_s"], b["message"]) for b in card.behaviours] == \
        [(b.key, b.time_s, b.message) for b in sorted(watch.found, key=lambda b: b.time_s)]


def test_points_past_the_cap_are_told_as_costing_nothing(block):
    sc = synthetic_scenario(rubric={**synthetic_scenario().rubric.model_dump(), "blind_advance_mm": 300})
    p = Procedure(sc, block, clock=lambda: 0.0)
    watch = LiveBehaviours(p)
    p.set_entry(ENTRY, normalize(np.array(TARGET) - np.array(ENTRY)), time_s=1.0)
    costs = []
    for k in range(7):  # 11 mm each: one unimaged advance each, 3 points up to 15
        p.advance(11.0, time_s=2.0 + k)
        costs += [watch.cost(b) for b in watch.check()]
    assert costs[:5] == ["-3 points"] * 5 and set(costs[5:]) == {"0 (cap reached)"}
