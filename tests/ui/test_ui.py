"""The web pages in headless Chromium (Selenium), against `cw serve` on the demo cluster as
scripts/test-ui starts it. Each step checks what a person would notice; axe-core runs in
each view and no violation of impact serious or critical may remain.

Environment: CW_UI_URL, CW_UI_TOKEN (the server's shared token), CW_UI_AXE (axe.min.js),
CW_UI_SCREENSHOTS (a folder: a PNG of each view is written there; empty for none).
"""

import os
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["CW_UI_URL"].rstrip("/")
TOKEN = os.environ["CW_UI_TOKEN"]
AXE = open(os.environ["CW_UI_AXE"], encoding="utf-8").read()
SHOTS = os.environ.get("CW_UI_SCREENSHOTS", "")
CLUSTER = "demo"
# The demo's unhealthy database (deploy/demo/30-databases.yaml) and a healthy one.
UNHEALTHY_DB = "analytics-postgres"
HEALTHY_DB = "catalog-mysql"
PROBE_ID = "shop/apps/v1/Deployment/markup-probe"
PROBE_MARKUP = '<script>window.__cwPwned=1</script><img src=x onerror="window.__cwPwned=2">'


def browser():
    options = webdriver.ChromeOptions()
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={tempfile.mkdtemp(prefix='cw-ui-chromium-')}",
    ]:
        options.add_argument(flag)
    if os.path.exists("/usr/bin/chromium"):
        options.binary_location = "/usr/bin/chromium"
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def wait(driver, condition, what, seconds=15):
    try:
        return WebDriverWait(driver, seconds).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what} at {driver.current_url}")


def main_text(driver):
    return driver.find_element(By.TAG_NAME, "main").text


def axe_check(driver, view):
    """axe-core in the page: no violation of impact serious or critical."""
    driver.execute_script(AXE)
    result = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(function (r) { done(r.violations); })"
        ".catch(function (e) { done({error: String(e)}); });"
    )
    assert not isinstance(result, dict), f"axe failed on {view}: {result}"
    bad = [v for v in result if v.get("impact") in ("serious", "critical")]
    detail = "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in bad
    )
    assert not bad, f"axe on {view}: {detail}"
    minor = ", ".join(f"{v['id']} ({v['impact']})" for v in result)
    print(f"ok: axe on {view}: no serious or critical violation{'; lesser: ' + minor if minor else ''}")


def shot(driver, name):
    if not SHOTS:
        return
    os.makedirs(SHOTS, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height, 600), 2400))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(width, 900)


def sign_in(driver, token):
    driver.get(URL + "/sign-in")
    field = wait(driver, EC.presence_of_element_located((By.ID, "token")), "the token field")
    field.clear()
    field.send_keys(token)
    field.send_keys(Keys.ENTER)


def test_a_wrong_token_sees_nothing(driver):
    driver.get(URL + "/")
    wait(driver, EC.url_contains("/sign-in"), "the redirect to the sign-in")
    axe_check(driver, "sign-in")
    shot(driver, "sign-in")
    sign_in(driver, "not-" + TOKEN)
    error = wait(driver, EC.presence_of_element_located((By.ID, "sign-in-error")), "the refusal")
    assert "refused" in error.text or "unknown" in error.text, error.text
    for path in ["/", "/search?q=postgres", f"/object?cluster={CLUSTER}&id=" + urllib.parse.quote(PROBE_ID, safe="")]:
        driver.get(URL + path)
        wait(driver, EC.url_contains("/sign-in"), f"{path} to send to the sign-in")
        source = driver.page_source
        for secret in (UNHEALTHY_DB, HEALTHY_DB, "markup-probe", CLUSTER + "</"):
            assert secret not in source, f"{path} shows {secret!r} without a session"
    print("ok: a wrong token sees nothing")


def test_overview_lists_the_cluster_and_its_unhealthy_database(driver):
    sign_in(driver, TOKEN)
    wait(driver, EC.presence_of_element_located((By.ID, "fleet")), "the overview")
    text = main_text(driver)
    assert CLUSTER in text, text
    failing = driver.find_element(By.CSS_SELECTOR, "#fleet section[aria-labelledby='h-failing']").text
    assert UNHEALTHY_DB in failing, failing
    assert HEALTHY_DB not in failing, failing
    bar = driver.find_element(By.CSS_SELECTOR, "svg.bar")
    assert "Failed" in bar.get_attribute("aria-label") or "InProgress" in bar.get_attribute("aria-label")
    axe_check(driver, "overview")
    shot(driver, "overview")
    # The fragment refreshes in place, without a full reload.
    driver.execute_script("window.__cwSameDocument = true;")
    wait(driver, EC.text_to_be_present_in_element((By.ID, "updated"), "Updated at"), "the refresh", 25)
    assert driver.execute_script("return window.__cwSameDocument === true"), "the page reloaded"
    assert CLUSTER in main_text(driver)
    print("ok: the overview lists the cluster and its unhealthy database, and refreshes in place")


def test_keyboard_slash_focuses_the_search_box(driver):
    driver.find_element(By.TAG_NAME, "body").send_keys("/")
    active = driver.switch_to.active_element
    assert active.get_attribute("id") == "q", active.get_attribute("outerHTML")[:200]
    print("ok: / focuses the search box")


def test_a_health_filter_shows_the_unhealthy_objects(driver):
    driver.get(URL + "/")
    Select(driver.find_element(By.ID, "f-health")).select_by_value("unhealthy")
    driver.find_element(By.CSS_SELECTOR, "button[value='search']").click()
    wait(driver, EC.url_contains("health=unhealthy"), "the search URL")
    hits = driver.find_elements(By.CSS_SELECTOR, "li.hit")
    names = [h.find_element(By.CSS_SELECTOR, ".hit-name").text for h in hits]
    assert any(UNHEALTHY_DB in n for n in names), names
    assert not any(HEALTHY_DB in n for n in names), names
    for h in hits:
        badge = h.find_element(By.CSS_SELECTOR, ".badge").text
        assert badge in ("Failed", "InProgress"), (h.text, badge)
    axe_check(driver, "search (health=unhealthy)")
    shot(driver, "search")
    print(f"ok: health=unhealthy lists {len(hits)} objects, {UNHEALTHY_DB} among them")
    return driver.current_url


def test_ask_shows_the_database_types_and_instances(driver):
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys("what databases are running?")
    Select(driver.find_element(By.ID, "f-health")).select_by_value("")
    driver.find_element(By.CSS_SELECTOR, "button[value='ask']").click()
    wait(driver, EC.url_contains("mode=ask"), "the ask URL")
    types = driver.find_elements(By.CSS_SELECTOR, "section.type")
    headings = [t.find_element(By.TAG_NAME, "h2").text for t in types]
    assert types, main_text(driver)
    text = main_text(driver)
    for db in (UNHEALTHY_DB, HEALTHY_DB):
        assert db in text, f"{db} not among the answers: {text[:2000]}"
    assert f"in cluster {CLUSTER}" in text, text[:2000]
    axe_check(driver, "ask")
    shot(driver, "ask")
    print(f"ok: ask answers with types {headings}")


def test_back_restores_the_previous_view(driver, search_url):
    driver.back()
    wait(driver, EC.url_to_be(search_url), "back to the search")
    health = Select(driver.find_element(By.ID, "f-health")).first_selected_option.get_attribute("value")
    assert health == "unhealthy", f"the health filter shows {health!r} after back"
    query = driver.find_element(By.ID, "q").get_attribute("value")
    assert query == "", f"the search box shows {query!r} after back"
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "li.hit .hit-name")]
    assert any(UNHEALTHY_DB in n for n in names), names
    print("ok: back restores the filtered search")


def test_the_object_page_shows_the_reason(driver):
    hit = next(
        h for h in driver.find_elements(By.CSS_SELECTOR, "li.hit")
        if UNHEALTHY_DB in h.find_element(By.CSS_SELECTOR, ".hit-name").text
    )
    reason = hit.find_element(By.CSS_SELECTOR, ".reason").text
    assert reason, hit.text
    hit.find_element(By.CSS_SELECTOR, ".hit-name").click()
    wait(driver, EC.url_contains("/object?"), "the object page")
    facts = driver.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert reason in facts, (reason, facts)
    assert UNHEALTHY_DB in driver.find_element(By.TAG_NAME, "h1").text
    live = driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby='h-live']").text
    assert "Health now" in live, live
    axe_check(driver, "object")
    shot(driver, "object")
    print(f"ok: the object page shows the reason {reason!r} and live details")


def test_markup_is_shown_as_text(driver):
    driver.get(f"{URL}/object?cluster={CLUSTER}&id=" + urllib.parse.quote(PROBE_ID, safe=""))
    wait(driver, EC.presence_of_element_located((By.TAG_NAME, "h1")), "the probe's page")
    time.sleep(0.5)
    text = main_text(driver)
    assert PROBE_MARKUP in text, text
    assert driver.execute_script("return window.__cwPwned === undefined"), "a script of the annotation ran"
    assert not driver.find_elements(By.CSS_SELECTOR, "main script, main img"), "markup became elements"
    axe_check(driver, "object (markup)")
    print("ok: an annotation with markup is shown as text and nothing of it runs")


def test_narrow_and_dark(driver):
    """The overview at 375 px, in the dark theme: screenshots only, and axe at that width."""
    driver.set_window_size(375, 900)
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    driver.get(URL + "/")
    wait(driver, EC.presence_of_element_located((By.ID, "fleet")), "the overview")
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth > document.documentElement.clientWidth + 1"
    )
    assert not overflow, "the page scrolls sideways at 375 px"
    axe_check(driver, "overview at 375 px, dark")
    shot(driver, "overview-375-dark")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.set_window_size(1280, 900)
    print("ok: readable at 375 px in the dark theme")


def test_sign_out(driver):
    driver.get(URL + "/")
    driver.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
    wait(driver, EC.url_contains("/sign-in"), "the sign-in after sign-out")
    driver.get(URL + "/")
    wait(driver, EC.url_contains("/sign-in"), "the overview to need a sign-in again")
    print("ok: sign-out ends the session")


def main():
    driver = browser()
    try:
        test_a_wrong_token_sees_nothing(driver)
        test_overview_lists_the_cluster_and_its_unhealthy_database(driver)
        test_keyboard_slash_focuses_the_search_box(driver)
        search_url = test_a_health_filter_shows_the_unhealthy_objects(driver)
        test_ask_shows_the_database_types_and_instances(driver)
        test_back_restores_the_previous_view(driver, search_url)
        test_the_object_page_shows_the_reason(driver)
        test_markup_is_shown_as_text(driver)
        test_narrow_and_dark(driver)
        test_sign_out(driver)
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print("all browser checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
