"""The Gradio UI: Search, Chat and Evaluate over one agent (built once per server process).

Every handler turns a problem (no image, a corrupt upload, a model server down, a bad
query.json) into a message in the page; the page itself never breaks.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr

from vlagent.agent.names import display_name
from vlagent.agent.types import Answer, RetrievedImage
from vlagent.api.service import AgentService
from vlagent.api.steps import Step
from vlagent.errors import VlagentError, one_line
from vlagent.web.session import WebSession, ensure

#: (agent, query.json, image folder, output folder, progress(done, total)) → (files, report.md text)
Evaluator = Callable[[Any, Path, Path, Path, Callable[[int, int], None]], tuple[list[Path], str]]

CSS = """
#search-results .caption-label { white-space: normal; font-size: 0.8em; }
.vl-error { color: #b91c1c; font-weight: 600; }
"""


def error_md(message: str) -> str:
    return f"<p class='vl-error' role='alert'>Error: {message}</p>"


def trace_md(answer: Answer) -> str:
    """The panel beside the chat: question type, classifier, evidence, one row per step."""
    lines = [
        f"**type:** `{answer.type}` · **classifier:** {answer.classifier} · **language:** {answer.language}",
        f"**evidence:** {', '.join(answer.evidence) or '—'}",
        "",
        "| step | arguments | seconds | status |",
        "|---|---|---|---|",
    ]
    for t in answer.trace:
        args = {k: (display_name(v) if k == "image" else v) for k, v in t.args.items() if k != "question"}
        status = "ok" if t.ok else f"**failed:** {t.error or 'error'}"
        cell = json.dumps(args, ensure_ascii=False)[:80].replace("|", "\\|")
        lines.append(f"| {t.name} | {cell} | {t.duration_s:.2f} | {status.replace('|', '/')} |")
    if answer.error is not None:
        lines += ["", error_md(answer.error.line())]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- handlers


def do_search(service: AgentService, text: str, image: str | None, k: int, session: WebSession | None):  # type: ignore[no-untyped-def]
    session = ensure(session, service)
    try:
        query_image = str(session.uploads.add_file(image)) if image else None
        hits = service.search(text=text, image=query_image, k=int(k))
    except VlagentError as exc:
        return [], [], error_md(str(exc)), session
    except Exception as exc:  # noqa: BLE001 - a message in the page, never a broken page
        return [], [], error_md(one_line(exc)), session
    gallery = [(service.thumbnail(h.image), f"{h.image} · {h.title} · {h.score:.3f}") for h in hits]
    what = f"image {display_name(image)}" if image else repr(text.strip())
    msg = f"{len(hits)} results for {what}. Click one to ask about it in Chat." if hits else f"no results for {what}"
    return gallery, [h.model_dump() for h in hits], msg, session


def pick_result(service: AgentService, hits: list[dict[str, Any]], session: WebSession | None, evt: gr.SelectData):  # type: ignore[no-untyped-def]
    session = ensure(session, service)
    hit = RetrievedImage.model_validate(hits[evt.index])
    session.pending = [hit.image]
    note = f"Attached: **{hit.image}** ({hit.title}), for your next question."
    return gr.Tabs(selected="chat"), note, session


def _user_turn(text: str, shown: list[str]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": {"path": p}} for p in shown]
    if text:
        msgs.append({"role": "user", "content": text})
    return msgs


def do_chat(service: AgentService, message: dict[str, Any] | None, history: list[dict[str, Any]],
            session: WebSession | None) -> Iterator[tuple[Any, ...]]:  # fmt: skip
    """Stream one turn: the steps in a collapsible 'thinking' message, then the answer."""
    session = ensure(session, service)
    message = message or {}
    text = str(message.get("text") or "").strip()
    files = [f if isinstance(f, str) else f.get("path", "") for f in message.get("files") or []]
    keep = gr.MultimodalTextbox(value=None)
    try:
        images = [str(session.uploads.add_file(f)) for f in files]
    except VlagentError as exc:  # the refused file is named, not shown
        names = ", ".join(display_name(f) for f in files)
        history = list(history or []) + _user_turn(f"{text}\n\n({names})".strip(), [])
        history.append({"role": "assistant", "content": f"Error: {exc}"})
        yield history, keep, session, error_md(str(exc)), ""
        return
    if not text:
        history = list(history or []) + _user_turn(text, files)
        history.append({"role": "assistant", "content": "Error: type a question (the image is kept for it)."})
        session.pending = images + session.pending
        yield history, keep, session, error_md("the question is empty"), _attached(session)
        return
    try:
        service.check_question(text)
    except VlagentError as exc:  # too long: said before any step, the images wait for the next question
        history = list(history or []) + _user_turn(_shortened(text), files)
        history.append({"role": "assistant", "content": f"Error: {exc}"})
        session.pending = images + session.pending
        yield history, keep, session, error_md(str(exc)), _attached(session)
        return
    history = list(history or []) + _user_turn(text, files)
    images += session.pending
    session.pending = []
    thinking = {"role": "assistant", "content": "", "metadata": {"title": "Steps: understand → tools → answer", "status": "pending"}}
    history.append(thinking)
    yield history, keep, session, "", ""
    steps: list[str] = []
    try:
        for item in service.stream(text, images, thread_id=session.thread_id):
            if isinstance(item, Step):
                steps.append(f"- **{item.node}** {item.title}")
                thinking["content"] = "\n".join(steps)
                yield history, keep, session, gr.skip(), gr.skip()
                continue
            thinking["metadata"]["status"] = "done"
            if item.error is not None:
                history.append({"role": "assistant", "content": f"Error, no answer: {item.error.line()}"})
            else:
                reply = item.text
                if item.images:
                    reply += "\n\n" + "\n".join(f"{n}. {h.image} — {h.title} ({h.score:.3f})" for n, h in enumerate(item.images[:5], 1))
                history.append({"role": "assistant", "content": reply})
            yield history, keep, session, trace_md(item), ""
    except Exception as exc:  # noqa: BLE001 - a model server down, anything: a message, not a broken page
        thinking["metadata"]["status"] = "done"
        history.append({"role": "assistant", "content": f"Error: {one_line(exc)}"})
        yield history, keep, session, error_md(one_line(exc)), ""


def _shortened(text: str, keep: int = 200) -> str:
    """A refused question as the chat shows it: its start and its length, not all of it."""
    return text if len(text) <= keep else f"{text[:keep]}… ({len(text):,} characters)"


def _attached(session: WebSession) -> str:
    return f"Attached: {', '.join(display_name(p) for p in session.pending)}" if session.pending else ""


def do_reset(service: AgentService, session: WebSession | None):  # type: ignore[no-untyped-def]
    session = ensure(session, service)
    session.new_thread()
    return [], session, "", "", gr.MultimodalTextbox(value=None)


def do_eval(service: AgentService, evaluate: Evaluator | None, query: str | None, folder: str | None,
            session: WebSession | None, progress: gr.Progress = gr.Progress()):  # type: ignore[no-untyped-def]  # fmt: skip
    session = ensure(session, service)
    if evaluate is None:
        return None, error_md("evaluation is not enabled on this server"), session
    if not query:
        return None, error_md("upload a query.json first"), session
    if folder not in [str(p) for p in service.catalogue]:
        return None, error_md("pick one of the image folders this server serves"), session
    try:
        files, report = evaluate(service.agent, Path(query), Path(folder), session.eval_dir,
                                   lambda done, total: progress((done, total), desc="answering", unit="questions"))  # fmt: skip
    except VlagentError as exc:
        return None, error_md(str(exc)), session
    except Exception as exc:  # noqa: BLE001
        return None, error_md(one_line(exc)), session
    return [str(f) for f in files], report.replace(str(session.eval_dir) + "/", ""), session  # no server paths


# ---------------------------------------------------------------------------- the page


def build_ui(service: AgentService, evaluate: Evaluator | None = None) -> gr.Blocks:
    """The page. ``evaluate``: the harness run behind the Evaluate tab (``vlagent.evals.bundle.run_to_folder``,
    passed in by the caller: the library does not import the harness)."""
    folders = [str(p) for p in service.catalogue]
    with gr.Blocks(title="vlagent", delete_cache=(3600, 3600)) as demo:
        session = gr.State(None, delete_callback=lambda s: s.close() if isinstance(s, WebSession) else None)
        gr.Markdown("## vlagent — product images, questions and answers (中文 / English)")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Search", id="search", elem_id="tab-search"):
                with gr.Row():
                    with gr.Column(scale=3):
                        query = gr.Textbox(label="Search the catalogue (中文 / English)", placeholder="红色连衣裙 / a red dress", elem_id="search-text")
                        k = gr.Slider(1, 24, value=8, step=1, label="results (k)", elem_id="search-k")
                        search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                    query_image = gr.Image(type="filepath", sources=["upload"], label="…or search by image", height=180, elem_id="search-image", scale=1)
                search_msg = gr.Markdown(elem_id="search-msg")
                gallery = gr.Gallery(label="results: file · title · similarity (of the ranking that placed it highest)", columns=6, height="auto", allow_preview=False, elem_id="search-results")
                hits = gr.State([])
            with gr.Tab("Chat", id="chat", elem_id="tab-chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(label="chat", height=440, elem_id="chatbot")
                        attached = gr.Markdown(elem_id="attached")
                        box = gr.MultimodalTextbox(
                            file_types=["image"], file_count="multiple", sources=["upload"], elem_id="chat-input", show_label=False,
                            placeholder="Ask about your images — attach one or several (这件衣服是什么颜色的？)",
                        )  # fmt: skip
                        reset = gr.Button("New conversation", elem_id="reset-btn")
                    with gr.Column(scale=2):
                        gr.Markdown("### question type and tool trace")
                        trace = gr.Markdown("ask something: the last answer's steps show here", elem_id="trace")
            with gr.Tab("Evaluate", id="evaluate", elem_id="tab-eval"):
                with gr.Row():
                    qfile = gr.File(label="query.json", file_types=[".json"], type="filepath", elem_id="eval-query")
                    folder = gr.Dropdown(folders, value=folders[0] if folders else None, label="image folder (configured on the server)", elem_id="eval-folder")
                run_btn = gr.Button("Run the evaluation", variant="primary", elem_id="eval-btn")
                eval_files = gr.File(label="answers.json, report.md, report.json, plots", file_count="multiple", elem_id="eval-files")
                report = gr.Markdown(elem_id="eval-report")

        def search(text: str, image: str | None, k: int, s: WebSession | None):  # type: ignore[no-untyped-def]
            return do_search(service, text, image, k, s)

        def pick(h: list[dict[str, Any]], s: WebSession | None, evt: gr.SelectData):  # type: ignore[no-untyped-def]
            return pick_result(service, h, s, evt)

        def chat(m: dict[str, Any] | None, h: list[dict[str, Any]], s: WebSession | None):  # type: ignore[no-untyped-def]
            yield from do_chat(service, m, h, s)

        def run_evaluation(q: str | None, f: str | None, s: WebSession | None, progress: gr.Progress = gr.Progress()):  # type: ignore[no-untyped-def]
            return do_eval(service, evaluate, q, f, s, progress)

        search_io = dict(fn=search, inputs=[query, query_image, k, session], outputs=[gallery, hits, search_msg, session])
        search_btn.click(**search_io)
        query.submit(**search_io)
        gallery.select(pick, inputs=[hits, session], outputs=[tabs, attached, session])
        box.submit(chat, inputs=[box, chatbot, session], outputs=[chatbot, box, session, trace, attached])
        reset.click(lambda s: do_reset(service, s), inputs=[session], outputs=[chatbot, session, trace, attached, box])
        run_btn.click(run_evaluation, inputs=[qfile, folder, session], outputs=[eval_files, report, session], concurrency_limit=1)
    return demo


def launch(service: AgentService, *, host: str, port: int, share: bool = False, evaluate: Evaluator | None = None,
           auth: tuple[str, str] | None = None, block: bool = True, quiet: bool = True) -> gr.Blocks:  # fmt: skip
    demo = build_ui(service, evaluate)
    demo.queue(default_concurrency_limit=2)
    demo.launch(
        server_name=host, server_port=port, share=share, auth=auth, prevent_thread_lock=not block,
        max_file_size=service.settings.upload_max_bytes, ssr_mode=False, quiet=quiet, show_error=False,
        footer_links=[], mcp_server=False, css=CSS,
    )  # fmt: skip
    return demo
