"""Re-observe, in the real form, every entry of trainkit/form/rjsf_observations.json (what
rjsf submits for a probe schema of each construct), and check that `trainkit validate` warns
exactly for the entries that lose or refuse values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.form import harness
from trainkit.form import initial, rjsf_findings

OBSERVATIONS = list(rjsf_findings.observations().values())


def probe_schema(entry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": entry["probe"]}


@pytest.mark.parametrize("entry", OBSERVATIONS, ids=[e["id"] for e in OBSERVATIONS])
def test_observation_still_holds(browser, tmp_path: Path, entry: dict[str, Any]) -> None:
    schema = probe_schema(entry)
    arch = harness.write_arch(tmp_path / "arch", schema)
    with harness.open_form(browser, arch, tmp_path) as form:
        assert form.rjsf_state()["train"] == initial.initial_values(schema)
        form.page.fill("#root_anchor", "2")
        form.page.wait_for_timeout(100)
        outcome = form.save()
        saved_file = tmp_path / "train_config.json"
        if entry["submitted"] is None:
            assert outcome["ok"] is False, outcome
            assert not saved_file.exists()
        else:
            assert outcome["ok"] is True, outcome
            assert json.loads(saved_file.read_text()) == entry["submitted"]


@pytest.mark.parametrize("entry", OBSERVATIONS, ids=[e["id"] for e in OBSERVATIONS])
def test_validator_warns_where_values_are_lost(entry: dict[str, Any]) -> None:
    found = [oid for oid, _ in rjsf_findings.findings(probe_schema(entry))]
    if entry["warning"] is None:
        assert found == []
        # A construct recorded as safe: what rjsf submits is what the form started with.
        assert entry["submitted"] == {**initial.initial_values(probe_schema(entry)), "anchor": 2}
    else:
        assert found == [entry["id"]]
        assert entry["submitted"] != {**initial.initial_values(probe_schema(entry)), "anchor": 2}
