"""Plots and the HTML report: files that are real images, and a page that loads in a real browser."""

import json
import os
import shutil

import matplotlib.image as mpimg
import numpy as np
import pytest

from conftest import make_scenario, run_file, v2g_cli

PLOTS = ("response.png", "models.png", "delay_budget.png", "latency.png", "grid.png")


@pytest.fixture(scope="module")
def run_4g(tmp_path_factory):
    """A run without plots (the default), whose plots the report's step draws afterwards from the record."""
    from v2g_testbed.analysis.report import ensure_plots

    base = tmp_path_factory.mktemp("report")
    # a 4G hub of its own (each shipped scenario runs once per suite, in test_run.py)
    path = make_scenario(base, name="hub-4g", duration_s=12, network={"profile": "4g"}, fleet__telemetry_hz=20,
                         fleet__groups=[{"model": m, "count": 10, "charger_kw": 10, "bus": "Bus 5"}
                                        for m in ("Nissan Ariya", "VW ID.3 Pro", "Tesla Model 3 LR dual motor")],
                         services=[{"id": "DC-L", "contracted_mw": 0.25}],
                         outputs={"sample_ms": 10, "vehicle_sample_ms": 100, "plots": False})
    out = base / "run"
    run_file(path, out)
    assert not list(out.glob("*.png"))
    assert {p.name for p in ensure_plots(out)} == set(PLOTS)
    assert ensure_plots(out) == []  # drawn once
    return out


@pytest.mark.parametrize("name", PLOTS)
def test_each_plot_is_a_non_trivial_image(run_4g, name):
    path = run_4g / name
    assert path.stat().st_size > 15_000
    image = mpimg.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert np.unique(image.reshape(-1, image.shape[-1]), axis=0).shape[0] > 50  # not a blank canvas


def test_local_run_has_no_latency_plot_and_plots_can_be_turned_off(scenario_file, tmp_path):
    out = tmp_path / "a"
    run_file(scenario_file(outputs={"sample_ms": 10, "vehicle_sample_ms": 10, "plots": True}), out)
    assert (out / "response.png").is_file() and not (out / "latency.png").exists()
    out_b = tmp_path / "b"
    run_file(scenario_file(outputs={"sample_ms": 10, "vehicle_sample_ms": 10, "plots": False}), out_b)
    assert not list(out_b.glob("*.png"))


def test_report_command_embeds_everything(run_4g, tmp_path):
    result = v2g_cli("report", str(run_4g), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == len(PLOTS)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    verdicts = json.loads((run_4g / "verdicts.json").read_text())
    assert verdicts["services"][0]["desk_differs_because"] or verdicts["services"][0]["desk"]["eligible"] is False
    bad = v2g_cli("report", str(tmp_path))
    assert bad.returncode == 2 and "not the output directory" in bad.stderr


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: install Debian's chromium and chromium-driver (.ci/run does)")
        pytest.skip("no chromium/chromedriver: apt-get install chromium chromium-driver to run the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_report_in_a_real_browser(run_4g):
    page = v2g_cli("report", str(run_4g))
    assert page.returncode == 0, page.stderr
    browser = _browser()
    try:
        browser.get((run_4g / "report.html").as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        rows = browser.find_elements("css selector", "#verdicts tr")
        assert len(rows) == 2 and "DC-L" in rows[1].text and "NOT ELIGIBLE" in rows[1].text
        images = browser.find_elements("css selector", "figure.plot img")
        assert len(images) == len(PLOTS)
        for img in images:
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 500
            assert img.is_displayed()
        browser.save_screenshot(str(run_4g / "report-screenshot.png"))
    finally:
        browser.quit()
    assert (run_4g / "report-screenshot.png").stat().st_size > 20_000
