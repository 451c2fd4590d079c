"""The auditor's web view in a real headless browser: Debian's chromium, driven by Playwright
(never a downloaded browser). After a known sequence of calls through the official MCP Python
SDK (one allowed, one denied by policy, one whose argument holds a script), the timeline shows
them, the denied call's story shows its reason, the injected script is shown as text and never
runs, a principal `[ui]` does not name gets 403 and no data, no credential gets the login page,
the verify action needs the session's CSRF token, and every answer carries the CSP.

Screenshots go to target/e2e-artifacts/ui/."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from playwright.sync_api import expect, sync_playwright

from conftest import REPO, http_gateway, serve_args

CHROMIUM = Path("/usr/bin/chromium")
# Generous waits: the shared CI machine may be busy compiling while this runs.
expect.set_options(timeout=15_000)
ARTIFACTS = REPO / "target" / "e2e-artifacts" / "ui"
KEYS = {"alice": "alice-audit-key-0d7e", "agent": "agent-key-5c21", "mallory": "mallory-key-9f02"}
SCRIPT = "<script>window.__pwned=1</script>"

# Every tool but echo_fetch, denied with the reason "echo_fetch is not for anyone".
DENY_ECHO_FETCH = REPO / "tests" / "policies" / "deny-echo-fetch"


def config(tmp_path: Path) -> Path:
    path = tmp_path / "gatehouse.toml"
    keys = "".join(
        f'[[api_keys]]\nprincipal = "{p}"\nkey_sha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\n'
        for p, k in KEYS.items())
    # A checkpoint every 4 entries: the integrity page has a signed one to show.
    path.write_text(keys + '[server]\nallow_anonymous = false\n[audit]\ncheckpoint_every = 4\n[ui]\nauditors = ["alice"]\n')
    return path


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None, data: bytes | None = None):
    """(status, headers, body) of a plain HTTP request, errors included."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail("chromium is missing: run scripts/setup (it installs Debian's chromium)")

    # `launch` gives the browser a fresh temporary profile of its own and removes it at close.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def audited(tmp_path_factory, gatehouse, components, cache_dir):
    """A gateway whose log holds a known sequence of calls by `agent`."""
    tmp = tmp_path_factory.mktemp("ui")
    args = serve_args(components, cache_dir, "--config", str(config(tmp)), names=("echo",), policies=DENY_ECHO_FETCH)
    with http_gateway(gatehouse, args) as gateway:
        gateway.base = gateway.url.removesuffix("/mcp")
        yield gateway


async def make_calls(gateway, messages=("hello auditor", None, SCRIPT)):
    """Calls as `agent`: `echo_echo` with each message, `echo_fetch` (denied) for `None`."""
    headers = {"Authorization": f"Bearer {KEYS['agent']}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(gateway.url, http_client=http), read_timeout_seconds=60) as client:
            for message in messages:
                if message is None:
                    assert (await client.call_tool("echo_fetch", {"key": "alpha"})).is_error
                else:
                    assert not (await client.call_tool("echo_echo", {"message": message})).is_error


def shot(page, name: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(browser, base: str, key: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/ui/")
    page.fill("#token", key)
    page.click("button[type=submit]")
    return context, page


@pytest.fixture(scope="module")
def calls_made(audited):
    import anyio

    anyio.run(make_calls, audited)
    return audited


def test_no_credential_gets_the_login_page_and_no_data(calls_made, browser):
    base = calls_made.base
    status, headers, body = request(f"{base}/ui/api/calls")
    assert status == 401 and "log in" in json.loads(body)["error"]
    assert "agent" not in body
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    response = page.goto(f"{base}/ui/")
    assert response.status == 401
    assert page.locator("#token").is_visible()
    assert "echo_echo" not in page.content()
    shot(page, "login")
    page.fill("#token", "not-a-key")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "not accepted" in page.text_content("#login-error")
    context.close()


def test_the_timeline_shows_the_calls_and_the_story_the_denial(calls_made, browser):
    base = calls_made.base
    context, page = login(browser, base, KEYS["alice"])
    page.wait_for_selector("table.calls tbody tr")
    rows = page.locator("table.calls tbody tr")
    assert rows.count() == 3
    texts = [rows.nth(i).inner_text() for i in range(3)]
    # Newest first: the script call, the denied fetch, the first echo.
    assert "echo_echo" in texts[0] and "allow" in texts[0] and "ok" in texts[0]
    assert "echo_fetch" in texts[1] and "deny" in texts[1] and "denied" in texts[1]
    assert "echo_echo" in texts[2] and "agent" in texts[2]
    assert page.text_content("#principal") == "alice"
    shot(page, "timeline")
    # The README's picture: the part of the page with the calls.
    page.screenshot(path=str(ARTIFACTS / "timeline-readme.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 425})

    # Filters as in `audit query`: the verdict narrows to the denied call.
    page.select_option("#f-verdict", "deny")
    page.click("#filters button[type=submit]")
    # (`expect` polls through the locator engine: a `wait_for_function` predicate is eval'd in
    # the page, which the page's own CSP refuses.)
    expect(page.locator("table.calls tbody tr")).to_have_count(1)
    assert "echo_fetch" in page.inner_text("table.calls tbody")

    page.click("table.calls tbody tr >> a")
    page.wait_for_selector("#denial")
    assert "echo_fetch is not for anyone" in page.text_content("#denial")
    steps = page.inner_text("table.steps")
    assert "call" in steps and "outcome" in steps
    shot(page, "story-denied")
    context.close()


def test_an_injected_script_is_shown_as_text_and_never_runs(calls_made, browser):
    base = calls_made.base
    context, page = login(browser, base, KEYS["alice"])
    page.wait_for_selector("table.calls tbody tr")
    page.locator("table.calls tbody tr").first.locator("a").click()
    page.wait_for_selector("#arguments")
    assert SCRIPT in page.text_content("#arguments")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # Shown as text, not parsed: no element came out of the log's values.
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("#view script").count() == 0
    shot(page, "story-script-as-text")
    context.close()


def test_a_principal_ui_does_not_name_gets_403_and_no_data(calls_made, browser):
    base = calls_made.base
    bearer = {"Authorization": f"Bearer {KEYS['agent']}"}
    for path in ["/ui/api/calls", "/ui/api/overview", "/ui/api/integrity", "/ui/api/session"]:
        status, _, body = request(base + path, headers=bearer)
        assert status == 403, path
        assert "not an auditor" in body and "echo_" not in body
    status, _, body = request(base + "/ui/", headers=bearer)
    assert status == 403 and "not an auditor" in body
    context, page = login(browser, base, KEYS["mallory"])
    assert "not an auditor" in page.text_content("#forbidden")
    assert "echo_" not in page.content()
    shot(page, "forbidden")
    context.close()
    # An auditor's key as a bearer gets the data, for scripts.
    status, _, body = request(base + "/ui/api/calls?verdict=deny", headers={"Authorization": f"Bearer {KEYS['alice']}"})
    assert status == 200
    (call,) = json.loads(body)["calls"]
    assert (call["tool"], call["verdict"], call["outcome"], call["caller"]) == ("echo_fetch", "deny", "denied", "agent")


def test_verify_needs_the_csrf_token_and_every_answer_has_the_csp(calls_made, browser):
    base = calls_made.base
    context, page = login(browser, base, KEYS["alice"])
    page.wait_for_selector("table.calls")
    # The session cookie alone does not make an action.
    forged = page.evaluate("fetch('/ui/api/verify', {method: 'POST'}).then(r => r.status)")
    assert forged == 403
    wrong = page.evaluate("fetch('/ui/api/verify', {method: 'POST', headers: {'X-CSRF-Token': 'guess'}}).then(r => r.status)")
    assert wrong == 403
    cookie = next(c for c in context.cookies() if c["name"] == "gatehouse_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] not in KEYS.values() and len(cookie["value"]) == 64

    page.goto(f"{base}/ui/integrity")
    page.wait_for_selector("#verify")
    assert "✓ gateway key" in page.inner_text("main"), "the latest checkpoint is signed by the gateway's key"
    page.click("#verify")
    page.wait_for_selector("#verify-result")
    assert "Intact" in page.text_content("#verify-result")
    shot(page, "integrity")

    page.goto(f"{base}/ui/overview")
    page.wait_for_selector("svg.chart rect")
    assert "echo_fetch is not for anyone" in page.inner_text("main")
    shot(page, "overview")

    for path in ["/ui/", "/ui/api/calls", "/ui/assets/app.js"]:
        response = page.request.get(base + path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    context.close()


def test_the_host_guard_of_mcp_covers_the_view(calls_made):
    port = re.search(r":(\d+)$", calls_made.base).group(1)
    status, _, _ = request(f"http://127.0.0.1:{port}/ui/", headers={"Host": f"evil.example:{port}"})
    assert status == 403


def test_the_timeline_updates_while_open(calls_made, browser):
    """Runs last: it adds a call to the log the other tests count."""
    import anyio

    context, page = login(browser, calls_made.base, KEYS["alice"])
    expect(page.locator("table.calls tbody tr")).to_have_count(3)
    # On a thread of its own: Playwright's sync API keeps an event loop on this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, make_calls, calls_made, ("a later call",)).result(timeout=60)
    expect(page.locator("table.calls tbody tr")).to_have_count(4)
    page.locator("table.calls tbody tr").first.locator("a").click()
    expect(page.locator("#arguments")).to_contain_text("a later call")
    # Logging out ends the session on the server: the old cookie no longer opens the view.
    cookie = next(c["value"] for c in context.cookies() if c["name"] == "gatehouse_ui")
    old = {"Cookie": f"gatehouse_ui={cookie}"}
    assert request(f"{calls_made.base}/ui/api/session", headers=old)[0] == 200
    page.goto(f"{calls_made.base}/ui/")
    page.click("#logout")
    expect(page.locator("#token")).to_be_visible()
    assert request(f"{calls_made.base}/ui/api/session", headers=old)[0] == 401
    context.close()


def test_an_auditor_logs_in_with_a_jwt(gatehouse, components, cache_dir, tmp_path, browser):
    """The principal may come from the identity provider's JWT: its `sub` is checked against
    `[ui]` as an API key's principal is, and a name holding markup is shown as text."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "ui-key", "use": "sig"}]}))
    issuer, audience = "https://idp.test", "gatehouse-ui"
    (tmp_path / "gatehouse.toml").write_text(
        f'[auth.jwt]\njwks_file = "jwks.json"\nissuer = "{issuer}"\naudience = "{audience}"\n'
        '[ui]\nauditors = ["ada"]\n')

    def mint(sub: str) -> str:
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "sub": sub, "iat": now, "exp": now + 600}
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "ui-key"})

    args = serve_args(components, cache_dir, "--config", str(tmp_path / "gatehouse.toml"), names=("echo",))
    with http_gateway(gatehouse, args) as gateway:
        base = gateway.url.removesuffix("/mcp")
        context, page = login(browser, base, mint("ada"))
        expect(page.locator("#principal")).to_have_text("ada")
        expect(page.locator("#view .empty")).to_contain_text("No calls")
        context.close()

        context, page = login(browser, base, mint("<b>eve</b>"))
        assert page.text_content("#forbidden").startswith('principal "<b>eve</b>" is not an auditor')
        assert page.locator("#forbidden b").count() == 0
        context.close()


def test_an_operator_answers_a_waiting_question_on_the_approvals_page(gatehouse, components, cache_dir, tmp_path, browser):
    """A client that cannot elicit is told its call waits for an operator; the operator
    approves it in the browser, and the client's retry runs. An auditor sees the question but
    may not answer it."""
    import anyio

    keys = {**KEYS, "olga": "olga-operator-key-77aa"}
    (tmp_path / "gatehouse.toml").write_text(
        "".join(f'[[api_keys]]\nprincipal = "{p}"\nkey_sha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\n' for p, k in keys.items())
        + f'[server]\nallow_anonymous = false\n[approvals]\npath = "{tmp_path / "approvals.db"}"\n'
        + '[ui]\nauditors = ["alice"]\noperators = ["olga"]\n')
    bundle = REPO / "tests" / "policies" / "ask-echo"
    args = serve_args(components, cache_dir, "--config", str(tmp_path / "gatehouse.toml"), names=("echo",), policies=bundle)

    async def call(gateway):
        headers = {"Authorization": f"Bearer {keys['agent']}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with Client(streamable_http_client(gateway.url, http_client=http), read_timeout_seconds=60) as client:
                return await client.call_tool("echo_echo", {"message": "ship it"})

    with http_gateway(gatehouse, args) as gateway:
        base = gateway.url.removesuffix("/mcp")
        # On a thread of its own: Playwright's sync API keeps an event loop on this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(anyio.run, call, gateway).result(timeout=60)
        assert waiting.is_error and "approval required" in waiting.content[0].text, waiting

        context, page = login(browser, base, keys["alice"])
        page.goto(f"{base}/ui/approvals")
        expect(page.locator("table.calls tbody tr")).to_have_count(1)
        row = page.locator("table.calls tbody tr").first
        assert "echo_echo" in row.inner_text() and "echo calls need a person" in row.inner_text()
        assert row.locator("button").count() == 0, "an auditor was offered an answer"
        question = row.get_attribute("data-question")
        status, _, body = request(f"{base}/ui/api/approvals/{question}", "POST",
                                  {"Authorization": f"Bearer {keys['alice']}", "Content-Type": "application/json"},
                                  json.dumps({"decision": "approve"}).encode())
        assert status == 403 and "only the principals [ui] operators names" in body, body
        context.close()

        context, page = login(browser, base, keys["olga"])
        page.goto(f"{base}/ui/approvals")
        expect(page.locator(f"tr[data-question='{question}'] button.approve")).to_be_visible()
        shot(page, "approvals")
        page.locator(f"tr[data-question='{question}'] select.scope").select_option("once")
        page.locator(f"tr[data-question='{question}'] button.approve").click()
        expect(page.locator("#questions .empty")).to_be_visible()
        page.check("#all-questions")
        expect(page.locator(f"tr[data-question='{question}']")).to_contain_text("approved")
        expect(page.locator(f"tr[data-question='{question}']")).to_contain_text("operator:olga")
        context.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            retried = pool.submit(anyio.run, call, gateway).result(timeout=60)
        assert not retried.is_error and retried.structured_content == {"result": "ship it"}, retried
