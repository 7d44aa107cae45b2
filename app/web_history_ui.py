"""The web app's history panel: this browser's conversations (open, new, rename, delete,
export) and its memory (what it was asked to remember; forget everything).

Each handler works on the session's History (app/web_history.py), set when the page loads
from the request: the user logged in with --auth, else this browser's cookie. Without either
(cookies blocked) nothing is kept, and the panel says so.
"""

import logging

import gradio as gr

from app import memory
from app.store import conversations as talk
from app.store import moments, privacy
from app.web_actions import view
from app.web_format import status_html
from app.web_history import ensure_history
from app.web_session import WebSession

NO_HISTORY = "History is off for this page: the browser sent no cookie (are cookies blocked?)."
log = logging.getLogger(__name__)


def attach(session: WebSession, request: gr.Request | None = None) -> tuple:
    """Page load: this browser's or user's list and memory."""
    ensure_history(session, request)
    return conversation_list(session), memory_markdown(session)


def conversation_list(session: WebSession):
    history = session.history
    if history is None:
        return gr.Dropdown(choices=[], value=None, info=NO_HISTORY)
    return gr.Dropdown(choices=history.listed(), value=history.conversation_id)


def memory_markdown(session: WebSession) -> str:
    if session.history is None:
        return NO_HISTORY
    kept = moments.listed(session.history.store, session.history.owner, limit=50)
    if not kept:
        return 'Nothing remembered yet. Say or type "Remember that ..." (with the camera on to keep what it sees).'
    return "\n".join(f"- {memory.described(m)[0:300]}" for m in kept)


def open_conversation(choice: str | None, session: WebSession, request: gr.Request | None = None):
    """A conversation picked in the list -> shown, ready for follow-ups."""
    ensure_history(session, request)
    history = session.history
    if history is None or not choice or choice == history.conversation_id:
        return gr.skip(), gr.skip()
    try:
        history.resume(session, choice)
    except talk.NotFound:
        return [], status_html("That conversation is gone (deleted in another tab?).")
    return view(session)


def new_conversation(session: WebSession, request: gr.Request | None = None):
    ensure_history(session, request)
    session.clear()
    if session.history is not None:
        session.history.start_new()
    return [], status_html("A new conversation."), conversation_list(session)


def rename(title: str, session: WebSession, request: gr.Request | None = None):
    ensure_history(session, request)
    try:
        if session.history is None:
            raise ValueError(NO_HISTORY)
        session.history.rename(title)
    except (ValueError, talk.NotFound) as error:
        return status_html(f"⚠️ {error}"), gr.skip()
    return status_html("Renamed."), conversation_list(session)


def delete(session: WebSession, request: gr.Request | None = None):
    ensure_history(session, request)
    if session.history is not None:
        session.history.delete()
    session.clear()
    return [], status_html("Deleted: the conversation and its files."), conversation_list(session)


def export(kind: str, session: WebSession, request: gr.Request | None = None):
    """The conversation shown, as a Markdown or JSON (media inlined) file to download."""
    ensure_history(session, request)
    history = session.history
    if history is None or history.conversation_id is None:
        return None, status_html("Nothing to export yet: ask a question first.")
    if kind == "markdown":
        text = talk.export_markdown(history.store, history.owner, history.conversation_id)
        path = session.new_file("conversation", ".md")
    else:
        text = talk.export_json_text(history.store, history.owner, history.conversation_id)
        path = session.new_file("conversation", ".json")
    path.write_text(text, encoding="utf-8")
    return str(path), status_html("Exported: download it below the buttons.")


def export_everything(session: WebSession, request: gr.Request | None = None):
    ensure_history(session, request)
    if session.history is None:
        return None, status_html(NO_HISTORY)
    path = session.new_file("everything", ".json")
    path.write_text(privacy.export_everything(session.history.store, session.history.owner))
    return str(path), status_html("Exported every conversation and memory.")


def forget_everything(confirmed: bool, session: WebSession, request: gr.Request | None = None):
    ensure_history(session, request)
    if not confirmed or session.history is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    counts = privacy.forget_everything(session.history.store, session.history.owner)
    session.clear()
    session.history.start_new()
    said = f"Forgot {counts[0]} memories and {counts[1]} conversations, with their files."
    return [], status_html(said), conversation_list(session), memory_markdown(session)


def panel() -> dict:
    """The history accordion's components, by name."""
    parts = {}
    with gr.Accordion("🗂 Conversations and memory", open=False, elem_id="history"):
        parts["conversations"] = gr.Dropdown(
            choices=[], label="Your conversations (newest first)", elem_id="conversations",
            interactive=True,
        )  # fmt: skip
        with gr.Row():
            parts["new"] = gr.Button("➕ New", size="sm", elem_id="new-conversation")
            parts["delete"] = gr.Button("🗑 Delete", size="sm", elem_id="delete-conversation")
            parts["export_md"] = gr.Button("⬇ Markdown", size="sm", elem_id="export-markdown")
            parts["export_json"] = gr.Button("⬇ JSON", size="sm", elem_id="export-json")
        with gr.Row():
            parts["title"] = gr.Textbox(
                label="Rename to", scale=3, elem_id="rename-to", max_lines=1
            )
            parts["rename"] = gr.Button("✏️ Rename", size="sm", scale=1, elem_id="rename")
        parts["download"] = gr.File(label="Download", interactive=False, elem_id="download")
        parts["memory"] = gr.Markdown(elem_id="memory")
        with gr.Row():
            parts["export_all"] = gr.Button("⬇ Export everything", size="sm", elem_id="export-all")
            parts["forget_all"] = gr.Button(
                "Forget everything", size="sm", variant="stop", elem_id="forget-everything"
            )
    return parts


def wire(parts: dict, ui, app: gr.Blocks, quick: dict) -> None:
    chat = [ui.chatbot, ui.status]
    listing = parts["conversations"]
    app.load(attach, [ui.session], [listing, parts["memory"]], **quick)
    listing.select(open_conversation, [listing, ui.session], chat, **quick)  # a person's pick
    parts["new"].click(new_conversation, [ui.session], [*chat, listing], **quick)
    parts["delete"].click(delete, [ui.session], [*chat, listing], **quick)
    parts["rename"].click(rename, [parts["title"], ui.session], [ui.status, listing], **quick)
    for button, kind in ((parts["export_md"], "markdown"), (parts["export_json"], "json")):
        button.click(
            lambda s, k=kind: export(k, s), [ui.session], [parts["download"], ui.status], **quick
        )
    parts["export_all"].click(
        export_everything, [ui.session], [parts["download"], ui.status], **quick
    )
    parts["forget_all"].click(
        forget_everything, [parts["memory"], ui.session],
        [*chat, listing, parts["memory"]],
        js="(memory, session) => [confirm('Forget every conversation and memory of yours? "
        "This cannot be undone.'), session]",
        **quick,
    )  # fmt: skip


def refresh(session: WebSession, request: gr.Request | None = None) -> tuple:
    """After an answer: the list (a new conversation appears) and the memory (a new moment)."""
    return conversation_list(session), memory_markdown(session)
