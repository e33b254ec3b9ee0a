"""A rubric that cannot score is refused by `validate` with the file, the line and the field: an
unknown metric or target, weights that sum to 0, a metric that is not measured per target, only
metrics the scenario's modality cannot measure, an unknown behaviour."""
from __future__ import annotations

import io

import pytest

from simulator.core.scenario import ScenarioError, load_scenario, validate_files
from tests.core.test_scenario import BASE, errors_of, line_of, write

ITEM = """    - metric: final_distance_mm
      weight: 100
      good: 2
      bad: 10
"""

CASES = {
    # name: (replacement of ITEM / extra rubric text, field, line fragment, words)
    "unknown_metric": (ITEM.replace("final_distance_mm", "wobble_index"), "rubric.items[0].metric",
                       "metric: wobble_index", "'final_distance_mm'"),
    "unknown_target": (ITEM + "      target: middle\n", "rubric.items[0].target", "target: middle",
                       "is not one of the targets ['left', 'right']"),
    "weights_sum_to_zero": (ITEM.replace("weight: 100", "weight: 0"), "rubric.items", "  items:",
                            "the weights sum to 0"),
    "metric_not_per_target": (ITEM.replace("final_distance_mm", "elapsed_time_s") + "      target: left\n",
                              "rubric.items[0].target", "target: left", "not measured per target"),
    "nothing_applies": (ITEM.replace("final_distance_mm", "tip_visible_pct").replace("good: 2", "good: 90")
                        .replace("bad: 10", "bad: 50"), "rubric.items", "  items:",
                        "none of its metrics applies to a fluoroscopy scenario"),
    "negative_weight": (ITEM.replace("weight: 100", "weight: -5"), "rubric.items[0].weight", "weight: -5",
                        "greater than or equal to 0"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_rubric_that_cannot_score_is_refused_with_file_line_and_field(tmp_path, name):
    new, field, fragment, words = CASES[name]
    assert ITEM in BASE
    text = BASE.replace(ITEM, new, 1)
    path = write(tmp_path, text, f"{name}.yaml")
    errors = errors_of(path)
    matching = [e for e in errors if e.field == field]
    assert matching, [(e.field, e.message) for e in errors]
    assert matching[0].line == line_of(text, fragment)
    assert words in matching[0].message
    out = io.StringIO()
    assert validate_files([str(path)], out=out) != 0
    assert f"{path}:{matching[0].line}: {field}: " in out.getvalue()


def test_behaviour_costs_and_per_target_items_load(tmp_path):
    text = BASE.replace(ITEM, ITEM + """    - metric: target_coverage_pct
      target: right
      weight: 20
      good: 80
      bad: 20
""", 1).replace("  automatic_fails: [critical_contact]", """  automatic_fails: [critical_contact]
  redirections_allowed: 4
  behaviours: {advance_unseen: 8, wrong_level: fail, probe_moved_while_advancing: ignore}""")
    sc = load_scenario(write(tmp_path, text))
    assert sc.rubric.items[1].target == "right"
    assert sc.rubric.behaviours == {"advance_unseen": 8.0, "wrong_level": "fail", "probe_moved_while_advancing": "ignore"}
    assert sc.rubric.redirections_allowed == 4
    bad = text.replace("advance_unseen: 8", "sneezing: 8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, bad, "bad.yaml"))
    err = info.value.errors[0]
    assert err.field.startswith("rubric.behaviours") and err.line == line_of(bad, "sneezing: 8")
