"""Every shipped scenario, in both modes, gives the outputs recorded in
`tests/golden/outputs.json`, and the same seed gives the same bytes.

The golden outputs were recorded from the engine that ran one SimPy process per
session, before it was rewritten to run events per round. Regenerated since, each for a
deliberate change (`python -m tests.golden_outputs`); the rewrite itself reproduced
every synchronous golden byte for byte first:
- async: launches at one instant are one check-in and one policy call, drawn from
  uniforms keyed by launch number; no launch follows the aggregation that ends the run;
- check-in (both modes): pool and policy draws are uniforms keyed by launch, not the
  sequential selection and check-in generators; a candidate's charge is worked out
  only when it is online, as of its check-in, and written only when a session ends;
- async: a session whose report waited in the server's queue while its client was
  invited again is recorded without freeing that client a second time (the client
  could otherwise run two sessions at once);
- async: a report the server discards as too stale is recorded `stale`, not `completed`
  (every rounds.csv and every synchronous client_sessions.csv kept its bytes); summary.json
  gained the energy's parts, the fleet's standby energy and the scenario's warnings;
- profiles held against public evidence (docs/evidence.md): the AGX Orin's fp32 rate and
  busy power from a published measurement, the flagship phone's 12 GB, the Jetsons'
  precision rates and operating modes (every profile hash changed);
- device state (issue: throttling lowers power): busy power falls with the throttled
  speed, each profile's own charger (cut when hot), the flagship's 19.4 Wh battery,
  only charging devices train by default, cellular link defaults from Speedtest's
  medians, and client_sessions.csv's temperature, throttle, charge and charger columns;
  then a charger counted only while plugged in, each phase's charge as the step model
  clips it, and throttled time from its onset in cut sessions (client_sessions.csv only);
- how sure the twin is (issue: a cross-check that can fail): each session's compute drawn
  from its profile's `compute.session_cv` (a lognormal factor of mean 1, stream `compute`;
  every shipped profile states one), and client_sessions.csv's `compute_factor`,
  `timing_margin`, `p_complete`, `session_s_p05` and `session_s_p95`. Before those columns
  were added, the engine with `variability.enabled: false` gave every golden output of
  the engine before it byte for byte;
- a client never asked holds nothing (issue: engine speed, second step): each client's
  attributes (speed, load, RAM, links, data, rank, first charge, time zone, daily and
  charger windows) are its distribution's quantile at a uniform of stream `fleet` keyed
  by attribute and client, in place of sequential draws from the `fleet`, `data`,
  `battery`, `flexlora` and `availability` generators: the same distributions, other
  numbers. Every other change of that work kept every golden byte (tests/
  test_fleet_draws.py: a fleet worked out per client runs as one held whole).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .golden_outputs import CASES, GOLDEN, cpu_class, recorded_hashes, run_case


@pytest.mark.parametrize("case", CASES)
def test_shipped_scenario_reproduces_its_golden_outputs(case: str, tmp_path: Path) -> None:
    want = json.loads(GOLDEN.read_text())[case]
    got = run_case(case, tmp_path)
    assert got["summary"] == want["summary"]
    hashes, here = recorded_hashes(want), cpu_class()
    if here in hashes:
        assert got["sha256"] == hashes[here], f"outputs recorded on a '{here}' processor"
    else:  # nothing recorded on this class of processor: one of the others' outputs
        assert got["sha256"] in hashes.values(), f"none recorded on a '{here}' processor"


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = run_case("thousand_clients-async", tmp_path / "a")
    again = run_case("thousand_clients-async", tmp_path / "b")
    assert first == again
