"""Partial transcripts while the wearer speaks hands-free: what Whisper hears so far, shown live.

Every PARTIAL_EVERY_S of a question being spoken (once it holds MIN_VOICED_S of voice), the
audio so far is transcribed greedily (a third of beam search's cost; the question itself is
then transcribed as usual, with beam search, when it ends). The work runs in one background
thread per app, under the model's media lock (Whisper's decoder is shared), so that the
microphone's chunks never wait for it; a result that arrives after its utterance ended is
dropped. None starts while the wearer pauses: the question's own preparation comes then,
and one still running then stops before its next token (in the bench's questions, one had
held the preparation back by 250-350 ms, in 2 of 3).

As the wearer has said MIN_VOICED_S of a question, the same thread takes the camera frame
the question will be asked with, and prefills the prompt of a question with that photo
alone (a photo is ~60 prompt tokens, ~200 ms of prefill in float32 on 2 cores): the
question's own prompt, once heard, starts after the photo's tokens.

Once the pause has passed the listener's TAIL_S (vad.py, `settled`: 64 ms), the question as
it will be kept is known. The same thread then encodes and transcribes it as the answer
would (for the session's owner), and the model's media cache keeps what that gave under the
hash of its samples. Its transcript, of all that was said, becomes the partial transcript:
when it ends as a question does, the listener need not wait out its whole pause
(web_session.py, QUICK_END_S). While the page asks it, the thread reads it (as LM tokens)
and prefills the answer's prompt (LunettesModel.prefill): the conversation so far, with the
page's last settings, and the camera frame taken as the question began (else the one of the
pause's start), which the question is then asked with (WebSession.frame_for). The answer
finds it all in the caches (or waits on the media lock for the rest of it) instead of
starting that ~0.5 s of work only then, and its first token is chosen at once, from the
next-token logits kept with the prompt. Should the wearer speak on, the work is wasted,
never wrong: another clip has another hash. Should the pause end the question before the
work does (a busy machine), it goes on: the question asked is the clip settled. A pause
with no question to prepare (a backchannel over the answer) is transcribed greedily after
PAUSE_CHECK_S. Nothing here imports gradio.

Before 2026-12-04 the question was settled 0.3 s into the pause, behind a greedy transcript
of it at 0.15 s: it was asked 0.42-0.45 s into the pause, and its first token came 0.5 s
later, waiting for that preparation (server timestamps, Chromium, bench/voice_loop.py's
questions).
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from app.vad import FRAME
from encoders.errors import InputError
from encoders.transcribe import Transcriber
from fusion.conversation import user
from fusion.cpu_load import OthersLoad
from fusion.model import LunettesModel
from fusion.openmp import set_threads_here

log = logging.getLogger(__name__)

PARTIAL_EVERY_S = 1.0  # between two partial transcripts of one utterance
MIN_VOICED_S = 0.4  # of voice before the first one (a cough is not transcribed)
PAUSE_CHECK_S = 0.15  # of a pause before all that was said is transcribed (see above)


class Partial(NamedTuple):
    utterance: int  # the session's utterance it belongs to (WebSession.utterances)
    text: str  # what Whisper heard of it
    frames: int  # the VAD frames of the utterance it heard (from its start)

    def covers(self, utterance: int, spoken_frames: int) -> bool:
        """It heard all that was said of `utterance`, up to its last voiced frame."""
        return self.utterance == utterance and self.frames >= spoken_frames


class PartialTranscripts:
    def __init__(self, model: LunettesModel):
        self.model = model
        self.greedy = Transcriber(model.audio.whisper, beam_size=1)
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="partial-transcript")
        self.others = OthersLoad()  # the worker's team: one thread when others take a core
        self.most_threads = torch.get_num_threads()

    def maybe_start(self, session) -> None:
        """Transcribe `session`'s utterance so far when it is time (a WebSession, after a
        chunk was heard); the text lands in session.partial, for its utterance. Prepare the
        question once its pause settles it (see above)."""
        listener = session.listener
        self._maybe_prepare(session)
        if not listener.in_question or listener.voiced_s < MIN_VOICED_S:
            return
        looked = session.looked_at is not None and session.looked_at[0] == session.utterances
        if not looked and not (session.over_answer and not session.barged):
            session.looked_at = (session.utterances, None)  # what it saw is filled in there
            self.worker.submit(self._look, session, session.utterances)
        if session.prepared == (session.utterances, listener.spoken_frames):
            return  # all that was said is being prepared: its transcript comes with it
        now = time.monotonic()
        heard_all = session.partial is not None and session.partial.covers(
            session.utterances, listener.spoken_frames
        )
        paused = listener.silent_s >= PAUSE_CHECK_S and not heard_all
        due = now - session.partial_at >= PARTIAL_EVERY_S and not listener.silent_s
        if session.partial_pending or not (due or paused):
            return
        session.partial_pending, session.partial_at = True, now
        audio, utterance = listener.so_far(), session.utterances
        self.worker.submit(self._transcribe, session, audio, utterance, session.prepared)

    def _transcribe(self, session, audio: np.ndarray, utterance: int, prepared) -> None:
        """A greedy transcript of `audio`, the utterance so far; it stops as soon as a
        question's preparation was asked for after it (session.prepared changed from
        `prepared`): that one waits for this thread, and its transcript covers more."""

        def superseded() -> bool:
            return session.prepared != prepared

        self._size_team()
        try:
            with self.model.media_lock:
                text = self.greedy(self.model.audio.encode(audio), stop=superseded).text
            current = session.utterances == utterance and session.listener.in_question
            if current and not superseded():
                session.partial = Partial(utterance, text, len(audio) // FRAME)
        except Exception:  # a partial transcript is a courtesy: the question still goes on
            log.exception("a partial transcript failed")
        finally:
            session.partial_pending = False

    def _look(self, session, utterance: int) -> None:
        """Take the camera frame the question being said will be asked with, and prefill the
        prompt of a question with that photo alone: the question's own prompt, once it is
        heard, begins the same way (up to the photo's last token) and starts from there."""
        frame = session.current_frame()
        session.looked_at = (utterance, frame)
        if frame is None or session.busy() or session.translating:
            return
        self._size_team()
        conversation = session.conversation(None, session.system_prompt)
        try:
            self.model.prefill(conversation + [user("", [frame])], session.owner)
        except Exception:  # an early start is a courtesy: the answer does the work again
            log.exception("prefilling the camera frame failed")

    def _size_team(self) -> None:
        """This worker's OpenMP team for the job it starts: one thread while other processes
        (the browser, on the same machine) keep a core busy (fusion/cpu_load.py)."""
        set_threads_here(self.others.team_size(self.most_threads))

    def _maybe_prepare(self, session) -> None:
        listener = session.listener
        if not listener.hearing or (session.over_answer and not session.barged):
            return  # no question yet, or a backchannel over the answer ("mm-hm")
        settled_as = (session.utterances, listener.spoken_frames)
        if session.prepared == settled_as:
            return
        question = listener.settled()
        if question is None:
            return
        session.prepared = settled_as
        self.worker.submit(self._prepare, session, question, settled_as)

    def _prepare(self, session, question: np.ndarray, settled_as: tuple[int, int]) -> None:
        """Encode and transcribe the settled question; its transcript becomes the partial one
        while the wearer has not spoken on. Then read it and prefill its answer's prompt,
        with the camera frame it will be asked with (see above)."""
        looked = session.looked_at
        frame = looked[1] if looked is not None and looked[0] == settled_as[0] else None
        frame = frame if frame is not None else session.current_frame()
        session.prepared_view = (question, frame)
        answering = not (session.busy() or session.translating)  # (translation reads no prompt)
        message = user("", [frame] if frame is not None and answering else [], question)

        def heard() -> bool:  # -> whether the answer's work goes on: not when they spoke on
            if session.ended == (settled_as[0], len(question)):
                return True  # the pause ended it as it was settled: the answer needs this now
            if (session.utterances, session.listener.spoken_frames) != settled_as:
                return False
            frames = len(question) // FRAME
            session.partial = Partial(settled_as[0], message.speech.transcript, frames)
            return True

        self._size_team()
        try:
            if answering:
                conversation = session.conversation(None, session.system_prompt) + [message]
                self.model.prefill(conversation, session.owner, heard)
            else:
                self.model.encode_media([message], session.owner, heard)
        except InputError:
            pass  # no question the answer would take either: it says why itself
        except Exception:  # an early start is a courtesy: the answer does the work again
            log.exception("preparing a question during its pause failed")
