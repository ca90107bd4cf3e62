"""The Gradio UI end to end in headless Chromium (Debian's, driven by Playwright), served on
127.0.0.1 with the tiny test models: a real agent on the tiny Chinese-CLIP and the real colour
tool, with a scripted chat model (we assert plumbing, never what a model decides).

Each page's screenshot is saved under VLAGENT_TEST_SCREENSHOTS (default: the pytest tmp dir)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("VLAGENT_TEST_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def ui_url(catalogue, tiny_clip, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from vlagent.agent.build import build_agent
    from vlagent.api.service import AgentService
    from vlagent.evals.bundle import run_to_folder
    from vlagent.serving.process import free_port
    from vlagent.settings import Settings
    from vlagent.web.ui import launch

    home = tmp_path_factory.mktemp("ui-home")
    settings = Settings(
        home=home, device="cpu", clip_model=tiny_clip["chinese_clip"][0], clip_batch_size=4,
        caption_backend="none", vqa_backend="none", ocr_backend="none", llm_backend="none",
        upload_max_bytes=500_000,
    )  # fmt: skip
    llm = GenericFakeChatModel(messages=itertools.cycle([AIMessage("红色 (scripted answer)")]))
    agent = build_agent(settings, images=[catalogue.folder], annotations=catalogue.csv, llm=llm)
    service = AgentService(agent, settings, [catalogue.folder])
    port = free_port()
    demo = launch(service, host="127.0.0.1", port=port, block=False, evaluate=run_to_folder)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()
        service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser: Any, ui_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(ui_url)
    pg.wait_for_selector("#search-text textarea")
    try:
        yield pg
    finally:
        context.close()


def ask(page: Any, text: str, files: list[Path] | None = None) -> None:
    box = page.locator("#chat-input")
    if files:
        box.locator("input[type=file]").set_input_files([str(f) for f in files])
        page.wait_for_function("n => document.querySelectorAll('#chat-input .thumbnail-item, #chat-input img').length >= n", arg=len(files))
    box.locator("textarea").fill(text)
    box.locator("textarea").press("Enter")


def wait_answers(page: Any, n: int) -> list[str]:
    """The bot messages once there are ``n`` final ones (the steps' 'thinking' block excluded)."""
    answers = "[...document.querySelectorAll('#chatbot [data-testid=bot]')].filter(m => !m.querySelector('.thought-group'))"
    page.wait_for_function(f"n => {answers}.length >= n", arg=n)
    return page.evaluate(f"() => {answers}.map(m => m.innerText)")


def test_search_returns_a_gallery_and_a_click_opens_chat(page: Any, catalogue, screenshots: Path) -> None:  # type: ignore[no-untyped-def]
    page.locator("#search-text textarea").fill("红色连衣裙女夏季长裙")
    page.click("#search-btn")
    page.wait_for_selector("#search-results .thumbnail-item")
    captions = page.locator("#search-results .caption-label").all_inner_texts()
    assert len(captions) == 8
    for caption in captions:
        name, title, score = caption.split(" · ")
        assert name in catalogue.names and title == catalogue.titles[name] and 0.0 <= float(score) <= 1.0
    assert "8 results" in page.inner_text("#search-msg")
    page.screenshot(path=str(screenshots / "search.png"), full_page=True)

    page.locator("#search-image input[type=file]").set_input_files(str(catalogue.path("hat_green.png")))
    page.wait_for_selector("#search-image img")
    page.click("#search-btn")
    page.wait_for_selector("#search-msg:has-text('for image hat_green.png')")
    captions = page.locator("#search-results .caption-label").all_inner_texts()
    assert len(captions) == 8 and captions[0].startswith("hat_green.png")  # the image itself ranks first

    first = captions[0].split(" · ")[0]
    page.locator("#search-results .thumbnail-item").first.click()
    page.wait_for_selector("#attached:has-text('Attached')")
    assert first in page.inner_text("#attached")
    assert page.locator("#chat-input textarea").is_visible()  # the Chat tab is open
    ask(page, "这件衣服是什么颜色的？")
    wait_answers(page, 1)
    page.wait_for_selector("#trace:has-text('colors')")
    assert f'"image": "{Path(first).name}"' in page.inner_text("#trace")


def test_uploaded_image_and_question_answer_with_a_trace_and_a_follow_up_uses_it(page: Any, catalogue, screenshots: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("tab", name="Chat").click()
    ask(page, "这件衣服是什么颜色的？", [catalogue.path("dress_red.jpg")])
    answers = wait_answers(page, 1)
    assert "红色" in answers[-1]  # the measured colour (a colour question needs no LLM)
    page.wait_for_selector("#trace:has-text('colors')")
    trace = page.inner_text("#trace")
    assert "vqa" in trace and '"image": "dress_red.jpg"' in trace and "colors[dress_red.jpg]" in trace
    steps = page.inner_text("#chatbot")
    assert "question type: vqa" in steps or "understand" in steps
    page.screenshot(path=str(screenshots / "chat.png"), full_page=True)

    ask(page, "那它是什么颜色的？")  # no image: the first turn's
    wait_answers(page, 2)
    assert "colors[dress_red.jpg]" in page.inner_text("#trace")

    page.click("#reset-btn")
    page.wait_for_function("() => document.querySelectorAll('#chatbot [data-testid=bot]').length === 0")
    ask(page, "那它是什么颜色的？")  # a new thread has no image to refer to
    wait_answers(page, 1)
    assert "needs an image" in page.inner_text("#chatbot")


def test_a_corrupt_upload_shows_an_error_message(page: Any, tmp_path: Path, screenshots: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    page.get_by_role("tab", name="Chat").click()
    ask(page, "这是什么？", [broken])
    page.wait_for_selector("#chatbot :text('corrupt')")
    assert "Error: broken.jpg: corrupt image" in page.inner_text("#chatbot")
    assert page.locator("#trace .vl-error").count() == 1
    page.screenshot(path=str(screenshots / "chat-error.png"), full_page=True)
    ask(page, "你好")  # the page still works
    wait_answers(page, 2)


def test_evaluate_runs_the_harness_and_offers_the_files(page: Any, catalogue, tmp_path: Path, screenshots: Path) -> None:  # type: ignore[no-untyped-def]
    query = tmp_path / "query.json"
    query.write_text(json.dumps([
        {"question": "这件衣服是什么颜色的？", "related_image": "dress_red.jpg", "answer": "", "gold_answer": "红色"},
        {"question": "请匹配到与 蓝色男士衬衫长袖纯棉 最相关的图片。", "related_image": "", "answer": "", "gold_image": "shirt_blue.jpg"},
        {"question": "请描述这张图片。", "related_image": "no_such.jpg", "answer": ""},
    ], ensure_ascii=False), encoding="utf-8")  # fmt: skip
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#eval-query input[type=file]").set_input_files(str(query))
    page.wait_for_selector("#eval-query :text('query.json')")
    page.click("#eval-btn")
    page.wait_for_selector("#eval-report h1, #eval-report h2", timeout=120_000)
    files = page.inner_text("#eval-files")
    for name in ("answers.json", "report.md", "report.json"):
        assert name in files
    assert "no_such.jpg" in page.inner_text("#eval-report")  # the invalid item is reported
    page.screenshot(path=str(screenshots / "evaluate.png"), full_page=True)
