#!/usr/bin/env python
"""The README's screenshots, from the real thing: ``vlagent ui`` on the sample suite with the
offline profile (Qwen2.5-Coder-1.5B in-process, rapidocr, colours, title search), driven by
Playwright in Debian's Chromium.

    VLAGENT_PROFILE=offline python scripts/ui_screenshots.py [--out docs]

Writes ``ui-search.png`` (a search and its gallery) and ``ui-chat.png`` (a question about an
image, its answer, the steps and the trace).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "evals" / "suites" / "sample"
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vlagent ui exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer in {timeout:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "VLAGENT_PROFILE": os.environ.get("VLAGENT_PROFILE", "offline"), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.setdefault("VLAGENT_HOME", tempfile.mkdtemp(prefix="vlagent-ui-shots-"))
    cmd = [sys.executable, "-m", "vlagent.cli.app", "ui", "--images", str(SAMPLE / "images"),
           "-a", str(SAMPLE / "train_annotation.csv"), "--port", str(args.port)]  # fmt: skip
    Path(env["VLAGENT_HOME"]).mkdir(parents=True, exist_ok=True)
    log = open(Path(env["VLAGENT_HOME"]) / "ui.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_up(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(300_000)
            page.goto(url)
            page.locator("#search-text textarea").fill("红色无袖连衣裙")
            page.locator("#search-text textarea").press("Enter")
            page.wait_for_selector("#search-results .thumbnail-item")
            time.sleep(1)
            page.screenshot(path=str(args.out / "ui-search.png"), full_page=True)
            page.get_by_role("tab", name="Chat").click()
            box = page.locator("#chat-input")
            box.locator("input[type=file]").set_input_files([str(SAMPLE / "images" / "label_cotton.jpg")])
            page.wait_for_function("() => document.querySelectorAll('#chat-input .thumbnail-item, #chat-input img').length >= 1")
            box.locator("textarea").fill("吊牌上写的是什么？")
            box.locator("textarea").press("Enter")
            answers = "[...document.querySelectorAll('#chatbot [data-testid=bot]')].filter(m => !m.querySelector('.thought-group'))"
            page.wait_for_function(f"() => {answers}.length >= 1")
            page.wait_for_selector("#trace:has-text('ocr')")
            time.sleep(1)
            page.screenshot(path=str(args.out / "ui-chat.png"), full_page=True)
            print(page.evaluate(f"() => {answers}.map(m => m.innerText)"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"wrote {args.out / 'ui-search.png'} and {args.out / 'ui-chat.png'}")


if __name__ == "__main__":
    main()
