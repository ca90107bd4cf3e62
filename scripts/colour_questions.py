#!/usr/bin/env python
"""Colour questions on untitled images through the real agent (your settings; the offline LLM
with ``VLAGENT_PROFILE=offline``): is the colour the tool measured in every answer?

    VLAGENT_PROFILE=offline python scripts/colour_questions.py

The images: the sample suite's photos with no titles (no annotations given) and plain coloured
shapes drawn here. Each question is asked in Chinese and English; a line per answer says the
type the agent chose, whether the measured main colour (any shade of it, either language) is in
the answer, and the answer. The last line counts them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from vlagent import build_agent
from vlagent.agent.facts import basic_of, colour_words

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "evals" / "suites" / "sample" / "images"

SHAPES = [("green circle", (30, 160, 60), "ellipse"), ("red square", (200, 30, 30), "rectangle"),
          ("blue triangle", (40, 70, 200), "polygon"), ("yellow circle", (240, 210, 30), "ellipse")]  # fmt: skip
PHOTOS = ["red_dress.jpg", "blue_shirt.jpg", "white_sneakers.jpg", "yellow_tshirt.jpg", "pink_hoodie.jpg", "green_skirt.jpg"]
QUESTIONS = {
    "shape": ["what is the color of the {what}?", "这个{what_zh}是什么颜色的？"],
    "photo": ["What colour is this?", "这件商品是什么颜色的？"],
}
ZH_SHAPES = {"circle": "圆", "square": "方块", "triangle": "三角形"}


def draw(folder: Path) -> list[tuple[str, str]]:
    out = []
    for what, rgb, shape in SHAPES:
        img = Image.new("RGB", (200, 200), (255, 255, 255))
        d = ImageDraw.Draw(img)
        if shape == "polygon":
            d.polygon([(100, 30), (170, 170), (30, 170)], fill=rgb)
        else:
            getattr(d, shape)((40, 40, 160, 160), fill=rgb)
        name = what.replace(" ", "_") + ".png"
        img.save(folder / name)
        out.append((name, what))
    return out


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="colour-questions-"))
    shapes = draw(folder)
    for name in PHOTOS:
        if (SAMPLE / name).is_file():
            (folder / name).write_bytes((SAMPLE / name).read_bytes())
    agent = build_agent(images=[folder])  # no annotations: every image is untitled
    right = total = 0
    cases = [(n, q.format(what=w.split()[1], what_zh=ZH_SHAPES[w.split()[1]])) for n, w in shapes for q in QUESTIONS["shape"]]
    cases += [(n, q) for n in PHOTOS if (folder / n).is_file() for q in QUESTIONS["photo"]]
    for image, question in cases:
        answer = agent.invoke(question, images=[image])
        measured = next((t.output for t in answer.trace if t.name == "colors" and t.ok and t.output), None)
        main_colour = basic_of(str(measured[0].get("name_en"))) if measured else None
        said = {basic_of(en) for en in colour_words().find(answer.text)}
        ok = main_colour is not None and main_colour in said
        right += ok
        total += 1
        print(f"{'ok ' if ok else 'NO '} {answer.type:<8} measured {main_colour or '?':<7} {image:<18} {question}  →  {answer.text}")
    print(f"\nthe measured colour is in {right} of {total} answers")


if __name__ == "__main__":
    main()
