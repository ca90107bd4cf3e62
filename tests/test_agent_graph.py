"""Routing and graph logic: scripted classifications, fake tools, LangChain fake chat models."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver

from vlagent.agent.build import VLAgent, make_checkpointer, state_serializer
from vlagent.agent.cues import read_cues
from vlagent.agent.graph import build_graph
from vlagent.agent.spec import build_spec
from vlagent.agent.state import AgentParts
from vlagent.agent.types import ClassifierResult, Intent, QuestionType
from vlagent.errors import ImageError
from vlagent.settings import Settings

#: the built-in cards and tools, no plugins (the fakes below have the real tools' names and arguments)
SPEC = build_spec(Settings(), plugins=False)


class FakeTools:
    """Tools with the real names and signatures that record their calls."""

    def __init__(self, fail: set[str] | None = None, missing_images: set[str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail or set()
        self.missing = missing_images or set()

    def _run(self, name: str, args: dict[str, Any], content: str, artifact: Any) -> tuple[str, Any]:
        self.calls.append((name, args))
        for image in [args.get("image"), *(args.get("images") or [])]:
            if image in self.missing:
                raise ImageError(f"{image}: image not found (looked in the catalogue)")
        if name in self.fail:
            raise RuntimeError(f"{name} exploded")
        return content, artifact

    #: canned (content, artifact) per tool; a tool not listed here answers "<name> result"
    OUTPUTS: dict[str, tuple[str, Any]] = {
        "ocr": ("纯棉 100% COTTON", {"text": "纯棉 100% COTTON"}),
        "colors": ("主要颜色: 红色 (70%) | main colours: red (70%)", []),
        "caption": ("a red dress on a white background", {}),
        "vqa": ("红色", {}),
        "clip_search": ("1. b.jpg\n2. a.jpg", [{"image": "b.jpg", "score": 0.9, "title": "红色连衣裙"}, {"image": "a.jpg", "score": 0.4, "title": ""}]),
        "image_search": ("1. c.jpg", [{"image": "c.jpg", "score": 0.8, "title": ""}]),
        "title_search": ("1. b.jpg", [{"image": "b.jpg", "score": 0.7, "title": "红色连衣裙"}]),
        "recommend": ("1. d.jpg — 蓝色衬衫", [{"image": "d.jpg", "score": 0.6, "title": "蓝色衬衫", "why": "蓝色衬衫"}]),
    }

    def build(self, names: list[str] | None = None) -> dict[str, StructuredTool]:
        """A fake of every registered tool (same name and typed arguments), or of ``names``."""
        tools = {}
        for spec in SPEC.tools:
            if (names is None and not spec.fallback_for) or (names is not None and spec.name in names):
                tools[spec.name] = self._fake(spec.name, spec.args)
        return tools

    def _fake(self, name: str, args_schema: Any) -> StructuredTool:
        content, artifact = self.OUTPUTS.get(name, (f"{name} result", {}))

        def run(**kwargs: Any) -> tuple[str, Any]:
            recorded = {k: v for k, v in kwargs.items() if k in ("image", "images", "question", "text", "k", "likes")}
            if name in ("ocr", "colors", "caption"):
                recorded = {"image": kwargs["image"]}
            return self._run(name, recorded, content, artifact)

        return StructuredTool.from_function(
            run, name=name, description=name, args_schema=args_schema, response_format="content_and_artifact"
        )

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


def scripted(qtype: QuestionType, query: str = "", lang: str = "zh"):  # type: ignore[no-untyped-def]
    """A classifier that decides the type; the cues are read from the question as the
    understanding pass reads them."""

    def classifier(question: str, images: list[str], llm: Any) -> ClassifierResult:
        intent = Intent(type=qtype, language=lang, query=query, cues=read_cues(question, images))
        return ClassifierResult(classification=intent, source="llm")

    return classifier


def fake_llm(text: str = "红色") -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=itertools.cycle([AIMessage(text)]))


def make_agent(classifier, tools: dict[str, StructuredTool], llm: Any = None, saver: Any = None) -> VLAgent:  # type: ignore[no-untyped-def]
    parts = AgentParts(spec=SPEC, tools=tools, llm=llm if llm is not None else fake_llm(), classifier=classifier)
    return VLAgent(build_graph(parts, saver or InMemorySaver(serde=state_serializer())), parts)


@pytest.mark.parametrize(
    ("qtype", "images", "expected"),
    [
        ("describe", ["a.jpg"], {"caption": 1, "colors": 1, "ocr": 1, "vqa": 1}),
        ("vqa", ["a.jpg"], {"vqa": 1, "colors": 1, "ocr": 1}),
        ("ocr", ["a.jpg"], {"ocr": 1, "vqa": 1}),  # OCR first, then the VLM with the text
        ("compare", ["a.jpg", "b.jpg"], {"colors": 2, "caption": 2, "ocr": 2, "vqa": 1}),
        ("recommend", ["a.jpg"], {"recommend": 1}),
        ("retrieve", [], {"clip_search": 1}),
        ("retrieve", ["a.jpg"], {"image_search": 1}),
        ("chat", [], {}),
    ],
)
def test_every_type_reaches_its_tools(qtype: QuestionType, images: list[str], expected: dict[str, int]) -> None:
    tools = FakeTools()
    agent = make_agent(scripted(qtype), tools.build())
    answer = agent.invoke("问题", images=images)
    assert Counter(tools.names()) == Counter(expected)
    assert answer.type is qtype
    assert answer.classifier == "llm"
    # tools of one round run in parallel: compare as multisets
    assert Counter(t.name for t in answer.trace if t.name not in ("understand", "answer_llm")) == Counter(expected)
    names = [t.name for t in answer.trace]
    assert names[0] == "understand"
    # a ranked list needs no LLM
    assert ("answer_llm" in names) == (qtype not in ("retrieve", "recommend"))


def test_ocr_second_round_gives_the_vlm_the_text() -> None:
    tools = FakeTools()
    make_agent(scripted("ocr"), tools.build()).invoke("标签上写了什么？", images=["a.jpg"])
    (vqa_args,) = [a for n, a in tools.calls if n == "vqa"]
    assert "纯棉 100% COTTON" in vqa_args["question"]


def test_retrieval_answer_carries_the_ranked_images() -> None:
    tools = FakeTools()
    agent = make_agent(scripted("retrieve", query="红色连衣裙"), tools.build())
    answer = agent.invoke("请匹配到与 红色连衣裙 最相关的图片。")
    assert tools.calls == [("clip_search", {"text": "红色连衣裙", "k": 10})]
    assert answer.image_ids == ["b.jpg", "a.jpg"]
    assert answer.images[0].score == pytest.approx(0.9)
    assert "b.jpg" in answer.text


def test_failing_tool_still_answers_with_the_error_in_the_trace() -> None:
    tools = FakeTools(fail={"vqa"})
    answer = make_agent(scripted("vqa"), tools.build(), llm=fake_llm("红色")).invoke(
        "这件衣服是什么颜色？", images=["a.jpg"]
    )
    assert answer.text == "红色"
    (vqa_trace,) = [t for t in answer.trace if t.name == "vqa"]
    assert not vqa_trace.ok and "vqa exploded" in (vqa_trace.error or "")
    assert all(t.ok for t in answer.trace if t.name in ("colors", "ocr"))


def test_missing_vlm_uses_caption_and_colours_instead() -> None:
    tools = FakeTools()
    agent = make_agent(scripted("vqa"), tools.build(["ocr", "colors", "caption"]))
    agent.invoke("什么颜色？", images=["a.jpg"])
    assert Counter(tools.names()) == Counter({"colors": 1, "ocr": 1, "caption": 1})


class BrokenLLM(GenericFakeChatModel):
    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("server down")


def test_llm_failure_falls_back_to_the_tool_results() -> None:
    tools = FakeTools()
    agent = make_agent(scripted("ocr"), tools.build(["ocr"]), llm=BrokenLLM(messages=iter([])))
    answer = agent.invoke("这件衣服的成分是什么？", images=["a.jpg"])
    assert answer.text == "纯棉 100% COTTON"
    (llm_trace,) = [t for t in answer.trace if t.name == "answer_llm"]
    assert not llm_trace.ok and "server down" in (llm_trace.error or "")


def test_multi_turn_memory_refers_to_the_previous_image() -> None:
    tools = FakeTools()
    agent = make_agent(scripted("vqa"), tools.build(["colors"]))
    agent.invoke("这是什么？", images=["shirt.jpg"], thread_id="t1")
    agent.invoke("那它是什么颜色的？", thread_id="t1")
    agent.invoke("那它是什么颜色的？", thread_id="other")
    assert tools.calls == [("colors", {"image": "shirt.jpg"}), ("colors", {"image": "shirt.jpg"})]
    history = agent.state("t1")["history"]
    assert [h["question"] for h in history] == ["这是什么？", "那它是什么颜色的？"]


def test_sqlite_checkpointer_keeps_the_conversation_across_agents(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path, checkpoint_path=tmp_path / "memory.sqlite")
    tools = FakeTools()
    first = make_agent(scripted("vqa"), tools.build(["colors"]), saver=make_checkpointer(settings))
    first.invoke("这是什么？", images=["bag.jpg"], thread_id="t")
    second = make_agent(scripted("vqa"), tools.build(["colors"]), saver=make_checkpointer(settings))
    second.invoke("什么颜色？", thread_id="t")
    assert tools.calls[-1] == ("colors", {"image": "bag.jpg"})


def test_the_typed_state_reads_back_from_the_checkpointer(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """The intent and the tool results stay typed through the SQLite checkpointer, which is allowed
    to read them back (no "unregistered type" warning from LangGraph's serializer)."""
    saver = make_checkpointer(Settings(home=tmp_path, checkpoint_path=tmp_path / "memory.sqlite"))
    make_agent(scripted("vqa"), FakeTools().build(["colors"]), saver=saver).invoke("颜色？", images=["bag.jpg"], thread_id="t")
    state = make_agent(scripted("vqa"), FakeTools().build(["colors"]), saver=make_checkpointer(
        Settings(home=tmp_path, checkpoint_path=tmp_path / "memory.sqlite"))).state("t")
    assert isinstance(state["intent"], Intent) and state["intent"].type == "vqa"
    assert [(type(r).__name__, r.name, r.ok) for r in state["tool_results"]] == [("ToolResult", "colors", True)]
    assert "unregistered" not in caplog.text


def test_a_rounds_calls_run_at_the_same_time() -> None:
    """The plan's calls of one round are separate tasks (LangGraph's Send) that run concurrently:
    two tools that each wait for the other (a barrier of two) both finish; run one after the
    other, each would time out waiting."""
    import threading

    barrier = threading.Barrier(2, timeout=10)

    def meet(**kwargs: Any) -> tuple[str, Any]:
        barrier.wait()
        return "met", {}

    tools = FakeTools().build(["vqa"])
    for name in ("colors", "ocr"):
        spec = SPEC.tool(name)
        tools[name] = StructuredTool.from_function(
            meet, name=name, description=name, args_schema=spec.args, response_format="content_and_artifact"
        )  # fmt: skip
    answer = make_agent(scripted("vqa"), tools).invoke("这是什么面料？", images=["a.jpg"])
    assert {t.name: t.ok for t in answer.trace if t.name in ("colors", "ocr")} == {"colors": True, "ocr": True}


def test_stream_yields_node_updates_in_order() -> None:
    agent = make_agent(scripted("vqa"), FakeTools().build(["colors"]))
    nodes = [next(iter(update)) for update in agent.stream("颜色？", images=["a.jpg"])]
    assert nodes == ["start", "understand", "plan", "tools", "plan", "answer"]


def test_empty_question_is_refused() -> None:
    from vlagent.errors import VlagentError

    agent = make_agent(scripted("chat"), {})
    with pytest.raises(VlagentError, match="empty"):
        agent.invoke("   ")


@pytest.mark.parametrize(("question", "llm_used"), [("请识别图片中标签上的文字。", False), ("What does the label say?", False), ("吊牌上的品牌是什么？", True)])
def test_transcription_questions_answer_with_the_text_as_read(question: str, llm_used: bool) -> None:
    agent = make_agent(scripted("ocr"), FakeTools().build(["ocr"]), llm=fake_llm("纯棉"))
    answer = agent.invoke(question, images=["a.jpg"])
    assert answer.text == ("纯棉" if llm_used else "纯棉 100% COTTON")
    assert ("answer_llm" in [t.name for t in answer.trace]) is llm_used


def test_compare_facts_are_given_image_by_image() -> None:
    llm = recording_llm("不同")
    agent = make_agent(scripted("compare"), FakeTools().build(["colors", "ocr"]), llm=llm)
    agent.parts.titles.update({"a.jpg": "红色连衣裙", "b.jpg": "蓝色衬衫"})
    agent.invoke("有什么区别？", images=["/x/a.jpg", "/x/b.jpg"])
    (prompt,) = llm.prompts
    first, second = prompt.index("图1（a.jpg）"), prompt.index("图2（b.jpg）")
    assert first < prompt.index("红色连衣裙") < second < prompt.index("蓝色衬衫")
    assert prompt.count("图中文字：纯棉 100% COTTON") == 2  # each image's own OCR text
    assert "/x/" not in prompt


def as_tool(fn: Any, name: str) -> StructuredTool:
    """A test's own function as the tool ``name`` (content and artifact, like the real tools)."""
    return StructuredTool.from_function(fn, name=name, description=name, response_format="content_and_artifact")


def colour_tools(colours: dict[str, tuple[str, str]]) -> dict[str, StructuredTool]:
    """A colours tool whose answer depends on the image (name → (zh, en) main colour)."""

    def colors(image: str, k: int = 3) -> tuple[str, Any]:
        zh, en = colours[image]
        return f"主要颜色: {zh} | main colours: {en}", [{"name_zh": zh, "name_en": en, "fraction": 0.8, "rgb": [0, 0, 0]}]

    return {"colors": as_tool(colors, "colors")}


@pytest.mark.parametrize(
    ("question", "lang", "expected"),
    [
        ("比较这两张图片中的商品，哪一个是帽子？", "zh", "第二张图片（b.jpg）是帽子：灰色棒球帽"),
        ("Which of these two images shows shoes?", "en", "The first image (a.jpg) shows shoes: 白色运动鞋"),
        ("这两件的颜色有什么不同？", "zh", "颜色不同：第一张（a.jpg）是白色，第二张（b.jpg）是灰色。"),
        ("How do the colours differ?", "en", "They differ: the first (a.jpg) is white, the second (b.jpg) is grey."),
    ],
)
def test_facts_that_settle_a_comparison_are_stated_without_the_llm(question: str, lang: str, expected: str) -> None:
    llm = recording_llm("都是帽子")
    tools = colour_tools({"a.jpg": ("白色", "white"), "b.jpg": ("灰色", "grey")})
    agent = make_agent(scripted("compare", lang=lang), tools, llm=llm)
    agent.parts.titles.update({"a.jpg": "白色运动鞋 女 低帮", "b.jpg": "灰色棒球帽 可调节"})
    answer = agent.invoke(question, images=["a.jpg", "b.jpg"])
    assert expected in answer.text
    assert llm.prompts == [] and [t.name for t in answer.trace][-1] == "facts"


def test_a_comparison_the_facts_do_not_settle_goes_to_the_llm() -> None:
    llm = recording_llm("第一件更正式")
    tools = colour_tools({"a.jpg": ("白色", "white"), "b.jpg": ("灰色", "grey")})
    agent = make_agent(scripted("compare"), tools, llm=llm)
    agent.parts.titles.update({"a.jpg": "白色衬衫 商务", "b.jpg": "灰色卫衣 休闲"})  # facts that say what they are
    answer = agent.invoke("哪一件更适合上班穿？", images=["a.jpg", "b.jpg"])
    assert answer.text == "第一件更正式" and len(llm.prompts) == 1


def test_describe_without_title_caption_or_vlm_says_what_is_known() -> None:
    llm = recording_llm("一件漂亮的连衣裙")
    tools = colour_tools({"a.jpg": ("红色", "red")})
    answer = make_agent(scripted("describe"), tools, llm=llm).invoke("请描述这张图片。", images=["a.jpg"])
    assert "无法描述商品本身" in answer.text and "红色" in answer.text
    assert llm.prompts == []


class RecordingLLM(GenericFakeChatModel):
    """Answers from a script and remembers every prompt it was sent."""

    prompts: list[str] = []

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        return super()._generate(messages, *args, **kwargs)


def recording_llm(text: str = "红色") -> RecordingLLM:
    return RecordingLLM(messages=itertools.cycle([AIMessage(text)]), prompts=[])


@pytest.mark.parametrize("qtype", ["describe", "vqa", "ocr", "compare"])
def test_unreadable_image_gives_an_error_naming_it_and_no_llm_guess(qtype: QuestionType) -> None:
    llm = recording_llm("这张图片显示了一件黑色的T恤")
    images = ["gone.jpg", "gone2.jpg"] if qtype == "compare" else ["gone.jpg"]
    tools = FakeTools(missing_images=set(images))
    answer = make_agent(scripted(qtype), tools.build(), llm=llm).invoke("这是什么？", images=images)
    assert answer.text == "" and not answer.ok
    assert answer.error is not None and answer.error.kind == "image"
    assert "gone" in answer.error.line() and "not found" in answer.error.line()
    assert llm.prompts == []  # the LLM was never asked
    assert answer.evidence == []
    assert "answer_llm" not in [t.name for t in answer.trace]


def test_some_tools_failing_answers_from_the_rest_and_records_the_evidence() -> None:
    llm = recording_llm("红色")
    tools = FakeTools(fail={"vqa", "ocr"})
    answer = make_agent(scripted("vqa"), tools.build(), llm=llm).invoke("什么颜色？", images=["/data/x/a.jpg"])
    assert answer.ok and answer.text == "红色"
    assert answer.evidence == ["colors[a.jpg]"]
    (prompt,) = llm.prompts
    assert "vqa failed: RuntimeError: vqa exploded" in prompt and "ocr failed" in prompt
    assert "/data/x" not in prompt  # the LLM sees image names, never paths


def test_image_question_without_an_image_is_an_error() -> None:
    answer = make_agent(scripted("describe"), FakeTools().build()).invoke("请描述这张图片。")
    assert answer.error is not None and "needs an image" in answer.error.reason


def test_no_tool_that_can_read_images_is_an_error_naming_why() -> None:
    agent = make_agent(scripted("describe"), {})
    agent.parts.unavailable.update({"vqa": "no VLM here", "caption": "no BLIP here"})
    answer = agent.invoke("请描述这张图片。", images=["a.jpg"])
    assert answer.error is not None and "no VLM here" in answer.error.reason


def test_retrieval_with_every_search_failing_is_an_error() -> None:
    tools = FakeTools(fail={"clip_search"})
    answer = make_agent(scripted("retrieve", query="红色连衣裙"), tools.build()).invoke("找红色连衣裙")
    assert answer.error is not None and "clip_search" in answer.error.reason and answer.images == []


def test_chat_needs_no_evidence() -> None:
    answer = make_agent(scripted("chat"), {}, llm=fake_llm("你好")).invoke("你好")
    assert answer.ok and answer.text == "你好" and answer.evidence == []


def test_failure_notes_reach_the_llm_without_file_system_paths() -> None:
    llm = recording_llm("红色")
    tools = FakeTools().build(["colors"])

    def ocr(image: str) -> tuple[str, Any]:
        raise RuntimeError(f"cannot read /srv/secret/shop/{image} (looked in /srv/secret/shop)")

    tools["ocr"] = as_tool(ocr, "ocr")
    answer = make_agent(scripted("vqa"), tools, llm=llm).invoke("什么颜色？", images=["a.jpg"])
    (prompt,) = llm.prompts
    assert "ocr failed" in prompt and "a.jpg" in prompt
    assert "/srv" not in prompt and "secret" not in prompt
    assert any("/srv/secret" in (t.error or "") for t in answer.trace)  # the trace keeps the full reason


def test_missing_tools_reach_the_llm_by_name_without_their_configuration() -> None:
    llm = recording_llm("红色")
    agent = make_agent(scripted("vqa"), FakeTools().build(["colors"]), llm=llm)
    agent.parts.unavailable.update({"vqa": "disabled (VLAGENT_VQA_BACKEND=none)"})
    answer = agent.invoke("什么颜色？", images=["a.jpg"])
    (prompt,) = llm.prompts
    assert "vqa：不可用" in prompt and "VLAGENT_VQA_BACKEND" not in prompt
    assert answer.unavailable_tools == ["vqa"]


@pytest.mark.parametrize(
    ("lang", "title", "ocr", "expected"),
    [
        ("zh", "棕色手提包 女 真皮", "A", "一个棕色的手提包，女，真皮。"),  # a stray letter is not quoted
        # the pixels say grey: the title's own colour wins
        ("zh", "白色运动鞋 低帮", "纯棉 100% COTTON", "一双白色的运动鞋，低帮，图上文字“纯棉 100% COTTON”。"),
        ("zh", "虎斑猫 特写", "", "一只虎斑猫，特写，主要颜色是棕色。"),
        ("zh", "粉色连帽卫衣 加绒", "", "一件粉色的连帽卫衣，加绒。"),  # a 衣 with a hood, not a 帽
        ("en", "虎斑猫 特写", "", "The image shows 虎斑猫 特写, mainly grey."),
    ],
)
def test_without_an_llm_a_description_is_one_sentence_from_the_facts(lang: str, title: str, ocr: str, expected: str) -> None:
    tools = colour_tools({"a.jpg": ("灰色" if "白色" in title else "棕色", "grey")})

    def read(image: str) -> tuple[str, Any]:
        return ocr, {"text": ocr}

    tools["ocr"] = as_tool(read, "ocr")
    agent = make_agent(scripted("describe", lang=lang), tools, llm=recording_llm(""))  # an empty reply
    agent.parts.titles.update({"a.jpg": title})
    answer = agent.invoke("请描述这张图片。", images=["a.jpg"])
    assert answer.text == expected
    assert "%" not in answer.text.replace("100%", "")  # no colour percentages


def test_a_chinese_description_from_the_title_alone_needs_no_llm_but_a_caption_goes_to_it() -> None:
    llm = recording_llm("一件红色连衣裙，白色背景")
    tools = colour_tools({"a.jpg": ("红色", "red")})
    agent = make_agent(scripted("describe"), tools, llm=llm)
    agent.parts.titles.update({"a.jpg": "红色无袖连衣裙 收腰"})
    answer = agent.invoke("请描述这张图片。", images=["a.jpg"])
    assert answer.text == "一件红色的无袖连衣裙，收腰。" and llm.prompts == []

    def caption(image: str) -> tuple[str, Any]:
        return "a red dress on a white background", {"caption": "a red dress on a white background"}

    tools["caption"] = as_tool(caption, "caption")
    with_caption = make_agent(scripted("describe"), tools, llm=llm)
    with_caption.parts.titles.update({"a.jpg": "红色无袖连衣裙 收腰"})
    assert with_caption.invoke("请描述这张图片。", images=["a.jpg"]).text == "一件红色连衣裙，白色背景"
    (prompt,) = llm.prompts
    assert "a red dress on a white background" in prompt


# --- answers with no guess where nothing can see; colour answers as sentences ---------------------


def colours_named(colours: dict[str, list[tuple[str, str, str, float]]]) -> dict[str, StructuredTool]:
    """A colours tool with the real artifact: (zh, en, basic zh, share) per colour, per image."""

    def colors(image: str, k: int = 3) -> tuple[str, Any]:
        found = [
            {"name_zh": zh, "name_en": en, "basic_zh": basic, "basic_en": en, "fraction": share, "rgb": [0, 0, 0]}
            for zh, en, basic, share in colours[image]
        ]
        return "主要颜色: " + ", ".join(f"{c['name_zh']} ({c['fraction']:.0%})" for c in found), found

    return {"colors": as_tool(colors, "colors")}


def text_tool(texts: dict[str, str], name: str = "ocr") -> StructuredTool:
    def read(image: str) -> tuple[str, Any]:
        return texts.get(image, ""), {"text": texts.get(image, ""), "caption": texts.get(image, "")}

    return as_tool(read, name)


GREY_AND_BROWN = {"a.jpg": [("灰色", "grey", "灰色", 1.0)], "b.jpg": [("棕色", "brown", "棕色", 0.98)]}


@pytest.mark.parametrize(
    ("question", "lang", "head"),
    [
        ("比较这两张图片中的商品，哪一个是帽子？", "zh", "无法判断哪一张图片是帽子："),
        ("这两张图片里哪一个是猫？", "zh", "无法判断哪一张图片是猫："),
        ("Which of these two images shows a bag?", "en", "I cannot tell which image shows a bag: "),
        ("Which of these two images shows shoes?", "en", "I cannot tell which image shows shoes: "),
    ],
)
def test_which_one_that_no_fact_names_is_not_guessed(question: str, lang: str, head: str) -> None:
    llm = recording_llm("第一张图片是帽子")  # what a guessing LLM says
    tools = colours_named(GREY_AND_BROWN)
    tools["ocr"] = text_tool({"a.jpg": "11 111K", "b.jpg": "0"})  # fragments: not text that names anything
    answer = make_agent(scripted("compare", lang=lang), tools, llm=llm).invoke(question, images=["a.jpg", "b.jpg"])
    assert answer.text.startswith(head) and llm.prompts == []
    for named in ("第一张", "第二张", "图1", "first", "second", "a.jpg", "b.jpg", "111K"):
        assert named not in answer.text
    assert answer.evidence[-1] == "missing[title,caption,vqa,ocr_text]"
    assert [t.name for t in answer.trace][-1] == "facts"


def test_which_one_says_which_facts_were_there_and_which_were_missing() -> None:
    tools = colours_named(GREY_AND_BROWN)
    agent = make_agent(scripted("compare"), tools, llm=recording_llm("第一张"))
    agent.parts.titles.update({"a.jpg": "灰色卫衣 加绒", "b.jpg": "棕色手提包 真皮"})
    answer = agent.invoke("哪一个是帽子？", images=["a.jpg", "b.jpg"])
    assert answer.text == "无法判断哪一张图片是帽子：图片的标题都没有提到帽子；没有图片说明、视觉模型回答或图中文字。"
    assert answer.evidence[-1] == "missing[caption,vqa,ocr_text]"
    en = make_agent(scripted("compare", lang="en"), tools, llm=recording_llm("the first"))
    en.parts.titles.update(agent.parts.titles)
    assert en.invoke("Which one is the cap?", images=["a.jpg", "b.jpg"]).text == (
        "I cannot tell which image shows a cap: no image's title mentions a cap; "
        "there is no caption, vision-model answer or text in the image."
    )
    llm = recording_llm("the first")  # a word no table knows, titles in another language: only the LLM can match them
    odd = make_agent(scripted("compare", lang="en"), tools, llm=llm)
    odd.parts.titles.update(agent.parts.titles)
    assert odd.invoke("Which one is the kettle?", images=["a.jpg", "b.jpg"]).text == "the first" and len(llm.prompts) == 1


def test_a_caption_naming_a_synonym_decides_and_text_or_a_vlm_answer_goes_to_the_llm() -> None:
    tools = colours_named(GREY_AND_BROWN)
    tools["caption"] = text_tool({"a.jpg": "a grey baseball hat", "b.jpg": "a brown leather bag"}, "caption")
    answer = make_agent(scripted("compare"), tools, llm=recording_llm("?")).invoke("哪一个是帽子？", images=["a.jpg", "b.jpg"])
    assert answer.text == "第一张图片（a.jpg）是帽子。"  # the caption's "hat" is a 帽
    for extra in ({"ocr": text_tool({"b.jpg": "BASEBALL CAP"})}, {"vqa": as_tool(lambda question, images: ("第二张", {}), "vqa")}):
        llm = recording_llm("第二张")
        seen = make_agent(scripted("compare"), {**colours_named(GREY_AND_BROWN), **extra}, llm=llm)
        assert seen.invoke("哪一个是帽子？", images=["a.jpg", "b.jpg"]).text == "第二张" and len(llm.prompts) == 1


@pytest.mark.parametrize("question", ["哪一个更便宜？", "Which is more expensive?", "哪一件更适合上班穿？"])
def test_which_questions_about_no_kind_of_thing_are_not_which_one_answers(question: str) -> None:
    llm = recording_llm("第一件")
    agent = make_agent(scripted("compare"), colours_named(GREY_AND_BROWN), llm=llm)
    agent.parts.titles.update({"a.jpg": "灰色棒球帽", "b.jpg": "棕色手提包"})
    assert agent.invoke(question, images=["a.jpg", "b.jpg"]).text == "第一件" and len(llm.prompts) == 1


def test_which_one_is_a_colour_is_read_off_the_colours() -> None:
    agent = make_agent(scripted("compare"), colours_named(GREY_AND_BROWN), llm=recording_llm("?"))
    assert agent.invoke("哪一个是棕色的？", images=["a.jpg", "b.jpg"]).text == "第二张图片（b.jpg）是棕色的。"
    en = make_agent(scripted("compare", lang="en"), colours_named(GREY_AND_BROWN), llm=recording_llm("?"))
    assert en.invoke("Which one is grey?", images=["a.jpg", "b.jpg"]).text == "The first image (a.jpg) is grey."
    each = en.invoke("What colour is each of these two items?", images=["a.jpg", "b.jpg"])
    assert each.text == "They differ: the first (a.jpg) is grey, the second (b.jpg) is brown."


@pytest.mark.parametrize(
    ("question", "lang", "title", "expected"),
    [
        ("这件衣服是什么颜色的？", "zh", "", "白色，还有灰色"),
        ("What colour are these shoes?", "en", "", "White, with some grey"),
        ("这件衣服是什么颜色的？", "zh", "米白色运动鞋 低帮", "米白色，还有灰色"),  # the seller's word
        ("这件衣服是什么颜色的？", "zh", "女款黑色运动鞋", "商品标题写的是黑色；图片中测得的主要颜色是白色。"),
        ("What colour is it?", "en", "黑色运动鞋", "The title says black; the image measures mainly white."),
    ],
)
def test_a_colour_answer_is_the_measured_colour_in_the_questions_language(question: str, lang: str, title: str, expected: str) -> None:
    tools = colours_named({"a.jpg": [("白色", "white", "白色", 0.78), ("灰色", "grey", "灰色", 0.22)]})
    agent = make_agent(scripted("vqa", lang=lang), tools, llm=BrokenLLM(messages=iter([])))
    agent.parts.titles.update({"a.jpg": title} if title else {})
    answer = agent.invoke(question, images=["a.jpg"])
    assert answer.text == expected
    assert "%" not in answer.text and "main colours:" not in answer.text and "主要颜色:" not in answer.text
    llm = recording_llm("Main colours")  # with an LLM too: the measured colours are the answer, the LLM is not asked
    again = make_agent(scripted("vqa", lang=lang), tools, llm=llm)
    again.parts.titles.update({"a.jpg": title} if title else {})
    assert again.invoke(question, images=["a.jpg"]).text == expected and llm.prompts == []


def test_without_an_llm_a_colour_question_with_another_ask_or_a_vlm_answer_is_not_a_colour_sentence() -> None:
    tools = colours_named({"a.jpg": [("红色", "red", "红色", 1.0)]})
    broken = BrokenLLM(messages=iter([]))
    mixed = make_agent(scripted("vqa"), tools, llm=broken).invoke("这件衣服是什么颜色，什么面料？", images=["a.jpg"])
    assert not mixed.text.startswith("这件商品的主要颜色是")  # the tools' results, not half an answer
    tools["vqa"] = as_tool(lambda question, images: ("酒红色", {}), "vqa")
    assert make_agent(scripted("vqa"), tools, llm=broken).invoke("这件衣服是什么颜色？", images=["a.jpg"]).text == "酒红色"


def test_a_question_that_needs_sight_with_nothing_that_sees_says_so() -> None:
    tools = colours_named({"a.jpg": [("棕色", "brown", "棕色", 1.0)]})
    tools["ocr"] = text_tool({"a.jpg": "m"})
    llm = recording_llm("a cat")
    answer = make_agent(scripted("vqa", lang="en"), tools, llm=llm).invoke("What animal is in the picture?", images=["a.jpg"])
    assert answer.text == (
        "I cannot tell: there is no vision-model answer here, and the image has no title, caption or readable text; "
        "I only know that its main colour is brown."
    )
    assert llm.prompts == [] and answer.evidence[-1] == "missing[title,caption,vqa,ocr_text]"
    titled = make_agent(scripted("vqa", lang="en"), tools, llm=llm)
    titled.parts.titles.update({"a.jpg": "虎斑猫 特写"})
    assert titled.invoke("What animal is in the picture?", images=["a.jpg"]).text == "a cat"  # the title tells


@pytest.mark.parametrize("fragment", ["a", "A", "m", "0", "90", "11 111k", "11 111K", "XKQ"])
def test_stray_ocr_fragments_stay_out_of_sentences(fragment: str) -> None:
    from vlagent.agent.facts import readable_text

    assert readable_text(fragment) == ""
    tools = colours_named({"a.jpg": [("红色", "red", "红色", 1.0)]})
    tools["ocr"] = text_tool({"a.jpg": fragment})
    answer = make_agent(scripted("describe"), tools, llm=recording_llm("?")).invoke("请描述这张图片。", images=["a.jpg"])
    assert answer.text == "无法描述商品本身：这里没有视觉模型，图片也没有标题；只知道主要颜色是红色。"


@pytest.mark.parametrize("text", ["纯棉 100% COTTON", "SIZE: XL", "特价 ¥199", "MADE IN CHINA", "洗涤说明 30°C"])
def test_text_that_reads_as_words_is_quoted(text: str) -> None:
    from vlagent.agent.facts import readable_text

    assert readable_text(text) == text
