"""The web app: a glasses-style assistant over a loaded LunettesModel.

Left (top on a phone): the glasses: a live camera view, "look and ask", push-to-talk,
hands-free listening, the spoken answer (played by the page's own player as it is made, then
offered whole to play again). Right: the chat, where a person types, attaches
photos or recordings, and reads answers as they stream. Both ask through the same path: a
handler adds a question to the session, `respond` streams its answer, `speak` says it.

Each browser tab has its own WebSession in gr.State; the model is shared read-only and
answers one question at a time (concurrency group "model"). Nothing runs at import:
`build_app` is called by app.server.
"""

from dataclasses import dataclass, field

import gradio as gr

from app import speech_out
from app import web_actions as act
from app import web_history_ui as history_ui
from app.listening import Listeners
from app.phone import PhoneAccess, page_html
from app.store.database import Store
from app.web_format import KEYBOARD_HELP, header_markdown, status_html
from app.web_page import PAGE_SCRIPT, PAGE_STYLE, listener_script, voice_player_script
from app.web_session import WebSession, files_root
from fusion.model import DEFAULT_SYSTEM_PROMPT, LunettesModel

FRAME_EVERY_S = 0.5  # camera frames sent while the camera is on
CAMERA_OPTIONS = gr.WebcamOptions(
    mirror=False,  # the model must see text the right way round
    constraints={
        "video": {"width": {"ideal": 640}, "height": {"ideal": 480}, "facingMode": "environment"}
    },
)  # a phone's back camera, at a size that is cheap to stream: the encoder reads 224 px
HANDS_FREE_TEMPLATE = (
    '<div class="lunettes-hands-free"><p>🎙️ Hands-free: I listen, and answer when you pause '
    '(with the camera frame)</p><button type="button" class="lunettes-listen">Record</button>'
    "</div>"
)  # the button's text is the listener's (static/listener.js); the value is not shown
STATUS_TEMPLATE = '<p class="lunettes-status" role="status" aria-live="polite">${value}</p>'
# No event marks its outputs as pending (show_progress_on=[]): Gradio's status tracker of a
# pending output, shown or hidden, times the event on every animation frame, so while an
# answer and its voice were pending the page redrew 60 times a second (Chromium's trace, the
# half second after a hands-free question is asked: the trackers' callbacks 100 -> 30 times,
# the page's main thread busy 350-363 -> 257-293 ms), with the browser on the server's cores.
# Hands-free loop (bench/voice_loop.py, Intel Xeon, 2026-12-06), 4 pairs of 5 questions in
# turn: before 1046, 966, 958, 1198 ms, after 1038, 959, 943, 1027 (median of the 20
# questions 1028 -> 978). What each event does is shown in the chat and the status line.
NO_PROGRESS = {"show_progress": "hidden", "show_progress_on": []}
QUICK = {"concurrency_limit": None, **NO_PROGRESS}  # light handlers never wait
ANSWERS_AT_ONCE = 8  # answers written at once (the model's scheduler batches them); more wait


def build_app(
    model: LunettesModel,
    listeners: Listeners,
    phone: PhoneAccess | None = None,
    store: Store | None = None,
) -> gr.Blocks:
    """listeners: the sessions hands-free listening reaches, through the server's /listen
    WebSocket (app/listening.py, installed by app/server.py); each page's session joins them.
    store: where conversations and memory are kept (app/store); None keeps nothing."""
    files = files_root()  # the sessions' photos, recordings and voices
    with gr.Blocks(title="Lunettes", analytics_enabled=False, delete_cache=(3600, 7200)) as app:
        ui = Controls(
            # a function, not a partial: gr.State deep-copies a partial (and the store with it)
            session=gr.State(
                lambda: WebSession(root=files, store=store), delete_callback=WebSession.close
            ),
            page_script=gr.HTML(
                "", js_on_load=PAGE_SCRIPT, head=PAGE_STYLE, visible="hidden", elem_id="page-script"
            ),
        )
        gr.Markdown(header_markdown(model.describe()), elem_id="header")
        with gr.Accordion("📱 Open on your phone", open=False, elem_id="phone"):
            gr.HTML(page_html(phone or PhoneAccess(url=None, https=False)))
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                glasses_panel(ui)
            with gr.Column(scale=2, min_width=340):
                chat_panel(ui)
                history = history_ui.panel() if store is not None else None
        wire(ui, model, listeners, history)
        app.load(speech_out.warm_up, None, None, **QUICK)  # the voice, before the first answer
        if history is not None:
            history_ui.wire(history, ui, app, QUICK)
    return app


@dataclass
class Controls:
    """The page's components, for the events to name; the panels fill in their own."""

    session: gr.State
    page_script: gr.HTML
    camera: gr.Image = field(init=False)
    look: gr.Button = field(init=False)
    push_to_talk: gr.Audio = field(init=False)
    hands_free: gr.HTML = field(init=False)  # its value: the session's listening key
    speak_on: gr.Checkbox = field(init=False)
    translate: gr.Checkbox = field(init=False)
    quiet: gr.Button = field(init=False)
    voice: gr.HTML = field(init=False)  # the page's voice player: its value is a message to it
    voice_file: gr.Audio = field(init=False)  # the last spoken answer, whole
    chatbot: gr.Chatbot = field(init=False)
    status: gr.HTML = field(init=False)
    box: gr.MultimodalTextbox = field(init=False)
    stop: gr.Button = field(init=False)
    regenerate: gr.Button = field(init=False)
    clear: gr.Button = field(init=False)
    max_tokens: gr.Slider = field(init=False)
    temperature: gr.Slider = field(init=False)
    system_prompt: gr.Textbox = field(init=False)


def glasses_panel(ui: Controls) -> None:
    """The camera, look and ask, push-to-talk, hands-free listening, the spoken answer."""
    ui.camera = gr.Image(
        sources=["webcam"],
        streaming=True,
        type="pil",
        label="Camera (live view)",
        webcam_options=CAMERA_OPTIONS,
        elem_id="camera",
    )
    ui.look = gr.Button("👓 Look and ask (Alt+L)", variant="primary", elem_id="look-and-ask")
    ui.push_to_talk = gr.Audio(
        sources=["microphone"],
        type="filepath",
        label="Push to talk: record your question, stop to send it (with the camera frame)",
        elem_id="push-to-talk",
    )
    ui.hands_free = gr.HTML(  # the microphone goes to the server's /listen (app/listening.py)
        "", html_template=HANDS_FREE_TEMPLATE, js_on_load=listener_script(),
        elem_id="hands-free",
    )  # fmt: skip
    with gr.Row():
        ui.speak_on = gr.Checkbox(True, label="Speak answers aloud", elem_id="speak-answers")
        ui.translate = gr.Checkbox(
            False,
            label="🌐 Translate what I say into English",
            info="French, Spanish, German, Italian, ...: caption and voice in English",
            elem_id="translate",
        )
        ui.quiet = gr.Button("🔇 Stop speaking", size="sm", elem_id="stop-speaking")
    ui.voice = gr.HTML(  # plays each spoken piece as it comes (app/voice_player.py)
        "", html_template="", js_on_load=voice_player_script(), visible="hidden",
        elem_id="voice-player",
    )  # fmt: skip
    ui.voice_file = gr.Audio(
        label="Spoken answer (to play again or download, once it is said)",
        type="filepath",
        interactive=False,
        buttons=["download"],
        elem_id="spoken-answer",
    )


def chat_panel(ui: Controls) -> None:
    """The conversation, the status line, the message box, Stop / Regenerate / Clear, settings."""
    ui.chatbot = gr.Chatbot(
        label="Conversation",
        height=560,
        buttons=["copy", "copy_all"],
        feedback_options=None,
        placeholder="Ask about what the camera sees, or type a question.",
        elem_id="conversation",
    )
    ui.status = gr.HTML(
        status_html("Ready."), html_template=STATUS_TEMPLATE, js_on_load=None, elem_id="status"
    )
    ui.box = gr.MultimodalTextbox(
        sources=["upload", "microphone"],
        file_types=["image", "audio"],
        file_count="multiple",
        label="Your message",
        placeholder="Type a question; attach photos or a recording",
        elem_id="message",
    )
    with gr.Row():
        ui.stop = gr.Button("⏹ Stop", variant="stop", elem_id="stop-button")
        ui.regenerate = gr.Button("🔁 Regenerate", elem_id="regenerate-button")
        ui.clear = gr.Button("🗑 Clear", elem_id="clear-button")
    with gr.Accordion("Settings", open=False, elem_id="settings"):
        ui.max_tokens = gr.Slider(
            16, 1024, 256, step=16, label="Longest answer (tokens)", elem_id="max-tokens"
        )
        ui.temperature = gr.Slider(
            0, 1.5, 0, step=0.1, label="Temperature (0: the same answer every time)",
            elem_id="temperature",
        )  # fmt: skip
        ui.system_prompt = gr.Textbox(
            DEFAULT_SYSTEM_PROMPT, label="System prompt (empty: the model's default)", lines=2,
            elem_id="system-prompt",
        )  # fmt: skip
    gr.Markdown(KEYBOARD_HELP, elem_id="keyboard-help")


def wire(
    ui: Controls, model: LunettesModel, listeners: Listeners, history: dict | None = None
) -> None:
    """Every way of asking adds a question, then `respond` answers it and `speak` says it;
    with a history panel, its list and memory are refreshed after each answer. A hands-free
    question is added by the listener (app/listening.py), so its answer starts on the page's
    submit at once, without a question event the page must see end first."""

    def respond(
        session, max_tokens, temperature, system_prompt, translate, speak_on, request: gr.Request
    ):
        yield from act.respond(
            model, session, max_tokens, temperature, system_prompt, translate, request, speak_on
        )

    def speak(session, speak_on):
        yield from act.speak(model, session, speak_on)

    def answer(start, voice_start=None) -> None:
        """start: how the answer starts: after the event that adds its question (its
        `then`), or at once on a trigger (the question is in the session already).
        voice_start: how its voice starts, when not the same way: Gradio's page runs the
        listeners of one trigger one after the other, each to its end, so a voice on the
        answer's own trigger would wait for the whole answer (`then`s run side by side)."""
        answered = start(
            respond,
            [
                ui.session,
                ui.max_tokens,
                ui.temperature,
                ui.system_prompt,
                ui.translate,
                ui.speak_on,
            ],
            [ui.chatbot, ui.status],
            concurrency_id="model",
            concurrency_limit=ANSWERS_AT_ONCE,
            **NO_PROGRESS,
        )
        if history is not None:
            answered.then(
                history_ui.refresh,
                [ui.session],
                [history["conversations"], history["memory"]],
                **QUICK,
            )
        # beside the answer, not after it: each sentence is spoken as soon as it is written
        (voice_start or start)(
            speak,
            [ui.session, ui.speak_on],
            [ui.voice, ui.voice_file, ui.status, ui.chatbot],
            **QUICK,
        )

    session, chat = ui.session, [ui.chatbot, ui.status]
    answer(ui.box.submit(act.send_message, [ui.box, session], [*chat, ui.box], **QUICK).then)
    answer(ui.look.click(act.look_and_ask, [ui.box, session], [*chat, ui.box], **QUICK).then)
    answer(
        ui.push_to_talk.stop_recording(
            act.push_to_talk, [ui.push_to_talk, session], [*chat, ui.push_to_talk], **QUICK
        ).then
    )
    # the listener asked the question already (listening.py); the page triggers both
    answer(ui.hands_free.submit, ui.hands_free.play)
    answer(ui.regenerate.click(act.regenerate, [session], chat, **QUICK).then)
    # Stop and Clear mark the session; the answer ends at its next token. (Gradio's `cancels=`
    # is not used: its page script cancels events one after the other, and can reach an answer
    # that Regenerate started in the meantime.)
    ui.stop.click(act.stop, [session], [*chat, ui.voice], **QUICK)
    for cleared in (ui.clear.click, ui.chatbot.clear):  # the button, and the chat's bin icon
        cleared(act.clear, [session], [*chat, ui.voice, ui.voice_file, ui.box], **QUICK)
    ui.quiet.click(act.stop_speaking, [session], [ui.voice], **QUICK)
    ui.speak_on.change(act.voice_switched, [ui.speak_on, session], [ui.voice], **QUICK)

    ui.camera.stream(act.see, [ui.camera, session], None, stream_every=FRAME_EVERY_S, **QUICK)
    # The first Record asks for the session's listening key (and the session joins
    # `listeners`): not at load, where gr.State can still replace the session it made.
    ui.hands_free.click(listeners.key_for, [session], [ui.hands_free], **QUICK)
    ui.hands_free.input(act.heard_so_far, [session], [ui.status], **QUICK)
    ui.hands_free.start_recording(
        lambda: status_html("Listening hands-free: ask, then pause."), None, [ui.status], **QUICK
    )
    ui.hands_free.stop_recording(
        lambda: status_html("Hands-free listening is off."), None, [ui.status], **QUICK
    )
    ui.page_script.change(act.media_problem, [session], chat, **QUICK)
