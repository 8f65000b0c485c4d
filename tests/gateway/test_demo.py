"""The web demo in a real headless Chromium (the system's, driven by Playwright): upload a group photo, one box
per face is drawn and the result panel lists every face; verify, generate and the video tab (a job that a video
worker beside the session's gateway finishes) work too. Screenshots are saved as test artefacts
(FACEPLANE_ARTEFACTS, default .cache/artefacts/)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from deploy.local.stack import Stack
from gateway.settings import Settings
from tests import images
from tests.gateway.test_collections_api import collection_with_eileen
from tests.gateway.test_videos import WorkerThread, astronaut_frames, video

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("FACEPLANE_ARTEFACTS", REPO / ".cache" / "artefacts"))


@pytest.fixture
def page(browser: Browser, api: httpx.Client) -> Iterator[Page]:
    context = browser.new_context(base_url=str(api.base_url), viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/")
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    group, astronaut = root / "group.jpg", root / "astronaut.jpg"
    group.write_bytes(images.encode(images.group_six()))
    astronaut.write_bytes(images.encode(images.astronaut()))
    return {"group": group, "astronaut": astronaut}


def test_a_group_photo_gets_one_box_per_face_and_a_card_each(page: Page, photos: dict[str, Path]) -> None:
    page.set_input_files("#analyze-file", str(photos["group"]))
    expect(page.locator("#analyze-status")).to_have_text("6 faces", timeout=60_000)
    assert page.locator("#canvas").get_attribute("data-boxes") == "6"
    cards = page.locator("#faces li")
    expect(cards).to_have_count(6)
    text = cards.all_inner_texts()
    assert all("age" in t and ("male" in t or "female" in t) for t in text), text
    # the boxes are really drawn: the canvas holds the photo at its own size, with green pixels on the box lines
    size = page.evaluate("() => [document.getElementById('canvas').width, document.getElementById('canvas').height]")
    assert size == [images.group_six().shape[1], images.group_six().shape[0]]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "demo-analyze.png"), full_page=True)


def test_verify_two_photos(page: Page, photos: dict[str, Path]) -> None:
    page.click("nav button[data-tab=verify]")
    page.set_input_files("#verify-1", str(photos["astronaut"]))
    page.set_input_files("#verify-2", str(photos["astronaut"]))
    page.click("#verify-go")
    expect(page.locator("#verify-result")).to_contain_text("Same person", timeout=60_000)


def test_enrol_then_identify(page: Page, photos: dict[str, Path]) -> None:
    page.click("nav button[data-tab=identify]")
    page.fill("#collection", "demo-test")
    page.fill("#subject", "eileen")
    page.fill("#subject-name", "Eileen Collins")
    page.set_input_files("#enrol-file", str(photos["astronaut"]))
    page.click("#enrol-go")
    expect(page.locator("#identify-status")).to_contain_text("enrolled face", timeout=60_000)
    page.set_input_files("#identify-file", str(photos["astronaut"]))
    page.click("#identify-go")
    expect(page.locator("#identify-result li")).to_contain_text("Eileen Collins", timeout=60_000)


def test_generate_faces(page: Page) -> None:
    page.click("nav button[data-tab=generate]")
    page.fill("#count", "4")
    page.fill("#seed", "3")
    page.click("#generate-go")
    expect(page.locator("#generated img")).to_have_count(4, timeout=60_000)
    expect(page.locator("#generate-status")).to_have_text("seed 3")
    page.screenshot(path=str(ARTEFACTS / "demo-generate.png"))


def test_a_broken_file_shows_the_api_error(page: Page, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff nothing")
    page.set_input_files("#analyze-file", str(broken))
    expect(page.locator("#analyze-status")).to_have_class("status error", timeout=30_000)


def test_live_mode_streams_camera_frames_and_gets_answers(page: Page) -> None:
    page.click("nav button[data-tab=live]")
    page.click("#live-start")
    expect(page.locator("#live-status")).to_contain_text("frames answered", timeout=60_000)
    page.wait_for_function("() => Number(document.getElementById('live-status').dataset.answered || 0) >= 3",
                           timeout=60_000)  # fmt: skip
    page.click("#live-stop")
    expect(page.locator("#live-start")).to_be_enabled()


@pytest.fixture(scope="module")
def video_worker(stack: Stack) -> Iterator[WorkerThread]:
    """A video worker for the page's gateway (the session's): its services, its Redis database."""
    services = {s: f"127.0.0.1:{stack.ports[s]}" for s in stack.services}
    with WorkerThread(Settings(services=services, redis_url=stack.redis_url)) as worker:
        yield worker


def test_a_video_s_face_becomes_one_tracked_identified_card(
    page: Page, api: httpx.Client, video_worker: WorkerThread, tmp_path: Path
) -> None:
    clip = tmp_path / "astronaut.mp4"
    video(astronaut_frames(20), clip)  # 2 s at 10 fps: 10 frames analysed at the default 5 a second
    page.click("nav button[data-tab=videos]")
    page.set_input_files("#video-file", str(clip))
    page.fill("#video-collection", collection_with_eileen(api))
    page.click("#video-go")
    expect(page.locator("#video-status")).to_have_text("1 track, 10 frames analysed of 2.0 s", timeout=240_000)
    card = page.locator("#video-tracks li")
    expect(card).to_have_count(1)
    expect(card.locator("b")).to_have_text("#1")
    expect(card).to_contain_text("0.0–1.8 s · eileen (similarity 0.")
    for summary in ("emotion ", "age ", "gender ", "% of frames"):
        expect(card).to_contain_text(summary)
    assert page.locator("#video-progress").evaluate("bar => bar.value") == 1
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "demo-video.png"), full_page=True)


def test_a_refused_video_shows_the_api_error(page: Page, tmp_path: Path) -> None:
    text, clip = tmp_path / "notes.mp4", tmp_path / "astronaut.mp4"
    text.write_text("not a video")
    video(astronaut_frames(5), clip)
    page.click("nav button[data-tab=videos]")
    status = page.locator("#video-status")
    page.set_input_files("#video-file", str(text))
    page.click("#video-go")
    expect(status).to_have_text("unsupported_video: the upload is not an MP4, MOV, WebM or AVI video", timeout=30_000)
    expect(status).to_have_class("status error")
    expect(page.locator("#video-progress")).to_be_hidden()
    page.set_input_files("#video-file", str(clip))
    page.fill("#video-collection", "nobody-enrolled-here")
    page.click("#video-go")
    expect(status).to_have_text("not_found: no collection 'nobody-enrolled-here'", timeout=30_000)
    expect(status).to_have_class("status error")
