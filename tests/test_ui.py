"""``mlnb ui`` in a real browser: Debian's Chromium driven by Playwright against a running server.

One synthetic store (pipelines of one model with their children, a sweep, registered
versions and promotions, a failed run, a tampered run and a run whose notebook output runs
script) and one ``mlnb ui`` process serve every test of this module. Each page is opened,
the filter typed, runs selected and compared, lineage links followed, and a screenshot of
each page kept under ``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.xdist_group("ui")

SHOTS = ROOT / "test-artifacts" / "ui"
WRITE_TOKEN = "write-secret-4711"
PROBE = """<div id="probe">pending</div>
<script>
document.getElementById("probe").textContent = "running";  // at once: the script ran
(async function () {
  const out = {};
  try { out.cookie = "read:" + document.cookie; } catch (e) { out.cookie = "error:" + e.name; }
  try { out.parent = "read:" + window.parent.document.body.innerHTML.slice(0, 40); } catch (e) { out.parent = "error:" + e.name; }
  try { out.top = "read:" + window.top.location.href; } catch (e) { out.top = "error:" + e.name; }
  try { const r = await fetch("/runs"); out.fetch = "read:" + r.status + ":" + (await r.text()).slice(0, 40); }
  catch (e) { out.fetch = "error:" + e.name; }
  try { out.storage = "read:" + window.localStorage.length; } catch (e) { out.storage = "error:" + e.name; }
  document.getElementById("probe").textContent = JSON.stringify(out);
})();
</script>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The store: {"store": Store, "made": what generate() returned, "evil", "failed", "tampered"}."""
    from mlnb.store import Store
    from mlnb.ui.sample import generate

    path = tmp_path_factory.mktemp("ui") / "store"
    at = datetime(2026, 2, 1, tzinfo=timezone.utc)
    made = generate(path, batches=12, models=1, sweep=12, extra_runs=[
        {"template": "report", "started": at, "parameters": {"note": "script"}, "scraps": {"n_rows": 1},
         "extra_html": PROBE},
        {"template": "train", "started": at.replace(hour=1), "parameters": {"max_iter": 1}, "scraps": {},
         "status": "failed"},
        {"template": "drift", "started": at.replace(hour=2), "parameters": {"current": "x.csv"},
         "scraps": {"drift_share": 0.1}},
    ])
    evil, failed, tampered = made["extra"]
    html = path / tampered / "notebook.html"
    html.write_text(html.read_text().replace("Drift analysis", "Drift analysis (edited)"))
    return {"store": Store(path), "made": made, "evil": evil, "failed": failed, "tampered": tampered}


@pytest.fixture(scope="module")
def server(sample, tmp_path_factory):
    """``mlnb ui`` on a free port with a write token; its base URL."""
    token = tmp_path_factory.mktemp("tokens") / "write.token"
    token.write_text(WRITE_TOKEN + "\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLNB_STORE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlnb", "ui", "--store", str(sample["store"].path), "--port", str(port),
         "--write-token-file", str(token)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/runs", timeout=5).read()
            break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"mlnb ui did not start: {err.decode()[-2000:]}")
            time.sleep(0.2)
    yield base
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' installs playwright")
    if not os.path.exists("/usr/bin/chromium"):
        from .test_browser import _install_chromium

        reason = _install_chromium()
        if reason:
            pytest.skip(reason)
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def _open(page, url: str):
    """Go to ``url`` and wait until the page and its notebook frame stop loading (a click
    while the frame still loads can be lost)."""
    response = page.goto(url)
    page.wait_for_load_state("networkidle")
    return response


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _row_ids(page) -> list[str]:
    return page.locator("#runs tbody tr[data-run]").evaluate_all("rows => rows.map(r => r.dataset.run)")


# -- runs ---------------------------------------------------------------------------------------


def test_runs_page_lists_newest_first_with_status_and_verify_badges_and_pages(page, server, sample):
    store = sample["store"]
    _open(page, server + "/runs")
    newest = [i["id"] for i in store.list_runs(limit=50)]
    assert _row_ids(page) == newest
    assert page.locator("h1").inner_text().startswith(f"Runs {len(store.run_ids())}")
    shot(page, "runs")
    failed = page.locator(f'tr[data-run="{sample["failed"]}"]')
    assert failed.locator(".badge.failed").inner_text() == "failed"
    tampered = page.locator(f'tr[data-run="{sample["tampered"]}"]')
    assert tampered.locator(".badge.changed").count() == 1
    assert page.locator(f'tr[data-run="{newest[-1]}"] .badge.intact').count() == 1
    page.click("a[rel=next]")
    assert _row_ids(page) == [i["id"] for i in store.list_runs()][50:100]
    assert "page 2 of" in page.locator(".pager").inner_text()


def test_filter_typed_in_the_browser_keeps_what_the_store_keeps(page, server, sample):
    expr = "template = 'train' and metrics.f1 > 0.8"
    _open(page, server + "/runs")
    page.fill("#filter", expr)
    page.press("#filter", "Enter")
    page.wait_for_url("**/runs?filter=*")
    expected = [i["id"] for i in sample["store"].list_runs(filter=expr)][:50]
    assert expected and _row_ids(page) == expected
    assert page.locator("#filter").input_value() == expr
    shot(page, "runs-filtered")


def test_a_filter_that_does_not_parse_says_where_and_what_was_expected(page, server):
    _open(page, server + "/runs")
    page.fill("#filter", "metrics.f1 >")
    with page.expect_response(lambda r: "/runs?" in r.url) as info:
        page.press("#filter", "Enter")
    assert info.value.status == 400
    error = page.locator("#filter-error").inner_text()
    assert error == "filter 'metrics.f1 >' at position 13: expected a value ('text', a number, true, false or null), " \
                    "found the end of the filter"
    assert _row_ids(page) == []
    shot(page, "runs-filter-error")


def test_runs_sort_by_a_metric(page, server, sample):
    _open(page, server + "/runs?filter=template+%3D+%27train%27&sort=metrics.f1&order=desc")
    ids = _row_ids(page)
    f1 = {i["id"]: (i["scraps"].get("metrics") or {}).get("f1") for i in sample["store"].list_runs(template="train")}
    shown = [f1[i] for i in ids if f1[i] is not None]
    assert len(shown) >= 10 and shown == sorted(shown, reverse=True)
    # runs without the metric come last
    assert all(f1[i] is None for i in ids[len(shown):])


# -- compare ------------------------------------------------------------------------------------


def test_select_runs_and_compare_them_with_only_differences_and_charts(page, server, sample):
    sweep = sample["made"]["sweep"]
    _open(page, server + "/runs")
    page.fill("#filter", f"parent = '{sweep}'")
    page.press("#filter", "Enter")
    page.wait_for_url("**/runs?filter=*")
    boxes = page.locator("#runs input[type=checkbox]")
    assert boxes.count() == 12
    for k in range(boxes.count()):
        boxes.nth(k).check()
    page.click("#compare-button")
    page.wait_for_url("**/compare?run=*")
    heads = page.locator("#compare thead th a")
    assert sorted(heads.evaluate_all("as => as.map(a => a.title)")) == sorted(sample["made"]["sweep_runs"])
    rows = page.locator("#compare tbody tr")
    every = rows.count()
    assert page.locator("#compare tr[data-name='parameter:max_iter'].differs").count() == 1
    assert page.locator("#compare tr[data-name='parameter:target'].same").count() == 1
    shot(page, "compare")
    page.check("#only-differences")
    visible = [r for r in range(every) if rows.nth(r).is_visible()]
    assert 0 < len(visible) < every
    assert all("differs" in rows.nth(r).get_attribute("class") for r in visible)
    assert not page.locator("#compare tr[data-name='parameter:target']").is_visible()
    # numeric scraps as charts, the sweep as parallel coordinates: one line per run
    assert page.locator("#parallel svg polyline.line").count() == 12
    assert page.locator("#bar-charts svg").count() >= 2
    shot(page, "compare-only-differences")
    # a line is thin: click it where it is drawn, as the browser dispatches it
    page.locator("#parallel svg a polyline").first.dispatch_event("click")
    page.wait_for_url("**/runs/*")
    assert page.locator("h1 .mono").inner_text() in sample["made"]["sweep_runs"]


def test_compare_fifty_runs_side_by_side(page, server, sample):
    ids = [i["id"] for i in sample["store"].list_runs(limit=50)]
    _open(page, server + "/compare?" + "&".join(f"run={i}" for i in ids))
    assert page.locator("h1").inner_text() == "Compare 50 runs"
    assert page.locator("#compare thead th a").count() == 50
    shot(page, "compare-50")


def test_compare_children_of_a_sweep_from_its_run_page(page, server, sample):
    _open(page, server + f"/runs/{sample['made']['sweep']}")
    page.wait_for_load_state("networkidle")
    link = page.locator("#compare-children")
    assert link.get_attribute("href") == f"/compare?parent={sample['made']['sweep']}"
    link.scroll_into_view_if_needed()
    link.click()
    page.wait_for_url(re.compile(r"/compare\?parent="))
    assert page.locator("#compare thead th a").count() == 12


# -- a run --------------------------------------------------------------------------------------


def test_run_page_embeds_the_report_without_code_and_the_full_notebook_one_click_away(page, server, sample):
    import hashlib

    store = sample["store"]
    drift = next(i for i in store.list_runs(template="drift") if i["parent"])
    rec = store.get(drift["id"]).record
    _open(page, server + f"/runs/{drift['id']}")
    frame = page.frame_locator("#notebook")
    assert frame.locator("h1").first.inner_text().replace("¶", "").strip() == "Drift analysis"
    assert frame.locator("table.summary").count() == 1
    assert frame.locator(".jp-InputArea-editor").count() == 0
    assert "compute_summary" not in frame.locator("body").inner_text()
    shot(page, "run")
    page.click("#show-notebook")
    frame.locator(".jp-InputArea-editor").first.wait_for()
    assert "compute_summary" in frame.locator("body").inner_text()
    shot(page, "run-full-notebook")
    params = page.locator("#parameters").inner_text()
    assert "drift_share" in params and "q" not in params.split("current")[0][:0]
    assert rec["inputs"][0]["sha256"][:16] in page.locator("#inputs").inner_text()
    assert "precipitation" in page.locator("table.dataframe").first.inner_text()
    assert page.locator("#environment").inner_text().count("scikit-learn") == 1
    assert "0123456789abcdef" in page.locator("#git").inner_text()
    assert page.locator("h1 .badge.intact").count() == 1
    # the parent pipeline and the artifact download
    page.locator("p.muted a", has_text=drift["parent"]).click()
    assert page.locator("h1 .mono").inner_text() == drift["parent"]
    page.go_back()
    href = page.locator("#artifacts a").first.get_attribute("href")
    body = page.request.get(server + href).body()
    assert hashlib.sha256(body).hexdigest() == rec["artifacts"][0]["sha256"]


def test_tampered_run_says_what_changed(page, server, sample):
    _open(page, server + f"/runs/{sample['tampered']}")
    assert page.locator("h1 .badge.changed").count() == 1
    assert "notebook.html: content changed" in page.locator("#verify-problems").inner_text()


# -- models and lineage -------------------------------------------------------------------------


def test_models_version_lineage_chain_followed_link_by_link(page, server, sample):
    from mlnb.registry import Registry

    with Registry(sample["store"]) as registry:
        mv = registry.get("weather@production")
    _open(page, server + "/models")
    assert "weather" in page.locator("#models").inner_text()
    shot(page, "models")
    page.click("#models a:has-text('weather')")
    page.wait_for_url("**/models/weather")
    assert page.locator("#versions tr").count() == sample["made"]["versions"] + 1
    assert page.locator("#alias-timeline svg circle.point").count() == sample["made"]["versions"]
    shot(page, "model")
    page.click(f"#versions a:text-is('v{mv.version}')")
    page.wait_for_url(f"**/models/weather/versions/{mv.version}")
    shot(page, "version")
    chain = page.locator("#chain")
    assert mv.data[0]["sha256"][:16] in chain.locator("#data").inner_text()
    # training run -> its page
    chain.locator(f"li:first-child a:text-is('{mv.run_id}')").click()
    assert page.locator("h1 .mono").inner_text() == mv.run_id
    assert f"produced weather/{mv.version}" in page.locator("#lineage").inner_text()
    page.go_back()
    # the pipeline decision that registered and promoted it
    pipeline = sample["store"].get(mv.run_id).record["parent"]
    chain.locator(f"a:text-is('{pipeline}')").first.click()
    assert page.locator("h1 .mono").inner_text() == pipeline
    page.go_back()
    # the drift and validation runs of that batch
    for step in ("drift", "validate"):
        page.locator(f"#batch-runs tr:has(td:text-is('{step}')) a").click()
        assert page.locator("p.muted b").first.inner_text() == step
        assert pipeline in page.locator("p.muted").first.inner_text()
        page.go_back()


def test_monitoring_dashboard_points_link_to_their_runs(page, server, sample):
    store = sample["store"]
    _open(page, server + "/models/weather/monitor")
    shot(page, "monitor")
    drift_ids = {i["id"] for i in store.list_runs(template="drift") if i["parent"]}
    points = page.locator("#drift-chart svg a")
    assert points.count() == 12
    hrefs = points.evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert {h.rsplit("/", 1)[1] for h in hrefs} == drift_ids
    assert page.locator("#heatmap svg rect.cell").count() == 12 * 6
    assert page.locator("#metrics-chart svg circle.point").count() >= 2 * 11
    assert page.locator("#timeline svg g.event").count() >= 12
    points.first.click()
    page.wait_for_url("**/runs/*")
    assert page.locator("p.muted b").first.inner_text() == "drift"
    _open(page, server + "/monitor")
    assert page.locator("#drift-chart svg a").count() == 12
    shot(page, "monitor-store")


def test_unknown_run_or_model_in_a_url_is_a_404_page_with_a_link_back(page, server):
    for path, back in (("/runs/20260101T000000Z-nothing-abcdef", "/runs"), ("/runs/not-an-id", "/runs"),
                       ("/models/nothing", "/models"), ("/models/weather/versions/999", "/models"),
                       ("/models/weather/versions/abc", "/models"), ("/raw/runs/nothing/report.html", "/runs"),
                       ("/compare?run=20260101T000000Z-nothing-abcdef", "/runs")):
        response = _open(page, server + path)
        assert response.status == 404, path
        assert page.locator("main a").get_attribute("href") == back, path
    shot(page, "not-found")


# -- safety -------------------------------------------------------------------------------------


def _probe(frame_or_page) -> dict:
    probe = frame_or_page.locator("#probe")
    for _ in range(100):
        text = probe.inner_text()
        if text not in ("pending", "running"):
            return json.loads(text)
        time.sleep(0.05)
    raise AssertionError("the notebook's script did not run")


def test_script_in_a_notebook_cannot_read_the_ui_pages_or_cookies(page, server, sample):
    host = server.split("//")[1].split(":")[0]
    page.context.add_cookies([{"name": "ui_secret", "value": "s3cret", "domain": host, "path": "/"}])
    _open(page, server + f"/runs/{sample['evil']}")
    assert "ui_secret=s3cret" in page.evaluate("document.cookie")  # the UI's own origin has it
    seen = _probe(page.frame_locator("#notebook"))
    assert seen["cookie"].startswith("error:"), seen
    assert seen["parent"].startswith("error:"), seen
    assert seen["top"].startswith("error:"), seen
    assert seen["fetch"].startswith("error:"), seen
    assert seen["storage"].startswith("error:"), seen
    # opened on its own, outside the iframe, the notebook is still sandboxed by its header
    response = _open(page, server + f"/raw/runs/{sample['evil']}/notebook.html")
    assert "sandbox" in response.headers["content-security-policy"]
    seen = _probe(page)
    assert seen["cookie"].startswith("error:") and seen["fetch"].startswith("error:"), seen


def test_write_without_the_token_is_403_and_changes_nothing(page, server, sample):
    from mlnb.registry import Registry

    with Registry(sample["store"]) as registry:
        before = len(registry.history("weather"))
    for form in ({"version": "1", "alias": "production", "reason": "try"},
                 {"version": "1", "alias": "production", "reason": "try", "token": "wrong"}):
        response = page.request.post(server + "/models/weather/promote", form=form)
        assert response.status == 403
    assert page.request.post(server + "/models/weather/rollback", form={"reason": "try"}).status == 403
    with Registry(sample["store"]) as registry:
        assert len(registry.history("weather")) == before


def test_promote_and_rollback_from_the_page_are_recorded_with_the_ui_as_actor(page, server, sample):
    from mlnb.registry import Registry

    _open(page, server + "/models/weather")
    promote = page.locator("#actions form").first
    promote.locator("input[name=version]").fill("1")
    promote.locator("input[name=reason]").fill("back to the first model")
    promote.locator("input[name=token]").fill(WRITE_TOKEN)
    promote.locator("button").click()
    page.wait_for_url("**/models/weather")
    with Registry(sample["store"]) as registry:
        event = registry.history("weather")[-1]
        assert (event.action, event.to_version, event.reason) == ("promote", 1, "back to the first model")
        assert event.caused_by.startswith("ui:")
    assert page.locator("#history tr").nth(1).inner_text().count("back to the first model") == 1
    rollback = page.locator("#actions form").nth(1)
    rollback.locator("input[name=reason]").fill("undo")
    rollback.locator("input[name=token]").fill(WRITE_TOKEN)
    rollback.locator("button").click()
    page.wait_for_url("**/models/weather")
    with Registry(sample["store"]) as registry:
        event = registry.history("weather")[-1]
        assert (event.action, event.from_version, event.caused_by[:3]) == ("rollback", 1, "ui:")
        assert registry.resolve("weather@production")[1] == sample["made"]["versions"]


def test_read_token_is_needed_for_every_page(sample):
    from fastapi.testclient import TestClient

    from mlnb.ui.app import create_app

    client = TestClient(create_app(sample["store"], read_token="read-me"), follow_redirects=False)
    assert client.get("/runs").status_code == 401
    assert client.get(f"/raw/runs/{sample['evil']}/report.html").status_code == 401
    assert client.get("/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
    first = client.get("/runs?token=read-me&filter=status+%3D+%27failed%27")
    assert first.status_code == 303 and first.headers["location"] == "/runs?filter=status+%3D+%27failed%27"
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/runs?filter=status+%3D+%27failed%27").status_code == 200  # the cookie now
    fresh = TestClient(create_app(sample["store"], read_token="read-me"))
    assert fresh.get("/models", headers={"Authorization": "Bearer read-me"}).status_code == 200


def test_a_token_guess_that_is_not_ascii_is_a_wrong_token_not_a_500(sample):
    from fastapi.testclient import TestClient

    from mlnb.ui.app import create_app

    client = TestClient(create_app(sample["store"], read_token="read-me"), follow_redirects=False)
    assert client.get("/runs?token=%C3%A9t%C3%A9").status_code == 401
    assert client.get("/runs", headers={"Authorization": b"Bearer \xc3\xa9"}).status_code == 401


def test_a_request_body_over_the_limit_is_413_before_any_page_reads_it(sample):
    """Whether its size is declared (Content-Length) or not (a chunked body, counted while it
    streams); the write form below the limit is read as before (403: no write token)."""
    from fastapi.testclient import TestClient

    from mlnb.ui.app import create_app

    client = TestClient(create_app(sample["store"], max_request_bytes=1000), follow_redirects=False)
    name = "weather"
    big = client.post(f"/models/{name}/promote", content=b"reason=" + b"x" * 5000,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413 and "limit of 1000 bytes" in big.text

    def chunks():
        for _ in range(10):
            yield b"x" * 500

    streamed = client.post(f"/models/{name}/promote", content=chunks(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert streamed.status_code == 413
    small = client.post(f"/models/{name}/promote", data={"reason": "why", "version": "1"})
    assert small.status_code == 403  # read, then refused for want of the write token
    assert client.get("/runs").status_code == 200


def test_the_ui_request_limit_comes_from_the_flag_or_mlnb_yaml(cli, tmp_path):
    config = tmp_path / "mlnb.yaml"
    config.write_text((ROOT / "mlnb.yaml").read_text() + "http:\n  max_request_bytes: -1\n")
    result = cli("ui", "--store", str(tmp_path), "--port", str(_free_port()), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "http.max_request_bytes" in result.stderr


# -- the command --------------------------------------------------------------------------------


def test_a_store_that_cannot_be_read_exits_2_with_one_line_before_serving(cli, tmp_path):
    missing = cli("ui", "--store", str(tmp_path / "nothing"), "--port", str(_free_port()))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"mlnb: error: store {str(tmp_path / 'nothing')!r} does not exist; give --store PATH of a run store"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "mlnb.sqlite").write_bytes(b"this is not a database" * 100)
    done = cli("ui", "--store", str(broken), "--port", str(_free_port()))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open its database mlnb.sqlite: file is not a database" in lines[0]
    empty = tmp_path / "token"
    empty.write_text("\n")
    done = cli("ui", "--store", str(broken), "--token-file", str(empty))
    assert done.returncode == 2 and "is empty" in done.stderr


def test_cli_import_stays_light():
    code = "import sys, mlnb.cli; print([m for m in ('fastapi', 'jinja2', 'pandas', 'uvicorn') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.stdout.strip() == "[]", done.stderr


def test_export_writes_the_same_pages_as_static_files(page, sample, tmp_path, cli):
    out = tmp_path / "site"
    done = cli("ui", "--store", str(sample["store"].path), "--export", str(out))
    assert done.returncode == 0, done.stderr
    ids = sample["store"].run_ids()
    assert all((out / "runs" / f"{i}.html").is_file() for i in ids)
    assert (out / "models" / "weather" / "monitor.html").is_file()
    report = (out / "raw" / "runs" / sample["evil"] / "report.html").read_text()
    assert "Content-Security-Policy" in report.split("</head>")[0]
    _open(page, (out / "index.html").as_uri())
    assert _row_ids(page) == [i["id"] for i in sample["store"].list_runs(limit=50)]
    shot(page, "export-runs")
    drift = next(i for i in sample["store"].list_runs(template="drift") if i["parent"])
    _open(page, (out / "runs" / "page-1.html").as_uri())
    page.click(f"a:text-is('{drift['id']}')")
    assert page.locator("h1 .mono").inner_text() == drift["id"]
    frame = page.frame_locator("#notebook")
    assert frame.locator("table.summary").count() == 1
    assert frame.locator(".jp-InputArea-editor").count() == 0
    # nbconvert's theme, written once under static/, styles the exported notebook
    theme = page.frame(name="notebook").evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--jp-ui-font-size1')")
    assert theme.strip()
    shot(page, "export-run")
    page.wait_for_load_state("networkidle")
    # an exported notebook runs none of its script, framed or opened on its own
    _open(page, (out / "runs" / f"{sample['evil']}.html").as_uri())
    assert page.frame_locator("#notebook").locator("#probe").inner_text() == "pending"
    _open(page, (out / "raw" / "runs" / sample["evil"] / "notebook.html").as_uri())
    assert page.locator("#probe").inner_text() == "pending"
    page.go_back()
    page.wait_for_load_state("networkidle")
    page.click("header a:text-is('Models')")
    page.click("#models a:has-text('weather')")
    page.click("#monitor-link")
    assert page.locator("#drift-chart svg a").count() == 12
    shot(page, "export-monitor")


def test_report_is_what_nbconvert_exclude_input_renders(sample):
    from mlnb.ui.report import render_report, strip_inputs

    run = sample["store"].get(sample["made"]["pipelines"][0])
    assert strip_inputs(run.html_path.read_text()) == render_report(run.notebook_path)
