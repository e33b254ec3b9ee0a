"""The trainee is told an error behaviour the moment it is detected: the attempt controller checks
the live attempt a few times a second and the procedure panel names the behaviour (alert line and
events list, in the score card's words, with what it costs) - in exam mode too."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, TARGET, synthetic_block_anatomy, synthetic_scenario
from simulator.core.geometry import normalize
from simulator.ui.attempt import AttemptController
from simulator.ui.behaviour_alert import behaviour_text
from simulator.ui.procedure_panel import ProcedurePanel


@pytest.fixture(scope="module")
def block():
    return synthetic_block_anatomy()


@pytest.mark.parametrize("mode", ["practice", "exam"])
def test_a_behaviour_is_named_in_the_panel_when_it_happens(qtbot, block, mode):
    sc = synthetic_scenario()  # fluoroscopy: an image at least every 10 mm
    clock = {"t": 0.0}
    c = AttemptController(clock=lambda: clock["t"])
    panel = ProcedurePanel()
    qtbot.addWidget(panel)
    panel.scenario = sc
    c.event_added.connect(panel.on_event)
    c.behaviour_detected.connect(panel.on_behaviour)
    panel.set_instructor(mode == "practice")
    panel.show()
    proc = c.start(sc, block, mode=mode, sampled=False)
    panel.attach(proc)
    assert not panel.alert.isVisible()
    c.place_entry(ENTRY, normalize(np.array(TARGET) - np.array(ENTRY)))
    clock["t"] = 2.0
    c.local_anaesthetic()
    c.record_fluoro_shot(dap_gycm2=0.01, duration_s=0.2)
    clock["t"] = 4.0
    c.advance(8.0)
    qtbot.wait(600)  # two checks: nothing to tell within the allowance
    assert not panel.alert.isVisible() and panel.alert.found == []
    with qtbot.waitSignal(c.behaviour_detected, timeout=5000) as sig:
        clock["t"] = 5.0
        c.advance(8.0)  # 16 mm since the last image
    behaviour, cost = sig.args
    assert behaviour.key == "advance_unseen" and cost == "-3 points"
    text = panel.alert.text()
    assert panel.alert.isVisible() and "needle advanced with the tip unseen" in text and "-3 points" in text
    assert "16 mm since the last fluoroscopy image" in text
    rows = [r for r in panel.event_texts() if r.startswith("\u26a0")]
    assert rows == ["\u26a0 00:05  needle advanced with the tip unseen / without an image: needle moved 16 mm "
                    "since the last fluoroscopy image (-3 points)"]
    # contrast injected 87 mm short of the target, in muscle, without aspirating: two behaviours
    # at once, each told as failing the attempt, the newest in the alert line
    clock["t"] = 7.0
    c.record_fluoro_shot(dap_gycm2=0.01, duration_s=0.2)
    c.inject("contrast", "iohexol", 0.0, 3.0)
    qtbot.waitUntil(lambda: len(panel.alert.found) == 3, timeout=5000)
    told = {b.key: cost for b, cost in panel.alert.found[1:]}
    assert told == {"injection_without_aspiration": "fails the attempt", "injection_into_muscle": "fails the attempt"}
    assert "(3 so far)" in panel.alert.text() and "00:07" in panel.alert.text()
    # switching the mode refills the list: the behaviours keep their place, after the injection
    panel.set_instructor(mode != "practice")
    rows = panel.event_texts()
    assert [r for r in rows if r.startswith("\u26a0")] == [behaviour_text(b, cost) for b, cost in panel.alert.found]
    assert all(r.startswith("\u26a0") for r in rows[-2:]) and "contrast" in rows[-3]
    # the end: the card lists the same behaviours; a new attempt clears the alert
    card = c.end()
    assert [b["key"] for b in card.behaviours] == [b.key for b, _ in panel.alert.found]
    panel.attach(c.start(sc, block, mode=mode, sampled=False))
    assert not panel.alert.isVisible() and panel.alert.found == []
    c.stop()
