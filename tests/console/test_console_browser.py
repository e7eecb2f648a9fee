"""The console end to end in headless Chromium (Debian's package, driven by Playwright): a real server
on a loopback port, real Redis, rules, models and MLflow store. Screenshots and page timings go to
test-artifacts/console/ (ignored by git)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.redis_server import free_port
from serving.auth import ApiKeys
from tests.helpers.console import NEW_MEMBER
from tests.helpers.paths import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: `make test` installs Debian's chromium when it runs as root with apt")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra: pip install -e '.[dev]'")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "page-timings.json").write_text(json.dumps(TIMINGS, indent=2))


@pytest.fixture
def server(console_app) -> Iterator[str]:
    """The console's app served by uvicorn on a free loopback port, in this process; stopped after the test."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(console_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def timed(page, name: str) -> None:
    """The page's load time as the browser measured it (navigation start to load end), in ms."""
    TIMINGS[name] = round(page.evaluate("performance.getEntriesByType('navigation')[0].duration"), 1)


def sign_in(page, base: str, key: str, target: str = "/console/rules") -> None:
    page.goto(base + target)
    assert "/console/login" in page.url, "a page without a key asks for one"
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_url(f"**{target}")


def test_a_marketer_reads_rules_checks_a_broken_file_and_tries_an_offer(page, server: str, keys: ApiKeys) -> None:
    sign_in(page, server, keys.create("marketer"))
    timed(page, "rules")
    lapsed = page.locator('tr[data-rule="lapsed-30d"]')
    assert lapsed.locator(".badge").inner_text() == "live"
    assert "0 / 5,000 coupons" in lapsed.inner_text()
    assert page.locator('tr[data-rule="new-member-first-order"]').inner_text().startswith("新人首单立减")
    shot(page, "01-rules")

    lapsed.get_by_role("link", name="lapsed.yaml").click()
    text = page.input_value("#text")
    assert "id: lapsed-30d" in text
    page.fill("#text", text.replace("recency_days between", "recency_dayz between"))
    page.click("#check-button")
    problems = page.locator("#lint-problems")
    assert "rules/lapsed.yaml:8: unknown feature 'recency_dayz' (did you mean 'recency_days'?)" in problems.inner_text()
    assert page.locator("#check-verdict").inner_text() == "The file has errors; it cannot be saved."
    shot(page, "02-check-broken-rule")

    page.get_by_role("link", name="Try it").click()
    page.fill("#member", NEW_MEMBER)
    page.fill("#basket", "SKU00001 2 6.5\nSKU00002 1 12")
    page.click("#ask")
    offer = page.locator('article.offer[data-rule="new-member-first-order"]')
    assert "新人首单立减 First order 5 yuan off" in offer.locator("h3").inner_text()
    assert "新人首单立减5元 (first order 5 yuan off)" in offer.locator(".coupon-name").inner_text(), "as written"
    assert "NEW5" in offer.locator(".coupon").inner_text()
    assert "basket_total >= 20" in offer.inner_text(), "the reason lists the conditions that held"
    code = offer.locator("code.code").inner_text()
    assert len(code) == 16 and page.locator("#tier").inner_text() == "regular"
    assert "500 more growth value" in page.locator("#tier-progress").inner_text()
    shot(page, "03-try-it")

    page.get_by_role("link", name="Health").click()
    timed(page, "health")
    assert page.locator("#degraded").inner_text().startswith("no")
    assert " ms / " in page.locator("#latency").inner_text() and "keys" in page.locator("#store-size").inner_text()
    shot(page, "04-health")

    page.click("#lang-zh")
    page.wait_for_url("**/console/health")
    assert page.locator("h1").inner_text() == "运行状况"
    page.get_by_role("link", name="规则").click()
    assert page.locator('tr[data-rule="lapsed-30d"] .badge').inner_text() == "生效中"
    assert "30 days without a visit" in page.locator('tr[data-rule="lapsed-30d"]').inner_text(), "names as written"
    shot(page, "05-rules-zh")


def test_a_data_scientist_compares_models_sees_their_plots_and_promotes(page, server: str, keys: ApiKeys) -> None:
    sign_in(page, server, keys.create("data-scientist"), "/console/models")
    timed(page, "models")
    challenger = page.locator("#churn-v2")
    assert "challenger" in challenger.locator("h3").inner_text()
    auc = challenger.locator('tr[data-metric="auc_roc"] td')
    assert float(auc.nth(0).inner_text()) > 0.5 and auc.count() >= 2, "the model and its baselines"
    challenger.locator("summary").click()
    roc = challenger.locator('img[alt="roc.png"]')
    roc.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=roc.element_handle())
    shot(page, "06-models")

    challenger.get_by_role("button", name="Promote").click()
    assert "champion is now version 2" in page.locator("#notice").inner_text()
    assert "champion" in page.locator("#churn-v2 h3").inner_text()
    page.locator("#churn-v1").get_by_role("button", name="Promote").click()
    assert "not promoted" in page.locator("#error").inner_text(), "the CLI's gate: a worse version is refused"
    shot(page, "07-promotion-refused")


def test_a_marketer_cannot_promote_and_signing_out_asks_for_the_key_again(page, server: str, keys: ApiKeys) -> None:
    sign_in(page, server, keys.create("marketer"), "/console/models")
    assert page.locator("#churn-v2").count() == 1
    assert page.get_by_role("button", name="Promote").count() == 0
    page.click("#logout")
    page.goto(server + "/console/try")
    assert "/console/login" in page.url


def test_a_coupon_issued_by_try_it_and_redeemed_shows_in_the_rules_measurement(page, server: str, keys: ApiKeys) -> None:
    sign_in(page, server, keys.create("marketer"), "/console/try")
    page.fill("#member", NEW_MEMBER)
    page.fill("#basket", "SKU00001 4 6.5")
    page.click("#ask")
    code = page.locator('article.offer[data-rule="new-member-first-order"] code.code').inner_text()
    redeemed = page.request.post(f"{server}/v1/coupons/{code}/redeem", data={"member_id": NEW_MEMBER, "store_id": "S001"},
                                 headers={"Authorization": f"Bearer {keys.create('pos')}"})
    assert redeemed.status == 200, redeemed.text()

    page.get_by_role("link", name="Rules").click()
    row = page.locator('tr[data-rule="new-member-first-order"]')
    assert row.locator("td.redemption").inner_text() == "100.0%", "1 coupon issued, 1 redeemed"
    assert row.locator("td.fires svg rect").count() >= 1
    assert float(row.locator("td.fires").inner_text().split()[0]) > 0
    burn = row.locator("svg.burn")
    assert burn.get_attribute("data-total") == "100000.00" and burn.get_attribute("data-left") == "99995.00"
    assert "no data yet" in page.locator('tr[data-rule="lapsed-30d"] td.redemption').inner_text(), "nothing issued"
    shot(page, "08-rules-measured")


@pytest.fixture
def other_site() -> Iterator[tuple[str, dict[str, str]]]:
    """Another web site (``localhost``: not the console's ``127.0.0.1``) serving whatever page a test puts in the dict."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{httpd.server_address[1]}", pages
    httpd.shutdown()
    thread.join(timeout=5)


def test_another_site_cannot_post_a_form_in_the_users_name(page, server: str, keys: ApiKeys, other_site,
                                                          console_settings) -> None:
    """A signed-in marketer visits a page of another site that submits a hidden form to the console's save: the
    browser does not send the SameSite=Strict session cookie, so the console asks to sign in and saves nothing;
    and a form posted from the console's own origin without the session's token is refused."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    sign_in(page, server, keys.create("marketer"))
    for target in ("/console/rules", "/console/try", "/console/models", "/console/health", "/console/rules?edit=lapsed.yaml"):
        page.goto(server + target)
    assert not [p for p in problems if "Content Security Policy" in p], problems  # nothing the policy blocks

    rule_file = console_settings.rules_dir / "lapsed.yaml"
    original = rule_file.read_text()
    base, pages = other_site
    pages["/win-a-prize"] = f"""<!doctype html><body><form id="f" method="post" action="{server}/console/rules/save">
      <input name="file" value="lapsed.yaml"><input name="text" value="id: lapsed-30d"><input name="csrf" value="">
    </form><script>document.getElementById('f').submit()</script></body>"""
    page.goto(f"{base}/win-a-prize")
    page.wait_for_url(f"{server}/console/**")
    assert "/console/login" in page.url, "the session cookie did not go with the other site's post"
    assert rule_file.read_text() == original

    page.goto(server + "/console/rules")
    assert "/console/login" not in page.url, "still signed in on the console itself"
    page.evaluate("""() => {
        const form = Object.assign(document.createElement('form'), {method: 'post', action: '/console/rules/save'});
        for (const [name, value] of [['file', 'lapsed.yaml'], ['text', 'id: lapsed-30d'], ['csrf', '']]) {
            form.append(Object.assign(document.createElement('input'), {name, value}));
        }
        document.body.append(form);
        form.submit();
    }""")
    page.wait_for_load_state()
    assert "reload the page" in page.locator("main").inner_text(), "no token, no save"
    assert rule_file.read_text() == original
    shot(page, "09-cross-site-form-refused")
