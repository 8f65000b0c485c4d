"""The gateway's pages in a real Chromium: the demo and the OpenAPI pages carry a Content-Security-Policy they keep
to (no inline script, nothing from another site), every answer carries the usual security headers, and `/docs` and
`/redoc` load nothing from a CDN, so they work in an air-gapped cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, expect

from tests import images

pytestmark = pytest.mark.slow
# ReDoc's footer shows Redocly's logo from their CDN, hard-coded: the policy blocks it (the point of it) and ReDoc
# hides the image that failed. The one violation we expect.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def test_every_answer_carries_the_security_headers(api: httpx.Client) -> None:
    answers = {
        "/": api.get("/"),
        "/docs": api.get("/docs"),
        "/v1/detect": api.post("/v1/detect", files={"image": ("a.jpg", images.encode(images.astronaut()))}),
        "404": api.get("/nowhere"),
        "/demo/app.js": api.get("/demo/app.js"),
    }
    for where, r in answers.items():
        assert {k: r.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, where
        policy = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'" and "unsafe" not in policy.get("script-src", ""), where
    assert "script-src 'self'" in answers["/"].headers["content-security-policy"]
    assert answers["/v1/detect"].headers["content-security-policy"].startswith("default-src 'none'")


def test_the_docs_pages_name_no_other_site(api: httpx.Client) -> None:
    for page in ("/docs", "/redoc"):
        html = api.get(page).text
        assert "cdn." not in html and "https://" not in html and "<script>" not in html, html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        r = api.get(f"/docs/assets/{asset}")
        assert r.status_code == 200 and len(r.content) > 1000, asset


class Offline:
    """A browser context that reaches only the gateway (anything else is refused, as in an air-gapped cluster)
    and records every CSP violation the browser reports."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.context: BrowserContext = browser.new_context(base_url=self.base_url)
        self.elsewhere: list[str] = []
        self.violations: list[str] = []
        self.context.route("**/*", self._only_the_gateway)

    def _only_the_gateway(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.base_url) or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text and REDOC_LOGO not in message.text:
            self.violations.append(message.text)

    def page(self, path: str) -> Page:
        page = self.context.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.violations.append(f"page error: {exc}"))
        page.goto(path)
        return page


@pytest.fixture
def offline(browser: Browser, api: httpx.Client) -> Iterator[Offline]:
    offline = Offline(browser, str(api.base_url))
    yield offline
    offline.context.close()
    assert not offline.elsewhere, f"loaded from elsewhere: {offline.elsewhere}"
    assert not offline.violations, offline.violations


def test_swagger_ui_works_offline_under_its_policy(offline: Offline) -> None:
    page = offline.page("/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=60_000)
    assert page.locator(".opblock").count() >= 10
    expect(page.get_by_text("/v1/detect", exact=True).first).to_be_visible()


def test_redoc_works_offline_under_its_policy(offline: Offline) -> None:
    page = offline.page("/redoc")
    expect(page.get_by_text("/v1/detect").first).to_be_attached(timeout=60_000)


def test_the_demo_works_under_its_policy(offline: Offline, tmp_path: Path) -> None:
    photo = tmp_path / "group.jpg"
    photo.write_bytes(images.encode(images.group_six()))
    page = offline.page("/")
    page.set_input_files("#analyze-file", str(photo))
    expect(page.locator("#analyze-status")).to_have_text("6 faces", timeout=60_000)
    page.click("nav button[data-tab=generate]")
    page.fill("#count", "2")
    page.click("#generate-go")
    expect(page.locator("#generated img")).to_have_count(2, timeout=60_000)  # data: URLs
    page.click("nav button[data-tab=live]")
    page.click("#live-start")  # the video stream's websocket to the page's own origin
    expect(page.locator("#live-status")).to_contain_text("frames answered", timeout=60_000)
    page.click("#live-stop")
