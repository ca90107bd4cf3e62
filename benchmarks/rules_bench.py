#!/usr/bin/env python
"""Seconds the understanding pass takes on long questions, now and before issue 21 (the rule
classifier of an older commit, read from git), per kind of text and length.

    python benchmarks/rules_bench.py                         # 5k, 20k, 40k, 200k characters
    python benchmarks/rules_bench.py --lengths 5000 20000 --before 9b2b0c7 --timeout 30

Each figure is, now, one understanding pass with no LLM (:class:`Understander`: the learned
classifier, the cues, the language) plus both query extractions (search and description) on
the same text; before, ``classify_rules(text, [])`` and the guards' patterns; in a child
process stopped after ``--timeout`` seconds (printed as ``> T``): the old rules were quadratic
on some of these texts, hours at 200,000 characters. The texts: realistic questions repeated
(Chinese, English, one line or many, a long title search) and adversarial ones (a title-search
word over and over with nothing to close the title, a search verb and a long run of spaces,
thousands of image names).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: main before issue 21 items 4-5 (the rules' regexes were super-linear)
BEFORE = "9b2b0c7"


def text_of(kind: str, n: int) -> str:
    def repeat(unit: str) -> str:
        return (unit * (n // len(unit) + 1))[:n]

    if kind == "zh question":
        return repeat("这件衣服是什么颜色的？面料是纯棉的吗？")
    if kind == "en question":
        return repeat("What colour is this shirt and what does the label say? ")
    if kind == "zh lines":
        return repeat("这件衣服是什么颜色的？\n面料是纯棉的吗？\n")
    if kind == "zh title search":
        return "请匹配到与 " + repeat("夏季新款雪纺碎花连衣裙女中长款 ")[: max(1, n - 14)] + " 最相关的图片。"
    if kind == "和 × n":
        return repeat("和")
    if kind == "找 × n":
        return repeat("找")
    if kind == "find + spaces":
        return "find" + " " * (n - 5) + "x"
    if kind == "image names":
        return " ".join(f"p{i}.jpg" for i in range(n // 6 + 1))[:n]
    raise ValueError(kind)


KINDS = ["zh question", "en question", "zh lines", "zh title search", "和 × n", "找 × n", "find + spaces", "image names"]


def load_rules(rev: str | None):  # type: ignore[no-untyped-def]
    """The old ``vlagent.agent.rules`` as it was at git revision ``rev`` (None now: there is none)."""
    if rev is None:
        return None, None
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/vlagent/agent/rules.py"],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "rules_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("rules_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, None


def one(rev: str | None, kind: str, n: int) -> float:
    """Seconds for one text: the understanding pass now, the rules and guards' patterns before."""
    text = text_of(kind, n)
    if rev is None:
        from vlagent.agent.query import match_text, search_text
        from vlagent.agent.understand import Understander

        understand = Understander()
        understand("warm up", [], None)  # the model's load is not the text's cost
        started = time.perf_counter()
        understand(text, [], None)
        search_text(text, []), match_text(text)
        return time.perf_counter() - started
    rules, _ = load_rules(rev)
    started = time.perf_counter()
    rules.classify_rules(text, [])
    rules.merge_images([], text), rules.detect_language(text)
    rules._COMPARE.search(text), rules._VISUAL_REF.search(text)
    return time.perf_counter() - started


def measure(rev: str | None, kind: str, n: int, timeout: float) -> str:
    cmd = [sys.executable, __file__, "--one", json.dumps([rev, kind, n])]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except subprocess.TimeoutExpired:
        return f"> {timeout:g}"
    return f"{float(out.strip()):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[5_000, 20_000, 40_000, 200_000])
    ap.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    ap.add_argument("--before", default=BEFORE, help="git revision of the old rules ('' to skip them)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per measurement")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        rev, kind, n = json.loads(args.one)
        print(one(rev, kind, n))
        return
    versions = [("now", None)] + ([(f"before ({args.before})", args.before)] if args.before else [])
    header = f"{'text':<18} {'version':<18}" + "".join(f"{n:>10,}" for n in args.lengths)
    print(f"seconds per question (understanding pass now; classify_rules + guards before), by length in characters\n{header}")
    for kind in args.kinds:
        for label, rev in versions:
            cells = [measure(rev, kind, n, args.timeout) for n in args.lengths]
            print(f"{kind:<18} {label:<18}" + "".join(f"{c:>10}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
