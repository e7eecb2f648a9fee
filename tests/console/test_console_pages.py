"""The console's pages over HTTP: the same keys and roles as the API, rules checked and saved (audited),
"try it" through the real decision, models with their plots and the promotion gate, health, two languages."""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.auth import ApiKeys
from serving.console.pages import histogram_quantile, parse_basket, tier_progress
from tests.helpers.audit import audit_entries
from tests.helpers.console import NEW_MEMBER, form_token, sign_in

BROKEN = "recency_dayz between"


def text_of(page: str) -> str:
    """The page's text without tags (what a person reads)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


# --- signing in ---------------------------------------------------------------------------------


def test_pages_need_a_key_and_send_you_to_sign_in(client: TestClient) -> None:
    response = client.get("/console/models", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console/login?next=/console/models"
    assert "API key" in client.get("/console/login").text


def test_unknown_keys_and_scoring_roles_cannot_sign_in(client: TestClient, keys: ApiKeys) -> None:
    unknown = client.post("/console/login", data={"key": "nbo_made_up"})
    pos = client.post("/console/login", data={"key": keys.create("pos")})
    assert unknown.status_code == 401 and "Unknown API key" in unknown.text
    assert pos.status_code == 403 and "'pos' may not use it" in text_of(pos.text)
    assert "nbo_console_key" not in client.cookies


def test_sign_in_keeps_the_key_in_an_http_only_cookie_and_never_goes_off_site(client: TestClient, keys: ApiKeys) -> None:
    response = client.post("/console/login", data={"key": keys.create("marketer"), "next": "https://evil.example/"},
                           follow_redirects=False)
    assert response.headers["location"] == "/console/rules"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie


def test_roles_are_the_apis(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    assert client.get("/console/models").status_code == 200  # models:read
    assert "Promote" not in client.get("/console/models").text
    token = form_token(client)
    refused = client.post("/console/models/promote", data={"name": "churn", "version": "2", "csrf": token})
    assert refused.status_code == 403 and "'marketer' may not models:write" in text_of(refused.text)
    sign_in(client, keys, "data-scientist")
    page = client.get("/console/rules?edit=lapsed.yaml").text
    assert 'id="save-button"' not in page and "Saving needs the marketer role" in page
    saved = client.post("/console/rules/save", data={"file": "lapsed.yaml", "text": "x", "csrf": form_token(client)})
    assert saved.status_code == 403


def test_forms_without_their_token_are_refused(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    response = client.post("/console/rules/check", data={"file": "lapsed.yaml", "text": "id: x", "csrf": "0" * 32})
    assert response.status_code == 403 and "reload the page" in response.text


# --- rules --------------------------------------------------------------------------------------


def test_rules_page_lists_every_rule_with_status_trigger_priority_and_budget(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    page = client.get("/console/rules").text
    rows = dict(re.findall(r'<tr data-rule="([^"]*)" class="status-(\w+)"', page))
    assert rows["lapsed-30d"] == "live" and rows["new-member-first-order"] == "live" and len(rows) >= 9
    lapsed = text_of(page.split('data-rule="lapsed-30d"')[1].split("</tr>")[0])
    assert "30 days without a visit" in lapsed and "schedule.daily" in lapsed and " 40 " in lapsed
    assert "0 / 5,000 coupons" in lapsed and "¥0 / ¥150,000" in lapsed
    assert "新人首单立减 First order 5 yuan off" in page, "rule names are shown as written"


def test_an_invalid_rule_file_shows_its_file_and_line(client: TestClient, keys: ApiKeys, console_settings) -> None:
    lapsed = console_settings.rules_dir / "lapsed.yaml"
    lapsed.write_text(lapsed.read_text().replace("recency_days between", BROKEN))
    client.app.state.services.rules.reload()
    sign_in(client, keys, "marketer")
    row = client.get("/console/rules").text.split('data-rule="lapsed-30d"')[1].split("</tr>")[0]
    assert "status-invalid" in row or "invalid" in row
    assert "lapsed.yaml:8: unknown feature &#39;recency_dayz&#39; (did you mean &#39;recency_days&#39;?)" in row


def test_checking_a_broken_file_gives_line_numbers_and_writes_nothing(client: TestClient, keys: ApiKeys,
                                                                      console_settings) -> None:
    sign_in(client, keys, "marketer")
    original = (console_settings.rules_dir / "lapsed.yaml").read_text()
    response = client.post("/console/rules/check", data={
        "file": "lapsed.yaml", "text": original.replace("recency_days between", BROKEN), "csrf": form_token(client)})
    assert response.status_code == 422
    assert "rules/lapsed.yaml:8: unknown feature &#39;recency_dayz&#39;" in response.text
    assert "nbo-rule-check" not in response.text, "problems name the rules folder, not the scratch copy"
    assert (console_settings.rules_dir / "lapsed.yaml").read_text() == original


def test_checking_a_good_file_runs_its_examples_and_a_backtest_on_todays_members(client: TestClient,
                                                                                 keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    text = client.get("/console/rules?edit=lapsed.yaml").text
    original = re.search(r'<textarea name="text" id="text"[^>]*>(.*?)</textarea>', text, re.S).group(1)
    response = client.post("/console/rules/check", data={"file": "lapsed.yaml", "text": html.unescape(original),
                                                         "csrf": form_token(client)})
    assert response.status_code == 200
    page = text_of(response.text)
    assert "No errors: the file may go live" in page and "5 of 5 examples pass" in page
    backtest = re.search(r'<tr data-rule="lapsed-30d"><td>.*?</tr>', response.text.split('id="backtest"')[1]).group(0)
    members = re.search(r"Backtest on today's members (\d[\d,]*) members", page)
    assert members and int(members.group(1).replace(",", "")) > 300
    assert int(re.findall(r'class="num">([\d,]+)<', backtest)[0].replace(",", "")) > 0, "lapsed members exist in the shop"


def test_an_example_that_fails_is_shown_and_the_file_cannot_be_saved(client: TestClient, keys: ApiKeys,
                                                                     console_settings) -> None:
    sign_in(client, keys, "marketer")
    path = console_settings.rules_dir / "lapsed.yaml"
    original = path.read_text()
    wrong = original.replace("given: {recency_days: 7, tier: gold}\n    fires: false",
                             "given: {recency_days: 7, tier: gold}\n    fires: true")
    response = client.post("/console/rules/save", data={"file": "lapsed.yaml", "text": wrong, "csrf": form_token(client)})
    assert response.status_code == 422
    assert "4 of 5 examples pass" in text_of(response.text)
    assert path.read_text() == original


def test_saving_refuses_a_file_that_fails_lint_and_the_live_rules_stay(client: TestClient, keys: ApiKeys,
                                                                        console_settings) -> None:
    sign_in(client, keys, "marketer")
    services = client.app.state.services
    version = services.rules.version
    path = console_settings.rules_dir / "lapsed.yaml"
    original = path.read_text()
    response = client.post("/console/rules/save", data={
        "file": "lapsed.yaml", "text": original.replace("recency_days between", BROKEN), "csrf": form_token(client)})
    assert response.status_code == 422 and "cannot be saved" in response.text
    assert path.read_text() == original and services.rules.version == version
    assert not any(e["action"] == "rules.file_saved" for e in audit_entries(console_settings))


def test_saving_a_good_file_writes_it_audits_it_and_it_goes_live(client: TestClient, keys: ApiKeys,
                                                                 console_settings) -> None:
    key = sign_in(client, keys, "marketer")
    services = client.app.state.services
    version = services.rules.version
    text = (console_settings.rules_dir / "lapsed.yaml").read_text().replace("priority: 40", "priority: 41")
    response = client.post("/console/rules/save", data={"file": "lapsed.yaml", "text": text, "csrf": form_token(client)})
    assert response.status_code == 200, text_of(response.text)[:2000]
    assert (console_settings.rules_dir / "lapsed.yaml").read_text() == text
    assert services.rules.version != version and f"rules now live: {services.rules.version}" in response.text
    saved = [e for e in audit_entries(console_settings) if e["action"] == "rules.file_saved"]
    assert len(saved) == 1 and saved[0]["file"] == "lapsed.yaml" and saved[0]["rules"] == ["lapsed-30d"]
    assert saved[0]["actor"] == f"key:{keys.verify(key).key_id}" and key not in str(saved[0])
    row = response.text.split('data-rule="lapsed-30d"')[1].split("</tr>")[0]
    assert f"by key:{keys.verify(key).key_id}" in row and ">41<" in row, "last change and the new priority are shown"


@pytest.mark.parametrize("name", ["../escape.yaml", "coupons.yaml", "Upper.yaml", "rule.txt"])
def test_only_plain_rule_file_names_are_taken(client: TestClient, keys: ApiKeys, name: str) -> None:
    sign_in(client, keys, "admin")
    response = client.post("/console/rules/check", data={"file": name, "text": "id: x", "csrf": form_token(client)})
    assert response.status_code == 422
    assert client.get(f"/console/rules?edit={name}").status_code in (404, 422)


def test_a_bad_since_date_is_a_422_that_says_so(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    response = client.get("/console/rules?since=yesterday")
    assert response.status_code == 422 and "YYYY-MM-DD" in response.text


# --- try it -------------------------------------------------------------------------------------


def test_try_it_shows_the_offer_with_its_reason_and_the_members_card(client: TestClient, keys: ApiKeys,
                                                                    console_settings) -> None:
    sign_in(client, keys, "marketer")
    response = client.post("/console/try", data={"member": NEW_MEMBER, "basket": "SKU00001 2 6.5\nSKU00002 1 12",
                                                 "channel": "pos", "csrf": form_token(client, "/console/try")})
    assert response.status_code == 200
    offer = response.text.split('data-rule="new-member-first-order"')[1].split("</article>")[0]
    assert "新人首单立减 First order 5 yuan off" in offer and "NEW5" in offer
    assert "新人首单立减5元 (first order 5 yuan off)" in offer, "the coupon's name as coupons.yaml has it"
    assert "orders_total == 0" in offer and "basket_total &gt;= 20" in offer, "the conditions that held"
    code = re.search(r'<code class="code">(\w+)</code>', offer).group(1)
    assert client.app.state.services.coupons.get(code).member_id == NEW_MEMBER, "a real coupon was issued"
    card = text_of(response.text.split('id="member-card"')[1])
    assert "Tier regular" in card and "500 more growth value" in card and "0 points" in card
    issued = [e for e in audit_entries(console_settings) if e["action"] == "coupon.issued"]
    assert issued and issued[-1]["actor"].startswith("key:")


def test_try_it_for_a_shop_member_shows_churn_and_recommendations(client: TestClient, keys: ApiKeys, shop) -> None:
    sign_in(client, keys, "data-scientist")
    member = str(shop.transactions["member_id"].iloc[-1])
    response = client.post("/console/try", data={"member": member, "basket": "", "csrf": form_token(client, "/console/try")})
    assert response.status_code == 200
    churn = re.search(r'<dd id="churn">([\d.]+)%', response.text)
    assert churn and 0 <= float(churn.group(1)) <= 100
    assert len(re.findall(r"<li><code>", response.text.split('id="recommendations"')[1].split("</ol>")[0])) == 5


@pytest.mark.parametrize(("member", "basket", "status", "says"), [
    ("nobody", "", 404, "is not registered"),
    (NEW_MEMBER, "SKU1 two 3", 422, "line 1: qty &#39;two&#39; is not a number"),
    (NEW_MEMBER, "SKU1 -2 3", 422, "greater than 0"),
    ("bad id!", "", 404, "is not registered"),
])
def test_try_it_explains_bad_input(client: TestClient, keys: ApiKeys, member, basket, status, says) -> None:
    sign_in(client, keys, "marketer")
    response = client.post("/console/try", data={"member": member, "basket": basket,
                                                 "csrf": form_token(client, "/console/try")})
    assert response.status_code == status and says in response.text


# --- models -------------------------------------------------------------------------------------


def test_models_page_shows_champion_challengers_metrics_baselines_and_plots(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "data-scientist")
    page = client.get("/console/models").text
    champion = page.split('id="churn-v1"')[1].split("</article>")[0]
    challenger = page.split('id="churn-v2"')[1].split("</article>")[0]
    assert "champion" in champion and "challenger" in challenger and "Promote" in challenger
    assert 'data-metric="auc_roc"' in challenger and "baseline: rfm" in challenger
    plots = set(re.findall(r'/console/models/churn/2/plots/([a-z_]+\.png)', challenger))
    assert plots == {"roc.png", "calibration.png", "gain_lift.png", "feature_importance.png"}
    assert 'data-metric="ndcg_at_k"' in page.split('id="recommender-v1"')[1] and "baseline: popular" in page
    ltv = page.split('id="ltv-v1"')[1].split("</article>")[0]
    assert 'data-metric="gini"' in ltv and "baseline: bgnbd_gg" in ltv and "baseline: last_period" in ltv
    assert set(re.findall(r'/console/models/ltv/1/plots/([a-z_]+\.png)', ltv)) == {"gain.png", "calibration.png"}
    png = client.get("/console/models/churn/2/plots/roc.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get("/console/models/churn/2/plots/nothing.png").status_code == 404
    assert client.get("/console/models/churn/2/plots/..%2Fmetrics.json").status_code == 404


def test_promotion_obeys_the_gate_and_is_audited(client: TestClient, keys: ApiKeys, console_settings) -> None:
    key = sign_in(client, keys, "data-scientist")
    token = form_token(client, "/console/models")
    promoted = client.post("/console/models/promote", data={"name": "churn", "version": "2", "csrf": token})
    assert promoted.status_code == 200 and "champion is now version 2" in promoted.text
    assert client.app.state.services.models.versions["churn"] == "2", "the server swaps in the new champion"
    refused = client.post("/console/models/promote", data={"name": "churn", "version": "1", "csrf": token})
    assert refused.status_code == 409 and "not promoted" in refused.text
    missing = client.post("/console/models/promote", data={"name": "churn", "version": "99", "csrf": token})
    assert missing.status_code == 404
    actions = [(e["action"], e["version"], e["actor"]) for e in audit_entries(console_settings) if e["action"].startswith("model.")]
    key_id = keys.verify(key).key_id
    assert actions == [("model.promoted", "2", f"key:{key_id}"), ("model.promotion_refused", "1", f"key:{key_id}")]


# --- health and languages ------------------------------------------------------------------------


def test_health_shows_requests_latency_redis_degraded_mode_and_store_size(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    for _ in range(5):
        client.get("/healthz")
    page = client.get("/console/health").text
    assert re.search(r'id="latency">[\d.]+ ms / [\d.]+ ms / [\d.]+ ms', page)
    assert re.search(r'id="redis">up, [\d.]+ ms round trip', page)
    assert "no: Redis, rules and both models are ready" in page
    keys_count = int(re.search(r'id="store-size">([\d,]+) keys', page).group(1).replace(",", ""))
    assert keys_count > 400
    assert "<code>/healthz</code>" in page


def test_the_console_speaks_chinese_and_shows_rule_files_as_written(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    switched = client.get("/console/lang/zh?next=/console/rules", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/console/rules"
    page = client.get("/console/rules").text
    assert "规则" in page and "生效中" in page and "预算已用 / 总额" in page
    assert "30 days without a visit" in page and "新人首单立减 First order 5 yuan off" in page
    assert client.get("/console/lang/fr").status_code == 404
    client.cookies.clear()
    assert "使用 API 密钥登录" in client.get("/console/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text


# --- the small pure parts -------------------------------------------------------------------------


def test_histogram_quantiles_interpolate_within_buckets() -> None:
    cumulative = {0.001: 50.0, 0.002: 90.0, 0.005: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.5, cumulative) == pytest.approx(0.001)
    assert histogram_quantile(0.7, cumulative) == pytest.approx(0.0015)
    assert histogram_quantile(0.99, cumulative) == pytest.approx(0.0047)
    assert histogram_quantile(0.5, {float("inf"): 0.0}) is None


def test_basket_lines_and_tier_progress() -> None:
    from engine.settings import TierThresholds

    assert parse_basket("A1 2 6.5\n\nB2\nC3, 1, 3") == [{"sku": "A1", "qty": 2.0, "price": 6.5}, {"sku": "B2"},
                                                       {"sku": "C3", "qty": 1.0, "price": 3.0}]
    silver = tier_progress({"tier": "silver", "growth_12m": 1000, "month_spend": 150}, TierThresholds())
    assert silver.next_tier == "gold" and silver.share == pytest.approx(1000 / 1500)
    assert silver.needs == (("try.need_growth", {"amount": "500"}), ("try.need_spend", {"amount": "50"}))
    assert tier_progress({"tier": "diamond"}, TierThresholds()).next_tier is None


def test_burn_down_ends_at_what_is_left() -> None:
    from serving.console.charts import burn_down

    svg = burn_down([date(2026, 2, 1), date(2026, 2, 2)], [10, 30], total=100, used=60, unit="coupons")
    assert 'data-left="40.00"' in svg and "40 coupons used in these days" in svg


def test_the_rule_check_worker_ends_with_a_server_that_was_killed(tmp_path) -> None:
    import subprocess
    import sys
    import time

    from tests.helpers.paths import REPO

    server = subprocess.run([sys.executable, "-c", (
        "import os\n"
        "from pathlib import Path\n"
        "from engine.rules.examples import example_programme\n"
        "from serving.console import rule_files\n"
        f"report = rule_files.run_examples_apart(Path({str(REPO / 'rules')!r}), example_programme())\n"
        "print(report.ok, *rule_files._worker._processes, flush=True)\n"
        "os._exit(0)  # as a killed server: no clean-up runs\n")], cwd=REPO, capture_output=True, text=True, timeout=120)
    ok, worker = server.stdout.split()
    assert ok == "True", server.stderr
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists(), "the worker outlived its server"
