"""`archcalc report`'s page in a real browser: headless Chromium through Selenium.

Outside CI the test is skipped, with the reason, when Chromium, its driver or Selenium is
missing; with CI set, a missing browser is a failure. Expected numbers come from
shared/reference/googlenet.md and Table 1's filter counts, not from archcalc.
"""
import os
import re
import shutil

import pytest
from typer.testing import CliRunner

from archcalc.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or \
    shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")

TOTAL_PARAMS = "6,998,552"
TOTAL_MACS = "1,582,671,872"
# 3a: weights of its six convolutions on 192 channels (Table 1: 64, 96→128, 16→32, pool→32)
# and one bias per filter
PARAMS_3A = (192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
             + 64 + 96 + 128 + 16 + 32 + 32)           # 163,328 + 368 = 163,696
MACS_3A = "128,049,152"


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI needs the browser test to run: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install selenium)")
    if CHROMIUM is None or CHROMEDRIVER is None:
        _unavailable("chromium and chromedriver are needed (Debian: apt install chromium "
                      "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield d
    d.quit()


def test_googlenet_page_in_chromium(driver, tmp_path, record_property):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = tmp_path / "googlenet.html"
    result = CliRunner().invoke(app, ["report", "googlenet", "-o", str(page)])
    assert result.exit_code == 0, result.output
    driver.get(page.as_uri())

    # the table's totals, as the browser shows them
    foot = driver.find_element(By.CSS_SELECTOR, "#rows tfoot").text
    assert TOTAL_PARAMS in foot and TOTAL_MACS in foot

    # a node of the diagram, clicked: its row's numbers in the details panel
    panel = driver.find_element(By.ID, "details")
    assert panel.get_attribute("aria-live") == "polite"
    driver.find_element(By.ID, "row-3a").click()
    text = panel.text
    assert f"{PARAMS_3A:,}" in text and MACS_3A in text and "28×28×256" in text
    assert "159K" in text            # the paper's figure for 3a

    # by keyboard: a node is focusable, Enter shows its numbers
    node = driver.find_element(By.ID, "row-conv2")
    assert node.get_attribute("tabindex") == "0"
    driver.execute_script("arguments[0].focus()", node)
    node.send_keys(Keys.ENTER)
    assert "359,661,568" in panel.text       # conv2's MACs (reference table)

    # sorting by MACs reorders the rows: largest first, conv2 (359.7M) on top
    def names():
        return [tr.get_attribute("data-row")
                for tr in driver.find_elements(By.CSS_SELECTOR, "#rows tbody tr")]

    headers = driver.find_elements(By.CSS_SELECTOR, "#rows thead th")
    column = [h.text for h in headers].index("MACs") + 1
    header = headers[column - 1]

    def macs():
        cells = driver.find_elements(By.CSS_SELECTOR, f"#rows tbody tr > :nth-child({column})")
        return [int(c.get_attribute("data-v") or -1) for c in cells]
    before = names()
    header.find_element(By.TAG_NAME, "button").click()
    after = names()
    assert after != before and sorted(after) == sorted(before)
    assert after[0] == "conv2" and macs() == sorted(macs(), reverse=True)
    assert header.get_attribute("aria-sort") == "descending"

    # flagged figures are marked with text, not colour alone
    conv1 = driver.find_element(By.CSS_SELECTOR, '#rows tr[data-row="conv1"]')
    assert "✗" in conv1.text

    shot = tmp_path / "googlenet-report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 0
    print(f"\nscreenshot: {shot}")
    record_property("screenshot", str(shot))

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"console errors (screenshot: {shot}): {errors}"
