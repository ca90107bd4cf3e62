"""The light install: the offline profile's code paths import no torch stack, and whatever needs
it says which extra to install in one line.

Every command runs in a real process whose imports of torch, torchvision, transformers and
open_clip are blocked (``tests/light_site/sitecustomize.py``, inherited by child processes such as
the LLM's self-check), as in an install without the ``vision`` extra; each import attempt is
logged, so an attempt that a ``try/except ImportError`` would swallow is seen too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlagent.agent.vote import Fusion, write_fusion
from fake_servers import FakeOpenAIServer
from fixtures_data import Catalogue

LIGHT_SITE = Path(__file__).parent / "light_site"
EXTRA_LINE = "pip install 'vlagent[vision]'"


@pytest.fixture()
def light(tmp_path: Path, smollm_gguf: Path):  # type: ignore[no-untyped-def]
    """Run ``vlagent ARGS`` in a light-install process; returns (process, import attempts)."""
    log = tmp_path / "imports.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLAGENT_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(LIGHT_SITE), *filter(None, [os.environ.get("PYTHONPATH")])]),
        VLAGENT_TEST_IMPORT_LOG=str(log), VLAGENT_HOME=str(tmp_path / "home"),
        VLAGENT_LLM_GGUF=str(smollm_gguf), VLAGENT_LLM_N_CTX="2048",
    )  # fmt: skip

    def run(*args: str, **extra_env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        proc = subprocess.run(
            [sys.executable, "-m", "vlagent.cli", *args], env={**env, **extra_env}, cwd=tmp_path,
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        attempts = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return proc, attempts

    return run


def test_the_blocker_works(light) -> None:  # type: ignore[no-untyped-def]
    """The control: a command that needs torch is refused in one line, and nothing was imported
    (the extra is asked for before any import)."""
    proc, attempts = light("models", "convert", "offline")
    assert proc.returncode == 2, proc.stderr
    assert "converting" in proc.stderr and EXTRA_LINE in proc.stderr and "Traceback" not in proc.stderr
    assert attempts == []


@pytest.mark.slow
def test_the_offline_path_imports_no_torch_stack(light, catalogue: Catalogue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The offline profile's commands make not one import attempt of torch, torchvision,
    transformers or open_clip: `vlagent eval` (agent, rapidocr, colours, e5 title search, the
    image-text index, the harness, the report; the LLM behind the fake server, with the same
    client as the in-process engine) and `vlagent doctor`, whose child processes load and run
    the in-process llama.cpp LLM, the OCR and the text embedder for real."""
    items = [
        {"question": "请对给定的图片进行描述。", "related_image": "dress_red.jpg", "answer": ""},
        {"question": "这件衣服是什么颜色的？", "related_image": "shirt_blue.jpg", "answer": ""},
        {"question": "请匹配到与 蓝色男士衬衫长袖纯棉 最相关的图片。", "related_image": "", "answer": ""},
        {"question": "你好", "related_image": "", "answer": ""},
    ]
    query = tmp_path / "query.json"
    query.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "answers.json"
    write_fusion(Fusion(model="fake", llm_weight=1.0, ask_below=1.01), tmp_path / "home" / "fusion")  # the LLM votes on each
    with FakeOpenAIServer() as server:
        proc, attempts = light(
            "eval", str(query), "--images", str(catalogue.folder), "--annotations", str(catalogue.csv),
            "--out", str(out), "--report-dir", str(tmp_path / "report"), "--no-progress",
            VLAGENT_PROFILE="offline", VLAGENT_LLM_BACKEND="openai", VLAGENT_LLM_BASE_URL=server.url,
            VLAGENT_LLM_MODEL="fake",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert server.kinds().count("classify") == len(items)  # the LLM was asked
    assert attempts == [], attempts
    answers = json.loads(out.read_text(encoding="utf-8"))
    assert all(a["answer"] or a["related_image"] for a in answers)
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["answered"] == len(items)
    assert any("ocr" in row["tools"] for row in report["items"])  # rapidocr ran in this process

    proc, attempts = light("doctor", "--json", VLAGENT_PROFILE="offline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = {c["role"]: c for c in json.loads(proc.stdout) if c["ran"]}
    assert set(ran) == {"llm", "ocr", "text_embedder"} and all(c["ok"] for c in ran.values()), ran
    assert attempts == [], attempts


@pytest.mark.parametrize(
    "args, words",
    [
        (["finetune", "--images", "IMAGES", "-a", "CSV"], ["vlagent finetune needs torch"]),
        (["classify", "IMAGE", "--labels", "连衣裙,衬衫"], ["clip:", "needs torch"]),
        (["search", "红色连衣裙"], ["clip:", "needs torch"]),
    ],
    ids=["finetune", "classify", "search"],
)
def test_a_command_that_needs_the_vision_extra_says_so_in_one_line(light, catalogue: Catalogue, args: list[str], words: list[str]) -> None:  # type: ignore[no-untyped-def]
    paths = {"IMAGES": str(catalogue.folder), "CSV": str(catalogue.csv), "IMAGE": str(catalogue.path("dress_red.jpg"))}
    proc, attempts = light(*[paths.get(a, a) for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and EXTRA_LINE in lines[0], proc.stderr
    assert all(w in lines[0] for w in words), lines
    assert attempts == []


def test_doctor_and_models_list_name_the_extra_for_each_torch_role(light) -> None:  # type: ignore[no-untyped-def]
    proc, attempts = light("doctor", "--no-run", "--json", VLAGENT_PROFILE="hub", VLAGENT_LLM_BACKEND="transformers")
    checks = {c["role"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1  # clip, llm (transformers) and vqa are required by the hub profile
    for role in ("clip", "llm", "caption", "vqa"):
        assert not checks[role]["available"] and EXTRA_LINE in checks[role]["detail"], checks[role]
    assert checks["ocr"]["available"] and checks["text_embedder"]["available"]

    proc, more = light("doctor", "--no-run", "--json", VLAGENT_PROFILE="offline")
    checks = {c["role"]: c for c in json.loads(proc.stdout)}
    assert EXTRA_LINE in checks["clip"]["detail"] and not checks["clip"]["required"]
    assert all(checks[r]["available"] for r in ("llm", "ocr", "text_embedder"))
    assert proc.returncode == 0, proc.stdout  # nothing the offline profile needs is missing

    proc, most = light("models", "list", "--no-check", VLAGENT_PROFILE="offline", COLUMNS="400")
    assert proc.returncode == 0, proc.stderr
    clip_rows = [ln for ln in proc.stdout.splitlines() if ln.strip("│ ").startswith("clip ")]
    assert clip_rows and EXTRA_LINE in clip_rows[0], proc.stdout
    assert attempts == more == most == []
