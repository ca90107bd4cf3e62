#!/usr/bin/env python
"""Generate the bundled sample suite: evals/suites/sample/{images/, train_annotation.csv, query.json}.

Deterministic and rerunnable (same bytes every run on the same Pillow/scikit-image):

- photos from ``skimage.data`` whose docs state CC0 or public domain (astronaut: NASA, public
  domain; coffee, chelsea, camera: CC0 by their photographers; rocket: SpaceX, public domain),
  downscaled to at most 384 px a side;
- product images the project renders itself with PIL: clothing shapes in known colours on
  white (the gold colours are the colours we painted);
- product labels with Chinese + English text rendered in WenQuanYi Micro Hei (the gold text is
  the text we drew).

Usage: ``python scripts/make_sample_suite.py [--out evals/suites/sample]`` (needs scikit-image,
in the ``test`` extra, and /usr/share/fonts/truetype/wqy/wqy-microhei.ttc or ``--font``).

Gold answers live in query.json itself, in extra fields the harness keeps and ignores when
answering: ``gold_type`` (every item), ``gold_image`` (retrieve), ``gold_answer`` (others: a
string, or a list of acceptable short answers). See evals/suites/sample/README.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
SIZE = 384
JPEG_QUALITY = 85

# name -> (skimage.data function, title, licence note)
PHOTOS = {
    "astronaut.jpg": ("astronaut", "NASA 宇航员 橙色宇航服 肖像照片", "NASA, public domain"),
    "coffee.jpg": ("coffee", "红色陶瓷咖啡杯 配碟 意式浓缩咖啡", "CC0, Rachel Michetti"),
    "chelsea.jpg": ("chelsea", "虎斑猫 特写 宠物照片", "CC0, Stefan van der Walt"),
    "rocket.jpg": ("rocket", "猎鹰9号火箭 夜间发射台", "SpaceX, public domain"),
    "camera.jpg": ("camera", "黑白照片 摄影师 三脚架 相机", "CC0, Lav Varshney"),
}

# name -> (shape, fill colour, title)
PRODUCTS = {
    "red_dress.jpg": ("dress", (200, 30, 40), "红色无袖连衣裙 女 夏季 收腰 A字裙"),
    "blue_shirt.jpg": ("shirt", (40, 80, 190), "蓝色长袖衬衫 男 纯棉 商务休闲"),
    "black_trousers.jpg": ("trousers", (25, 25, 25), "黑色直筒长裤 男 西裤 修身"),
    "white_sneakers.jpg": ("sneaker", (245, 245, 245), "白色运动鞋 女 低帮 小白鞋"),
    "yellow_tshirt.jpg": ("tshirt", (240, 200, 30), "黄色短袖T恤 圆领 宽松 纯棉"),
    "green_skirt.jpg": ("skirt", (40, 150, 70), "绿色半身裙 高腰 A字 中长款"),
    "pink_hoodie.jpg": ("hoodie", (240, 140, 180), "粉色连帽卫衣 女 加绒 宽松"),
    "grey_cap.jpg": ("cap", (130, 130, 135), "灰色棒球帽 男女同款 可调节"),
    "brown_handbag.jpg": ("bag", (130, 80, 40), "棕色手提包 女 真皮 大容量"),
}

# name -> (lines, title)
LABELS = {
    "label_cotton.jpg": (["纯棉", "100% COTTON"], "服装成分标签 纯棉 100% COTTON"),
    "label_size.jpg": (["尺码: XL", "SIZE: XL", "180/100A"], "服装尺码标签 XL 180/100A"),
    "label_brand.jpg": (["品牌: 山海", "SHANHAI"], "品牌吊牌 山海 SHANHAI"),
    "label_origin.jpg": (["产地: 中国", "MADE IN CHINA"], "产地标签 中国制造 MADE IN CHINA"),
    "label_wash.jpg": (
        ["洗涤说明", "30°C 手洗", "不可漂白", "低温熨烫"],
        "洗涤说明标签 30度手洗 不可漂白 低温熨烫",
    ),
    "label_price.jpg": (["特价 ¥199", "原价 ¥399"], "价格吊牌 特价199元 原价399元"),
}


def _shape(draw: ImageDraw.ImageDraw, shape: str, fill: tuple[int, int, int]) -> None:
    outline = (90, 90, 90) if sum(fill) > 600 else None  # white items need an edge on white
    s = SIZE / 384

    def P(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * s, y * s) for x, y in points]

    if shape == "dress":
        draw.polygon(P([(150, 50), (234, 50), (250, 170), (320, 350), (64, 350), (134, 170)]), fill, outline)
        draw.rectangle(P([(134, 160), (250, 176)]), fill=tuple(max(c - 40, 0) for c in fill))
    elif shape in ("shirt", "tshirt", "hoodie"):
        long = shape != "tshirt"
        body = [(120, 60), (264, 60), (270, 340), (114, 340)]
        draw.polygon(P(body), fill, outline)
        if long:
            draw.polygon(P([(120, 60), (60, 110), (40, 300), (80, 305), (112, 150)]), fill, outline)
            draw.polygon(P([(264, 60), (324, 110), (344, 300), (304, 305), (272, 150)]), fill, outline)
        else:
            draw.polygon(P([(120, 60), (60, 100), (85, 150), (118, 125)]), fill, outline)
            draw.polygon(P([(264, 60), (324, 100), (299, 150), (266, 125)]), fill, outline)
        if shape == "shirt":
            draw.polygon(P([(170, 60), (192, 100), (214, 60)]), (250, 250, 250))
            for y in range(110, 330, 40):
                draw.ellipse(P([(187, y), (197, y + 10)]), fill=(240, 240, 240))
        elif shape == "hoodie":
            draw.ellipse(P([(140, 20), (244, 110)]), fill, outline)
            draw.ellipse(P([(165, 45), (219, 100)]), fill=tuple(max(c - 60, 0) for c in fill))
            draw.rectangle(P([(150, 250), (234, 310)]), fill=tuple(max(c - 25, 0) for c in fill))
        else:
            draw.arc(P([(165, 40), (219, 90)]), 0, 180, fill=(255, 255, 255), width=6)
    elif shape == "trousers":
        draw.polygon(P([(120, 40), (264, 40), (280, 350), (210, 350), (192, 150), (174, 350), (104, 350)]), fill, outline)
        draw.rectangle(P([(120, 40), (264, 62)]), fill=(60, 60, 60))
    elif shape == "skirt":
        draw.polygon(P([(140, 80), (244, 80), (320, 320), (64, 320)]), fill, outline)
        draw.rectangle(P([(140, 70), (244, 95)]), fill=tuple(max(c - 40, 0) for c in fill))
    elif shape == "sneaker":
        for dx, dy in ((0, 0), (40, 90)):
            draw.polygon(P([(40 + dx, 180 + dy), (150 + dx, 130 + dy), (210 + dx, 170 + dy), (300 + dx, 190 + dy), (310 + dx, 230 + dy), (40 + dx, 230 + dy)]), fill, outline)
            draw.rectangle(P([(38 + dx, 230 + dy), (312 + dx, 246 + dy)]), fill=(200, 200, 200), outline=outline)
            for i in range(4):
                draw.line(P([(130 + dx + i * 18, 150 + dy), (145 + dx + i * 18, 170 + dy)]), fill=(150, 150, 150), width=3)
    elif shape == "cap":
        draw.chord(P([(90, 100), (294, 300)]), 180, 360, fill, outline)
        draw.polygon(P([(260, 200), (350, 215), (350, 230), (250, 215)]), tuple(max(c - 30, 0) for c in fill))
        draw.ellipse(P([(184, 94), (200, 110)]), fill=tuple(max(c - 50, 0) for c in fill))
    elif shape == "bag":
        draw.arc(P([(130, 60), (254, 200)]), 180, 360, fill=tuple(max(c - 40, 0) for c in fill), width=int(12 * s))
        draw.rounded_rectangle(P([(80, 130), (304, 320)]), radius=int(20 * s), fill=fill, outline=outline)
        draw.rectangle(P([(176, 170), (208, 195)]), fill=(210, 180, 60))
    else:  # pragma: no cover
        raise ValueError(shape)


def render_product(shape: str, fill: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    _shape(ImageDraw.Draw(img), shape, fill)
    return img


def render_label(lines: list[str], font_path: str) -> Image.Image:
    font = ImageFont.truetype(font_path, 40)
    width, line_h = 420, 58
    height = 50 + line_h * len(lines)
    img = Image.new("RGB", (width, height), (250, 248, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle([(6, 6), (width - 7, height - 7)], outline=(60, 60, 60), width=3)
    for i, line in enumerate(lines):
        w = draw.textlength(line, font=font)
        draw.text(((width - w) / 2, 25 + i * line_h), line, fill=(20, 20, 20), font=font)
    return img


def photo(func: str) -> Image.Image:
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, func)()).convert("RGB")
    img.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    return img


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def queries() -> list[dict]:
    """The questions with their gold fields (type, image, answer)."""

    def q(question: str, related: str, gold_type: str, **gold: object) -> dict:
        item = {"question": question, "related_image": related, "answer": "", "gold_type": gold_type}
        item.update({f"gold_{k}": v for k, v in gold.items()})
        return item

    return [
        # describe: gold_answer is a reference description (BLEU/ROUGE-L)
        q("请对给定的图片进行描述。", "red_dress.jpg", "describe", answer="一件红色的无袖连衣裙，收腰设计，白色背景。"),
        q("请对给定的图片进行描述。", "coffee.jpg", "describe", answer="一个红色的咖啡杯放在红色的碟子上，杯中是咖啡，旁边有一把勺子，放在木桌上。"),
        q("Describe this image.", "astronaut.jpg", "describe", answer="An astronaut in an orange suit smiling, with a helmet, the American flag and a space shuttle behind her."),
        q("请描述这张图片。", "white_sneakers.jpg", "describe", answer="一双白色的低帮运动鞋，白色背景。"),
        q("请对给定的图片进行描述。", "chelsea.jpg", "describe", answer="一只虎斑猫的面部特写，绿色的眼睛。"),
        # retrieve: related_image empty; gold_image is the best match
        q("请匹配到与 红色无袖连衣裙 女 夏季 最相关的图片。", "", "retrieve", image="red_dress.jpg"),
        q("请匹配到与 男士纯棉蓝色长袖衬衫 最相关的图片。", "", "retrieve", image="blue_shirt.jpg"),
        q("请匹配到与 黑色西裤 直筒 最相关的图片。", "", "retrieve", image="black_trousers.jpg"),
        q("请匹配到与 粉色加绒连帽卫衣 最相关的图片。", "", "retrieve", image="pink_hoodie.jpg"),
        q("Find the image that best matches: brown leather handbag", "", "retrieve", image="brown_handbag.jpg"),
        q("请匹配到与 红色陶瓷咖啡杯 最相关的图片。", "", "retrieve", image="coffee.jpg"),
        # vqa: short gold answers (exact match / contains), a list = any of them is right
        q("这件连衣裙是什么颜色的？", "red_dress.jpg", "vqa", answer=["红色", "红"]),
        q("What colour are these shoes?", "white_sneakers.jpg", "vqa", answer=["white"]),
        q("这条裤子是什么颜色？", "black_trousers.jpg", "vqa", answer=["黑色", "黑"]),
        q("这件T恤是什么颜色的？", "yellow_tshirt.jpg", "vqa", answer=["黄色", "黄"]),
        q("这件衣服的面料是什么？", "label_cotton.jpg", "vqa", answer=["纯棉", "棉", "100% COTTON"]),
        q("这条裙子是什么颜色？", "green_skirt.jpg", "vqa", answer=["绿色", "绿"]),
        q("What animal is in the picture?", "chelsea.jpg", "vqa", answer=["cat", "a cat"]),
        # ocr: gold_answer is the label's text (or the asked part of it)
        q("请识别图片中标签上的文字。", "label_cotton.jpg", "ocr", answer="纯棉 100% COTTON"),
        q("What does the label say?", "label_origin.jpg", "ocr", answer="产地: 中国 MADE IN CHINA"),
        q("标签上的尺码是多少？", "label_size.jpg", "ocr", answer=["XL"]),
        q("吊牌上写的品牌是什么？", "label_brand.jpg", "ocr", answer=["山海", "SHANHAI"]),
        q("请读出洗涤说明标签上的文字。", "label_wash.jpg", "ocr", answer="洗涤说明 30°C 手洗 不可漂白 低温熨烫"),
        q("吊牌上的特价是多少钱？", "label_price.jpg", "ocr", answer=["¥199", "199"]),
        # compare: two images, comma separated
        # (a reference sentence for BLEU/ROUGE-L, and the short fact that decides it for contains)
        q("这两件衣服的颜色有什么不同？", "red_dress.jpg,blue_shirt.jpg", "compare", answer=["第一件是红色的连衣裙，第二件是蓝色的衬衫。", "蓝色"]),
        q("Which of these two images shows shoes?", "black_trousers.jpg,white_sneakers.jpg", "compare", answer=["The second image shows shoes: a pair of white sneakers.", "second"]),
        q("比较这两张图片中的商品，哪一个是帽子？", "grey_cap.jpg,brown_handbag.jpg", "compare", answer=["第一张图片是帽子，是一顶灰色的棒球帽。", "第一张"]),
        # chat: no image; only the type is scored (no gold answer)
        q("你好，你能帮我做什么？", "", "chat"),
        q("纯棉衣服应该怎么洗比较好？", "", "chat"),
        q("What is the difference between a hoodie and a sweatshirt?", "", "chat"),
        # compare and describe with short, checkable gold answers (gold_split: "tune" items were
        # looked at while writing the compare/describe prompts; "holdout" items were not)
        q("这两件衣服哪一件是裙子？", "red_dress.jpg,blue_shirt.jpg", "compare", answer="第一张", split="tune"),
        q("Which of these two images shows a bag?", "grey_cap.jpg,brown_handbag.jpg", "compare", answer="second", split="tune"),
        q("比较这两件商品，哪一个是鞋？", "white_sneakers.jpg,yellow_tshirt.jpg", "compare", answer="第一张", split="tune"),
        q("这两件衣服的颜色一样吗？", "yellow_tshirt.jpg,green_skirt.jpg", "compare", answer="不同", split="tune"),
        q("What colour is each of these two items?", "pink_hoodie.jpg,black_trousers.jpg", "compare", answer="pink", split="tune"),
        q("这两张图片里哪一个是猫？", "coffee.jpg,chelsea.jpg", "compare", answer="第二张", split="holdout"),
        q("Which image shows a rocket?", "camera.jpg,rocket.jpg", "compare", answer="second", split="holdout"),
        q("这两件的颜色有什么区别？", "black_trousers.jpg,white_sneakers.jpg", "compare", answer="黑色", split="holdout"),
        q("请描述这张图片。", "brown_handbag.jpg", "describe", answer="手提包", split="tune"),
        q("Describe this image.", "rocket.jpg", "describe", answer="rocket", split="tune"),
        q("请对给定的图片进行描述。", "pink_hoodie.jpg", "describe", answer="卫衣", split="tune"),
        q("请描述这张图片。", "green_skirt.jpg", "describe", answer="裙", split="holdout"),
        q("Describe this image.", "chelsea.jpg", "describe", answer="cat", split="holdout"),
        # match: does the image fit the description? The verdict word leads the answer (yes items
        # in English: a Chinese gold 符合 is also inside 不符合)
        q("Is this a picture of a red sleeveless dress?", "red_dress.jpg", "match", answer=["yes"]),
        q("这张图片是否符合这个产品的描述：蓝色衬衫？", "red_dress.jpg", "match", answer=["不符合"]),
        q("Does this image match: a size label reading XL?", "label_size.jpg", "match", answer=["yes"]),
        q("这是产地为 MADE IN CHINA 的标签吗？", "label_brand.jpg", "match", answer=["不符合"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=root / "evals" / "suites" / "sample")
    parser.add_argument("--font", default=FONT)
    args = parser.parse_args()
    out: Path = args.out
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)

    rows: list[tuple[str, str]] = []
    for name, (func, title, _licence) in PHOTOS.items():
        (images / name).write_bytes(jpeg_bytes(photo(func)))
        rows.append((name, title))
    for name, (shape, fill, title) in PRODUCTS.items():
        (images / name).write_bytes(jpeg_bytes(render_product(shape, fill)))
        rows.append((name, title))
    for name, (lines, title) in LABELS.items():
        (images / name).write_bytes(jpeg_bytes(render_label(lines, args.font)))
        rows.append((name, title))

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "title"])
    writer.writerows(rows)
    (out / "train_annotation.csv").write_bytes(buf.getvalue().encode("utf-8-sig"))

    items = queries()
    names = {name for name, _ in rows}
    for i, item in enumerate(items):
        refs = [p for p in item["related_image"].split(",") if p] + ([item["gold_image"]] if "gold_image" in item else [])
        missing = [p for p in refs if p not in names]
        if missing:
            raise SystemExit(f"query {i} names unknown images {missing}")
    (out / "query.json").write_text(json.dumps(items, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    total = sum(p.stat().st_size for p in images.iterdir())
    print(f"{len(rows)} images ({total / 1024:.0f} KiB), {len(items)} questions -> {out}")


if __name__ == "__main__":
    main()
