"""Models you can cite: each against its source (docs/validation.md), V2G capability, DC charger data, the
network's paging and connection setup, CE FCR's linear activation, the 9 August 2019 timeline."""

import re

import numpy as np
import pytest

from conftest import ROOT, make_scenario, run_file, vehicle_power
from v2g_testbed.analysis import validation
from v2g_testbed.cosim import scenario
from v2g_testbed.cosim.scenario import ScenarioError
from v2g_testbed.sims import catalog
from v2g_testbed.sims.network import NetworkSim
from v2g_testbed.sims.services import response_pu

DOC = (ROOT / "docs" / "validation.md").read_text()


def test_ce_fcr_is_linear_from_zero_with_the_insensitivity_as_a_band_of_its_own():
    fcr = catalog.services()["FCR-L"]
    assert response_pu(fcr, 49.9) == pytest.approx(0.5)          # 100 mHz: 50 %
    assert response_pu(fcr, 49.95) == pytest.approx(0.25)
    assert response_pu(fcr, 49.8) == pytest.approx(1.0)
    assert response_pu(fcr, 49.995) == 0.0                        # inside the 10 mHz insensitivity
    assert response_pu(fcr, 49.985) == pytest.approx(0.075)       # just outside: on the unshifted line


def test_gb_2019_timeline_within_the_stated_tolerances():
    tl = validation.gb2019_timeline()
    rec, tol = tl["record"], validation.GB2019_TOLERANCES
    rec = dict(rec, lowest_before_second_trip_hz=rec["first_nadir_hz"])
    for key in ("first_nadir_hz", "lowest_before_second_trip_hz", "before_second_trip_hz", "lfdd_at_s"):
        assert abs(tl[key] - rec[key]) <= tol[key], (key, tl[key], rec[key])
    assert tl["second_gt_after_lfdd"]
    params = catalog.frequency_profiles()["systems"]["gb_2019_08_09"]
    assert sum(t["mw"] for t in params["response"] if not t.get("replaces")) == 1022  # the ESO's holding
    assert sum(loss["mw"] for loss in params["losses"][:4]) == 1481
    assert sum(loss["mw"] for loss in params["losses"]) == 1878


def test_asking_a_car_that_cannot_export_to_export_fails_naming_it(tmp_path):
    group = {"model": "Nissan Ariya", "count": 2, "charger_kw": 10, "bus": "Bus 5"}
    path = make_scenario(tmp_path, fleet={"groups": [group]})
    with pytest.raises(ScenarioError, match=r"fleet\.groups\[0\]\.bidirectional: Nissan Ariya \(2022\) is not "
                                            r"V2G-capable .*bidirectional: false \(V1G\).*assume_v2g"):
        scenario.load(path)
    v1g = scenario.load(make_scenario(tmp_path, fleet={"groups": [dict(group, bidirectional=False)]}))
    assert v1g.groups[0]["bidirectional"] is False and not any("assumed" in n for n in v1g.model_notes)
    leaf = scenario.load(make_scenario(tmp_path, fleet={"groups": [dict(group, model="Nissan LEAF e+")]}))
    assert not any("assumed" in n for n in leaf.model_notes)  # a V2G-capable car needs no what-if
    what_if = scenario.load(make_scenario(tmp_path, fleet={"assume_v2g": True, "groups": [group]}))
    assert any("assumed V2G-capable (fleet.assume_v2g): Nissan Ariya" in n for n in what_if.model_notes)


def test_a_measured_dc_charger_replaces_the_borrowed_ac_delays(tmp_path):
    leaf = {"model": "Nissan LEAF e+", "count": 1, "charger_kw": 10, "bus": "Bus 5"}
    borrowed = scenario.load(make_scenario(tmp_path, fleet={"groups": [leaf]}))
    assert any("borrowed from onboard-charger (AC) charging tests" in n and "Nissan LEAF e+" in n
               for n in borrowed.model_notes)
    measured = scenario.load(make_scenario(tmp_path, fleet={"groups": [dict(leaf, dc_charger="Enel V2G CHAdeMO 10 kW")]}))
    vehicle = measured.groups[0]["vehicle"]
    assert (vehicle.t_a_s, vehicle.ramp_up_kw_per_s, vehicle.measured_on) == (4.0, 3.35, "dc:Enel V2G CHAdeMO 10 kW")
    assert not measured.model_notes
    # through the co-simulation: the LEAF on the measured charger starts 4 s after its command (local control)
    out = tmp_path / "out"
    verdicts = run_file(make_scenario(tmp_path, duration_s=10, fleet={"groups": [dict(leaf, dc_charger="Enel V2G CHAdeMO 10 kW")]}),
                        out)
    t, p = vehicle_power(out)
    command_ms = 1000 + catalog.network_profiles()["local"]["measurement_delay_ms"]
    assert 4000 <= t[np.flatnonzero(np.abs(p[:, 0]) > 1e-9)[0]] - command_ms <= 4010
    assert not any("borrowed" in n for n in verdicts["services"][0]["notes"])
    with pytest.raises(ScenarioError, match=r"dc_charger: Enel V2G CHAdeMO 10 kW is CHAdeMO; VW ID.3 Pro has a CCS2"):
        scenario.load(make_scenario(tmp_path, fleet={"assume_v2g": True, "groups": [
            dict(leaf, model="VW ID.3 Pro", dc_charger="Enel V2G CHAdeMO 10 kW")]}))


def _one_message(profile: dict, seed: int = 0, n: int = 400):
    sim = NetworkSim()
    sim.init("N", profile=profile, seed=seed)
    sim.create(1, "Network", cells=list(range(n)))
    nxt = sim.step(0, {"network": {"setpoints": {"a": {"vehicle": list(range(n)), "kw": [1.0] * n}}}}, 10**9)
    delivered, lost = [], []
    while nxt is not None:
        nxt_ = sim.step(nxt, {}, 10**9)
        out = sim.get_data({}).get("network", {})
        delivered += out.get("delivered", {}).get("time_ms", [])
        lost += out.get("lost", {}).get("cause", [])
        nxt = nxt_
    return np.array(delivered), lost


def test_an_idle_modem_is_reached_at_its_paging_occasion_and_a_failed_setup_is_retried():
    radio = {"name": "radio", "radio": True, "latency_ms": {"median": 0.001, "p95": 0.001},
             "promotion_ms": {"median": 100, "p95": 100}, "idle_timer_s": 10, "downlink_kbps": 1e9,
             "message_bytes": 1, "paging_cycle_ms": 1000}
    profile = {"measurement_delay_ms": 0, "hops": [radio], "retransmission_timeout_ms": 500, "max_retries": 0}
    arrived, lost = _one_message(profile)
    assert not lost and arrived.min() >= 100 and arrived.max() <= 1101  # paging wait in [0, 1 s) + 100 ms
    assert np.ptp(arrived) > 800  # the modems' paging phases spread over the cycle
    failing = dict(profile, hops=[dict(radio, connection_failure_probability=0.5)])
    arrived, lost = _one_message(failing)
    assert set(lost) == {"connection"} and 0.4 < len(lost) / 400 < 0.6
    retried = dict(failing, max_retries=3)
    arrived, lost = _one_message(retried)
    assert len(lost) < 400 * 0.5 ** 4 * 3 and arrived.max() > 1500  # retries recover most, later


@pytest.mark.parametrize("name", ["4g", "5g", "nbiot"])
def test_every_number_of_a_radio_profile_names_its_source(name):
    lines = (ROOT / "sims" / "data" / "network_profiles.yaml").read_text().splitlines()
    start = lines.index(f"  {name}:") + 1
    end = next((i for i in range(start, len(lines)) if re.match(r"^  \S", lines[i])), len(lines))
    keys = set(catalog.sources())
    for line in lines[start:end]:
        if re.search(r":\s*[-\d{]", line.split("#")[0]) and "description" not in line:
            assert "#" in line, f"{name}: no source for: {line.strip()}"
            comment = line.split("#", 1)[1]
            assert any(k in comment for k in keys), f"{name}: comment names no source key: {line.strip()}"


def test_validation_doc_holds_the_current_comparisons():
    """docs/validation.md is what `python -m v2g_testbed.analysis.validation` prints (it cannot drift from the models)."""
    for name, section in validation.SECTIONS.items():
        assert section() in DOC, f"docs/validation.md: the {name} table is stale: rerun python -m v2g_testbed.analysis.validation {name}"
    assert "python -m v2g_testbed.analysis.validation" in DOC
