"""The image-text index builds in the background where the agent starts: questions about a given
image are answered meanwhile, retrieval waits for the index (or says how much it searched).

The order is shown with a slow OCR (every call sleeps) through the real ``vlagent eval`` on a
catalogue of label images and photos, with the index built in this process (one worker) so the
slow OCR is the one it runs."""

from __future__ import annotations

import json
import threading
import time
from contextlib import nullcontext
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fixtures_vision import label_catalogue
from vlagent.data.annotations import Annotation
from vlagent.index.background import BackgroundBuild
from vlagent.index.shared import Coverage
from vlagent.index.titles import TitleIndex
from vlagent.models.ocr import OcrEngine
from vlagent.tools.retrieval import make_title_tool

SAMPLE = Path(str(resources.files("vlagent.evals").joinpath("suites/sample")))
SLOW_OCR_S = 0.4
PHOTOS = ["red_dress.jpg", "grey_cap.jpg", "blue_shirt.jpg", "yellow_tshirt.jpg", "green_skirt.jpg", "pink_hoodie.jpg",
          "black_trousers.jpg", "brown_handbag.jpg", "white_sneakers.jpg"]  # fmt: skip


@pytest.fixture()
def catalogue(tmp_path: Path, label_images: dict[str, Path]) -> Path:
    return label_catalogue(tmp_path / "catalogue", label_images, ("label_en.png",), PHOTOS)


def _eval(catalogue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background: bool) -> dict[str, Any]:
    """``vlagent eval`` of an OCR question about one image, then a retrieval by label text, with
    an OCR that takes SLOW_OCR_S a call: when each answer and the index build ended."""
    from vlagent.agent.build import VLAgent
    from vlagent.cli import eval_cmd
    from vlagent.cli.app import app
    from vlagent.index.shared import text_index_build

    env = {
        "VLAGENT_HOME": str(tmp_path / f"home-{background}"), "VLAGENT_LLM_BACKEND": "none",
        "VLAGENT_CLIP_BACKEND": "none", "VLAGENT_CAPTION_BACKEND": "none", "VLAGENT_VQA_BACKEND": "none",
        "VLAGENT_INDEX_WORKERS": "1", "VLAGENT_INDEX_BACKGROUND": str(background).lower(),
    }  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    read = OcrEngine.read

    def slow_read(self: OcrEngine, image: Any) -> Any:
        time.sleep(SLOW_OCR_S)
        return read(self, image)

    monkeypatch.setattr(OcrEngine, "read", slow_read)
    answered: dict[str, float] = {}
    invoke = VLAgent.invoke

    def timed_invoke(self: VLAgent, question: Any, *args: Any, **kwargs: Any) -> Any:
        answer = invoke(self, question, *args, **kwargs)
        answered[str(question["question"] if isinstance(question, dict) else question)] = time.monotonic()
        return answer

    monkeypatch.setattr(VLAgent, "invoke", timed_invoke)
    agents: list[VLAgent] = []
    make_agent = eval_cmd.make_agent
    monkeypatch.setattr(eval_cmd, "make_agent", lambda *a: agents.append(make_agent(*a)) or agents[-1])

    ocr_q, find_q = "请识别图片中标签上的文字。", "请匹配到与 MACHINE WASH COLD 100% COTTON 最相关的图片。"
    query = tmp_path / f"query-{background}.json"
    items = [{"question": ocr_q, "related_image": "label_en.png", "answer": ""},
             {"question": find_q, "related_image": "", "answer": ""}]  # fmt: skip
    query.write_text(json.dumps(items, ensure_ascii=False), "utf-8")
    out = tmp_path / f"run-{background}" / "answers.json"
    result = CliRunner().invoke(app, ["eval", str(query), "--images", str(catalogue), "--out", str(out)])
    assert result.exit_code == 0, result.output
    build = text_index_build(agents[0].ctx)
    assert build is not None and build.complete and build.ended is not None
    filled = json.loads(out.read_text("utf-8"))
    return {"ocr": answered[ocr_q], "find": answered[find_q], "built": build.ended, "answers": filled, "output": result.output}


def test_eval_answers_an_image_question_before_the_index_is_complete(
    catalogue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _eval(catalogue, tmp_path, monkeypatch, background=True)
    # 10 images x 0.4 s of OCR: the OCR question about one image does not wait for them ...
    assert run["ocr"] < run["built"]
    assert "COTTON" in run["answers"][0]["answer"].upper()
    # ... the retrieval waits for the whole catalogue (with its bar) and finds the label by its text
    assert run["find"] > run["built"]
    assert run["answers"][1]["related_image"] == "label_en.png"
    assert "image text catalogue (retrieval waits for it)" in run["output"]


def test_the_blocking_order_answers_after_the_whole_index(
    catalogue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _eval(catalogue, tmp_path, monkeypatch, background=False)  # VLAGENT_INDEX_BACKGROUND=false
    assert run["built"] < run["ocr"] < run["find"]
    assert run["answers"][1]["related_image"] == "label_en.png"


# ----------------------------------------------------------------------------------------
# waiting, and searching a partly built index
# ----------------------------------------------------------------------------------------
def test_a_wait_ends_with_the_build_or_after_its_time_with_the_coverage() -> None:
    go = threading.Event()

    def run(build: BackgroundBuild[str]) -> str:
        build.value = "partial"
        build.advance(3)
        go.wait(10)
        build.advance(7)
        return "complete"

    build: BackgroundBuild[str] = BackgroundBuild("image text", 10, run)
    drawn: list[tuple[str, int]] = []

    def bar(label: str, total: int) -> Any:
        drawn.append((label, total))
        return nullcontext(lambda n: None)

    t0 = time.monotonic()
    assert build.wait(0.3, progress=bar) is False  # the time ran out: the build goes on
    assert 0.3 <= time.monotonic() - t0 < 5
    assert (build.value, build.coverage(), build.complete) == ("partial", (3, 10), False)
    assert drawn == [("image text (retrieval waits for it)", 10)]
    go.set()
    assert build.wait(10) is True
    assert (build.value, build.coverage(), build.complete) == ("complete", (10, 10), True)


def test_a_failed_build_ends_the_wait_and_keeps_what_it_had() -> None:
    def run(build: BackgroundBuild[str]) -> str:
        build.value = "half"
        raise RuntimeError("disk full")

    build: BackgroundBuild[str] = BackgroundBuild("image text", 4, run)
    assert build.wait(10) is True
    assert (build.value, build.error, build.complete) == ("half", "RuntimeError: disk full", False)


def test_a_search_of_a_partial_index_says_how_much_it_searched() -> None:
    titles = TitleIndex([Annotation(image="a.jpg", title="红色连衣裙")], semantic=False)
    partial = make_title_tool(lambda: (titles, Coverage(412, 1000)))
    text = partial.invoke({"text": "红色连衣裙", "k": 1})
    assert "a.jpg" in text and "searched 412 of 1000 catalogue images" in text
    complete = make_title_tool(lambda: (titles, None))
    assert "searched" not in complete.invoke({"text": "红色连衣裙", "k": 1})


EXIT_MID_BUILD = """
import sys, time
from vlagent.index import text_readers
from vlagent.index.shared import text_index_build
from vlagent.models.context import ToolContext
from vlagent.settings import Settings

text_readers.MIN_POOL_IMAGES = 1  # the worker processes, on a small catalogue
ctx = ToolContext.from_settings(Settings(index_workers=2), [sys.argv[1]])
build = text_index_build(ctx)
while not text_readers._BACKGROUND and not build.ready.is_set():  # until its workers start
    time.sleep(0.05)
time.sleep(0.5)
print("exiting", build.ready.is_set(), flush=True)
"""


def test_a_process_that_exits_mid_build_stops_its_workers_quietly_and_the_next_start_continues(
    catalogue: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from vlagent.index.text_index import TextIndex
    from vlagent.settings import Settings

    env = {**os.environ, "VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_LOG_LEVEL": "INFO"}
    done = subprocess.run([sys.executable, "-c", EXIT_MID_BUILD, str(catalogue)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exiting False" in done.stdout  # mid-build
    assert "Traceback" not in done.stderr and "WARNING" not in done.stderr, done.stderr  # no "worker died"
    settings = Settings(home=tmp_path / "home")
    stored = TextIndex.open(settings).count()
    assert stored < len(PHOTOS) + 1  # it stopped with its process
    from vlagent.cache import DiskCache

    # its workers were stopped while they started, not left to finish an image each
    assert len(DiskCache(settings.cache_dir / "tools.sqlite")) == 0
    from vlagent.data.images import open_source
    from vlagent.index.text_index import index_image_texts
    from vlagent.models.context import ToolContext

    with open_source(catalogue) as source:
        resumed = index_image_texts(source, TextIndex.open(settings), ToolContext.from_settings(settings, [catalogue]))
    assert (resumed.skipped, resumed.indexed, resumed.count) == (stored, len(PHOTOS) + 1 - stored, len(PHOTOS) + 1)
