"""The composed assistant model: encoders -> adapter -> causal LM, streaming its answer.

Letters: L prompt length, D LM width, N / T media tokens, C encoder width.

The model never branches on model names: the prompt goes through the tokenizer's chat
template, media through the placeholder/splice contract, decoding through generate.py.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field, replace

import torch

from encoders.audio import AudioEncoder
from encoders.errors import InputError
from encoders.text_reader import TextReader
from encoders.transcribe import Transcriber
from encoders.vision import VisionEncoder
from fusion.adapter import Adapter
from fusion.answer_opening import UNSURE_OPENING, colour_opening, unsure_answer
from fusion.conversation import Message, Photo, Speech
from fusion.generate import GenerationOptions, IncrementalText, generate_tokens
from fusion.media_cache import MediaCache
from fusion.name_head import class_vote_matrix
from fusion.openmp import TeamReleasingLock, one_thread_here, release_here
from fusion.photo_text.prompt import text_in_photos
from fusion.photo_text.request import asks_for_words, photos_to_read, question_words
from fusion.placeholders import expand_placeholders, new_marker
from fusion.prefix_cache import PUBLIC, PrefixCache
from fusion.prompt_layout import PromptLayout, Scope, layout
from fusion.reading_pass import ReadingContext, ReadingPass
from fusion.scheduler import DecodeScheduler
from fusion.speech_reading import DEFAULT_READING, ReadingOptions, choose_reading, spoken_form
from fusion.splice import splice

MEDIA_STAGES = ("encode_image", "encode_audio", "transcribe", "read_speech", "ocr")  # timed

# Plain on purpose: a 135M model answers worse when told it is a named product in glasses.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass
class Heard:
    text: str  # transcript of a clip in the conversation that was just encoded


@dataclass
class Chunk:
    text: str  # the next piece of the answer


@dataclass
class Stats:
    timings_ms: dict[
        str, float
    ]  # encode_image, encode_audio, transcribe, read_speech, ocr, first_token, total
    new_tokens: int
    tokens_per_s: float  # decoding speed after the first token
    prompt_tokens: dict[str, int]  # text / image / audio
    finish_reason: str  # "stop" (end of answer or a stop string) or "length"
    transcripts: list[str] = field(default_factory=list)  # of the speech in the last user turn
    read_as: list[str] = field(default_factory=list)  # the words the LM read for that speech


@dataclass
class PromptInputs:
    embeddings: torch.Tensor  # [1, L, D] token embeddings with media spliced in
    prompt_tokens: dict[str, int]  # text / image / audio
    layout: PromptLayout | None = None  # positions and attention, when a clip has scoped cues
    opening: str = ""  # the answer's first words, written into the prompt (answer_opening.py)


class LunettesModel:
    def __init__(
        self,
        lm: torch.nn.Module,
        tokenizer,
        vision: VisionEncoder,
        audio: AudioEncoder,
        adapter: Adapter,
        lm_name: str,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        speech_reading: ReadingOptions | None = DEFAULT_READING,
        text_reader: TextReader | None = None,
    ):
        self.lm = lm
        self.tokenizer = tokenizer
        self.vision = vision
        self.audio = audio
        self.adapter = adapter
        self.lm_name = lm_name
        self.system_prompt = system_prompt
        # None: a clip is the adapter's own projection (greedy CTC read-out, as in training)
        self.speech_reading = speech_reading
        self.transcriber = Transcriber(audio.whisper)
        self.text_reader = text_reader or TextReader()  # OCR, loaded when first asked to read
        self.context_length = getattr(lm.config, "max_position_embeddings", 2048)
        self.stop_ids = _stop_ids(lm, tokenizer)
        self.media_cache = MediaCache()  # what each photo and clip gave, by content and owner
        self.prefixes = PrefixCache()  # keys and values of prompts prefilled, by owner
        self._opening: tuple[str, torch.Tensor] | None = None  # system prompt, [1, L, D]
        # one request's encoders at a time; each holder lets its OpenMP team go after (openmp.py)
        self.media_lock = TeamReleasingLock()
        # a scheduler.DecodeScheduler when several answers share the model (the server); None:
        # each answer decodes alone in its caller's thread (the CLI, evaluation)
        self.decoder = None

    def describe(self) -> dict:
        """What is loaded, for every surface (CLI JSON, web app)."""
        info = self.adapter.info
        return {
            "language_model": self.lm_name,
            "vision_encoder": self.vision.name,
            "audio_encoder": self.audio.name,
            "adapter": {"trained": info.trained, "metrics": info.metrics, "notes": info.notes},
            "receives": self.receives(),
        }

    def receives(self) -> dict[str, str]:
        """What the language model is given for each kind of input, in words."""
        names = self.adapter.image_names
        naming = (
            "the adapter's name head's best name for it ('a penguin'; 'perhaps a penguin' when "
            "unsure), the vision tower's ImageNet classes voting"
            if names is not None
            else "the vision tower's top ImageNet label"
            if self.vision.labeller is not None
            else "nothing more"
        )
        speech = (
            "the words Whisper heard (its beam search's readings, the likeliest by Whisper and "
            "the language model), as the language model's own tokens"
            if self.reads_speech
            else "the adapter's projection of Whisper's encoder frames"
        )
        return {
            "text": "its own tokens, through the chat template",
            "photo": f"{self.vision.num_tokens} projected vision tokens, with a sentence "
            f"naming it on both sides ('This is a penguin.'): {naming}; when the message "
            "asks about text in view, the text OCR found in it, in reading order; when it "
            "asks for the words themselves ('what does it say?') and OCR found some, only "
            "that text"
            + (
                f"; asked what it shows when its name is unsure, the answer's first words "
                f"'{UNSURE_OPENING}'"
                if names is not None
                else ""
            )
            + "; asked its colour, the answer's first words name the colours of its pixels "
            "('Its main colours are orange and brown')",
            "speech": speech
            + (", between two learned cue vectors" if self.adapter.audio_cues is not None else ""),
        }

    def encode_media(
        self, messages: Sequence[Message], owner: str = "", heard: Callable[[], bool] | None = None
    ) -> dict[str, float]:
        """Encode every photo and clip that has no features yet; transcribe and read (as LM
        tokens, read_speech) new speech; read the text in the photos that a message asks to
        read (photo_text/request.py), once per photo. What `owner` (an API key, a session)
        sent before comes from the media cache instead (media_cache.py). heard: called once
        every clip's transcript is known, before the rest; False stops the work there.

        Returns the time spent, in milliseconds, under encode_image / encode_audio /
        transcribe / read_speech / ocr.
        """
        timings = dict.fromkeys(MEDIA_STAGES, 0.0)
        with self.media_lock:
            self._encode_media(messages, owner, timings, heard)
        return timings

    def _cache_owner(self, owner: str) -> str:
        """The media cache's owner for `owner`: a clip's reading depends on the adapter and
        the reading settings as well."""
        return f"{owner}\0{id(self.adapter)}\0{self.speech_reading!r}"

    def _encode_media(
        self, messages: Sequence[Message], owner: str, timings: dict, heard=None
    ) -> bool:
        """encode_media under the media lock -> False when `heard` stopped it."""
        cache_owner = self._cache_owner(owner)
        self.media_cache.restore(messages, cache_owner)
        for speech in (m.speech for m in messages if m.speech and m.speech.transcript is None):
            self._hear(speech, timings)
        if heard is not None and not heard():
            self.media_cache.keep(messages, cache_owner)
            return False
        new_photos = [p for m in messages for p in m.photos if p.features is None]
        if new_photos:
            start = time.perf_counter()
            features = self.vision.encode([p.image for p in new_photos])  # B, N, C
            for photo, row in zip(new_photos, features):
                photo.features = row.unsqueeze(0)
            timings["encode_image"] = _ms_since(start)
        unread = {  # after transcription: a spoken "what does it say?" asks too
            id(photo): photo
            for photos in photos_to_read(messages).values()
            for photo in photos
            if photo.text_lines is None and photo.image is not None
        }
        if unread:
            start = time.perf_counter()
            for photo in unread.values():
                photo.text_lines = self.text_reader.read(photo.image)
            timings["ocr"] = _ms_since(start)
        if self.reads_speech:  # after the photos and their text: what a clip is read after
            vocabulary = self.lm.get_input_embeddings().weight
            for speech in (m.speech for m in messages if m.speech and m.speech.reading is None):
                start = time.perf_counter()
                self.read_speech(speech, vocabulary, messages, owner)
                timings["read_speech"] += _ms_since(start)
        self.media_cache.keep(messages, cache_owner)
        return True

    def translate(self, speech: Speech, owner: str = "") -> tuple[str, dict[str, float]]:
        """A clip -> (what it says in English: Whisper's translate task, the timings in ms).
        Its transcript in its own language (and language) are filled on the clip as well;
        what `owner` had encoded of the same clip comes from the media cache."""
        timings = {"encode_audio": 0.0, "transcribe": 0.0}
        with self.media_lock:
            self.media_cache.restore([Message("user", speech=speech)], self._cache_owner(owner))
            self._hear(speech, timings)
            start = time.perf_counter()
            english = self.transcriber(speech.features, speech.language, "translate").text
            timings["transcribe"] += _ms_since(start)
        return english, timings

    def _hear(self, speech: Speech, timings: dict[str, float]) -> None:
        """Fill a clip's encoder frames and transcript (language, Whisper's readings) where
        missing, adding the time to timings' encode_audio and transcribe."""
        if speech.features is None:
            start = time.perf_counter()
            speech.features = self.audio.encode(speech.waveform)  # 1, T, C
            timings["encode_audio"] += _ms_since(start)
        if speech.transcript is None:
            start = time.perf_counter()
            transcript = self.transcriber(speech.features)
            speech.transcript, speech.language = transcript.text, transcript.language
            speech.heard, speech.heard_scores = transcript.alternatives, transcript.scores
            timings["transcribe"] += _ms_since(start)

    def build_inputs(self, messages: Sequence[Message], opening: str = "") -> PromptInputs:
        """Messages with encoded media -> input embeddings [1, L, D] for the LM; opening: the
        answer's first words, written after the template's start of the assistant's turn
        (answer_opening, at answer time; training's prompts have none)."""
        prompt, marker, media = self._prompt_text(messages)
        return self._prompt_inputs(prompt + opening, marker, media, opening)

    def reading_context(
        self, messages: Sequence[Message], speech: Speech, owner: str = ""
    ) -> ReadingContext:
        """What stands before `speech`, a clip of one of `messages`, in the prompt that answers
        them (build_inputs), for `owner`: its readings are scored after it (reading_pass.py).
        The media before it are encoded, and the clips before it read."""
        prompt, marker, media = self._prompt_text(messages)
        clip = next(i for i, (_, medium) in enumerate(media) if medium is speech)
        cut = -1
        for _ in range(clip + 1):  # the clip's own marker: the one after `clip` others
            cut = prompt.index(marker, cut + 1)
        before = self._prompt_inputs(prompt[:cut], marker, media[:clip])
        cues = self.adapter.audio_cues
        return ReadingContext(
            before.embeddings,
            before.layout,
            None if cues is None else cues[0],
            owner,
            _prompt_in_bfloat16(messages),
        )

    def _prompt_text(self, messages: Sequence[Message]) -> tuple[str, str, list]:
        """Messages -> (the chat template's prompt with a marker for each medium, the marker,
        the media in prompt order: (modality, Photo | Speech | None for a text end))."""
        marker = new_marker()
        chat, media = [], []  # media: (modality, Photo | Speech | None) in prompt order
        cued = self.adapter.audio_cues is not None  # clips wrapped in scoped cues
        to_read = photos_to_read(messages)
        if self.system_prompt and (not messages or messages[0].role != "system"):
            chat.append({"role": "system", "content": self.system_prompt})
        for index, message in enumerate(messages):
            if marker in message.text:  # a fresh random marker: only a collision could do this
                raise InputError("message text collides with the media marker; please resend")
            parts = []
            # The question being answered asks for the words: the text read stands for each
            # photo that has some, as the photo's tokens pull this small LM towards naming the
            # photo (photo_text/prompt.py). Earlier turns keep their photos, for follow-ups.
            words_only = (
                index == len(messages) - 1
                and index in to_read
                and asks_for_words(question_words(message))
            )
            for photo in message.photos:
                if words_only and photo.text_lines:
                    continue
                parts.append(marker)
                media.append(("image", photo))
            if index in to_read and (read := text_in_photos(to_read[index])):
                parts.append(read)  # what OCR read in them, after the photo tokens
            if message.speech is not None:
                parts.append(marker)
                media.append(("audio", message.speech))
            if message.text:
                parts.append(message.text)
            if message.speech is not None and cued:  # where the text about the clip ends
                parts[-1] += marker
                media.append(("text end", None))
            if message.role == "user" and not parts:
                raise InputError("a message needs text, a photo or speech")
            chat.append({"role": message.role, "content": "\n".join(parts)})
        prompt = self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False
        )
        return prompt, marker, media

    def _prompt_inputs(
        self, prompt: str, marker: str, media: list, opening: str = ""
    ) -> PromptInputs:
        """A prompt with a marker for each of `media` (_prompt_text) -> its PromptInputs."""
        cued = self.adapter.audio_cues is not None
        embed = self.lm.get_input_embeddings()
        device = embed.weight.device
        projected = [
            self.project_medium(kind, medium, embed) if medium is not None else embed.weight[:0]
            for kind, medium in media
        ]  # each [T', D]
        expanded = expand_placeholders(
            prompt,
            marker,
            [tokens.shape[0] for tokens in projected],
            lambda text: self.tokenizer.encode(text, add_special_tokens=False),
            pad_id=self.tokenizer.pad_token_id or 0,
        )
        embeddings = embed(expanded.input_ids.unsqueeze(0).to(device))  # 1, L, D
        if projected:
            slots = expanded.slots.unsqueeze(0).to(device)
            embeddings = splice(embeddings, slots, torch.cat(projected))
        counts = {"text": int((~expanded.slots).sum()), "image": 0, "audio": 0}
        scopes = []
        for index, ((kind, _), tokens) in enumerate(zip(media, projected)):
            if kind == "text end":
                continue
            counts[kind] += tokens.shape[0]
            if kind == "audio" and cued:  # adapter.project: [start cue, clip tokens, end cue]
                first, after = expanded.starts[index], expanded.starts[index] + tokens.shape[0]
                text_end = expanded.starts[index + 1]  # the "text end" marker that follows
                scopes.append(Scope((first, after - 1), range(after, text_end)))
        return PromptInputs(embeddings, counts, layout(embeddings.shape[1], scopes), opening)

    def answer_opening(self, messages: Sequence[Message]) -> str:
        """The words the answer to `messages` opens with, written for the LM
        (answer_opening.py): a photo's colours from its pixels when the last message asks
        about colour; UNSURE_OPENING when it asks what its photos show and the name of one
        of them is unsure; else none."""
        if opening := colour_opening(messages):
            return opening
        photos = messages[-1].photos if messages else []
        if not photos or not self.adapter.config.image_label:
            return ""
        phrases = [self.photo_phrase(photo) for photo in photos]
        return UNSURE_OPENING if unsure_answer(messages, phrases) else ""

    def project_medium(
        self, kind: str, medium: Photo | Speech, embed: torch.nn.Embedding
    ) -> torch.Tensor:
        """One encoded medium -> its LM input embeddings [T', D]: the adapter's projection of
        its features [1, T, C] (a clip read as tokens when the model reads speech,
        read_speech); for a photo and an adapter that reads labels, the sentence naming it
        both before and after those tokens ("This is a penguin.", "This is perhaps a
        penguin."; the name from the adapter's name head when it has one, else the vision
        labeller's top label). After the tokens alone, the answer mostly followed the tokens,
        which were trained on ImageNet's labels: held-out drawings whose name head was right
        were named in the answer 32 times of 72 that way, 68 times of 72 with the sentence on
        both sides (README).
        The projection runs on a team of one thread, whatever the caller's: the prefix cache
        reuses a prompt's keys and values only where its vectors are the same bits, and a
        team of two rounds a matrix product apart from a team of one. Until 2026-12-06 a
        hands-free question's photo, prefilled as it began on a team of one (the browser
        busy, app/web_partial.py), was prefilled again in its question's prompt (two)."""
        features = medium.features.to(embed.weight.device)
        if kind == "audio" and self.reads_speech:
            reading = self.read_speech(medium, embed.weight)
            if reading:
                return self.adapter.project_reading(reading, embed.weight)
        with one_thread_here():  # the same bits whichever thread and team project it
            tokens = self.adapter.project(kind, features, embed.weight)
            if kind != "image" or not self.adapter.config.image_label:
                return tokens
            phrase = self.photo_phrase(medium)
        if phrase is None:
            return tokens
        words = self.tokenizer.encode(naming_sentence(phrase), add_special_tokens=False)
        named = embed(torch.tensor(words, device=tokens.device)).to(tokens.dtype)  # W, D
        return torch.cat([named, tokens, named])  # W + T + W, D

    def photo_phrase(self, photo: Photo) -> str | None:
        """The words that name an encoded photo for the LM, or None when nothing can: the
        name head's, with the labeller's classes voting when there is one (name_head.py)."""
        names, labeller = self.adapter.image_names, self.vision.labeller
        if names is not None:
            votes = None
            if labeller is not None:
                key = (id(names), id(labeller))
                if getattr(self, "_vote_matrix", (None,))[0] != key:  # built once per pair
                    self._vote_matrix = (key, class_vote_matrix(labeller.names, names.names))
                votes = labeller.probabilities(photo.features) @ self._vote_matrix[1]  # 1, K
            return names.phrase(photo.features, votes)
        if labeller is not None:
            return self.vision.labeller.phrase(photo.features)  # on the encoder's own device
        return None

    @property
    def reads_speech(self) -> bool:
        """Whether clips are read as tokens chosen by read_speech (else: the adapter's own
        projection of each clip)."""
        return self.speech_reading is not None and self.adapter.audio_ctc is not None

    @torch.inference_mode()
    def read_speech(
        self,
        speech: Speech,
        vocabulary: torch.Tensor,
        messages: Sequence[Message] | None = None,
        owner: str = "",
    ) -> list[int]:
        """The LM tokens a clip is read as, chosen once per clip and kept on it: Whisper's
        best reading when its beam search was sure, else its readings judged by Whisper's
        decoder and those close to its best by the LM, after what stands before the clip in
        the prompt that answers `messages`, the clip's own among them (reading_context; None:
        the clip asked alone). The LM's pass over the chosen reading is kept for `owner`
        (reading_pass.py): the answer's prefill starts at its last word."""
        if speech.reading is None:
            options = self.speech_reading
            features = speech.features.to(vocabulary.device)  # 1, T, C
            heard = [
                self.tokenizer.encode(spoken_form(text), add_special_tokens=False)
                for text in (speech.heard or ([speech.transcript] if speech.transcript else []))
            ]
            known = len(speech.heard_scores) == len(speech.heard) > 0
            beam_scores = list(speech.heard_scores) if known else None
            passes: list[ReadingPass] = []  # the LM's, when it judged

            def whisper(texts: list[str]) -> list[float]:
                return self.transcriber.score(features, texts, speech.language)

            def lm(texts: list[str]) -> list[float]:
                asked = messages or [Message("user", speech=speech)]
                context = self.reading_context(asked, speech, owner)
                passes.append(ReadingPass(self.lm, context, vocabulary, self.prefixes))
                rows = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
                return passes[-1].scores(rows)

            log_probs = (
                self.adapter.audio_log_probs(features, vocabulary) if options.adapter_beam else None
            )
            speech.reading = choose_reading(
                log_probs, heard, self.tokenizer.decode, whisper, lm, options, beam_scores
            )
            for scoring in passes:
                scoring.keep(speech.reading)
        return speech.reading

    @torch.inference_mode()
    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None, owner: str = ""
    ) -> Iterator[Heard | Chunk | Stats]:
        """Answer the conversation: yields Heard for each new transcript, Chunk pieces of the
        answer, then one Stats. owner: whose media cache entries it may use (encode_media)."""
        options = _prompt_options(messages, options or GenerationOptions())
        start = time.perf_counter()
        new_speech = [m.speech for m in messages if m.speech and m.speech.features is None]
        timings = self.encode_media(messages, owner)
        for speech in new_speech:
            yield Heard(speech.transcript)
        inputs = self.build_inputs(messages, self.answer_opening(messages))
        length = inputs.embeddings.shape[1]
        if length + options.max_new_tokens > self.context_length:
            raise InputError(
                f"the conversation is {length} tokens; with {options.max_new_tokens} new tokens it "
                f"exceeds the model's {self.context_length}: clear the chat or ask for a shorter answer"
            )
        if inputs.opening:
            yield Chunk(inputs.opening)  # what the LM goes on from is the answer's beginning
        text = IncrementalText(self.tokenizer)
        emitted, stopped, first_token_at = 0, False, None
        longest_stop = max((len(s) for s in options.stop), default=0)
        decode = self.decoder.tokens if self.decoder is not None else self._decode_alone
        self._keep_opening(decode)
        if self.decoder is not None:  # its thread decodes; this one's team would slow it down
            release_here()
        paused = {}  # (a stop string held back would keep the reader's text behind the pause)
        if self.decoder is not None and options.pause_after is not None and not options.stop:
            paused["pause_at"] = self._text_pause(inputs.opening, options.pause_after)
        tokens = decode(inputs.embeddings, options, self.stop_ids, inputs.layout, owner, **paused)
        with closing(tokens):  # a stop string, or a reader that left: the row is freed
            for token in tokens:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                text.push(token)
                cut = _first_stop(text.text, options.stop)
                if cut is not None:
                    yield Chunk(text.text[emitted:cut])
                    emitted, stopped = cut, True
                    break
                safe = max(
                    emitted, len(text.text) - max(longest_stop - 1, 0)
                )  # hold back a partial stop
                if safe > emitted:
                    yield Chunk(text.text[emitted:safe])
                    emitted = safe
        if not stopped and len(text.text) > emitted:
            yield Chunk(text.text[emitted:])
        end = time.perf_counter()
        new_tokens = len(text.ids)
        first = first_token_at or end
        timings["first_token"] = (first - start) * 1000
        timings["total"] = (end - start) * 1000
        decode_s = end - first
        last_user = next((m for m in reversed(messages) if m.role == "user"), None)
        yield Stats(
            timings_ms={k: round(v, 1) for k, v in timings.items()},
            new_tokens=new_tokens,
            tokens_per_s=round((new_tokens - 1) / decode_s, 1)
            if new_tokens > 1 and decode_s > 0
            else 0.0,
            prompt_tokens=inputs.prompt_tokens,
            finish_reason="stop" if stopped or new_tokens < options.max_new_tokens else "length",
            transcripts=[last_user.speech.transcript] if last_user and last_user.speech else [],
            read_as=[self.tokenizer.decode(last_user.speech.reading)]
            if last_user and last_user.speech and last_user.speech.reading
            else [],
        )

    def _text_pause(
        self, opening: str, pause_after: Callable[[str], bool]
    ) -> Callable[[list[int]], bool]:
        """GenerationOptions.pause_after on the answer's text as its reader gets it (the
        opening, then the tokens) -> the decode scheduler's pause_at, on token ids."""

        def pause_at(ids: list[int]) -> bool:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            return not text.endswith("\ufffd") and pause_after(opening + text)

        return pause_at

    @torch.inference_mode()
    def prefill(
        self, messages: Sequence[Message], owner: str = "", heard: Callable[[], bool] | None = None
    ) -> int:
        """Do now what answering `messages` (for `owner`) would start with: encode their
        media and prefill the answer's prompt, kept for `owner` (prefix_cache.py). The answer,
        asked soon after with the same messages, then finds its media encoded and its whole
        prompt prefilled, with the logits of its first token. The media lock is held
        throughout: an answer that starts meanwhile waits for the prefill instead of doing the
        same work beside it.
        heard: as encode_media's. Returns the prompt's length in tokens (0: nothing
        prefilled, as `heard` said, or too long to answer)."""
        options = _prompt_options(messages, GenerationOptions(max_new_tokens=1))
        with self.media_lock:
            if not self._encode_media(messages, owner, dict.fromkeys(MEDIA_STAGES, 0.0), heard):
                return 0
            inputs = self.build_inputs(messages, self.answer_opening(messages))
            length = inputs.embeddings.shape[1]
            if length >= self.context_length:
                return 0
            decode = self.decoder.tokens if self.decoder is not None else self._decode_alone
            self._keep_opening(decode)
            for _ in decode(inputs.embeddings, options, set(), inputs.layout, owner):
                pass  # the one token is the answer's own first: it is sampled again then
        return length

    def share(self) -> None:
        """Answer many at once from now on: one DecodeScheduler batches every answer. The
        calling thread (the one that loaded the model, as a rule) lets its OpenMP team go."""
        if self.decoder is None:
            self.decoder = DecodeScheduler(self.lm, prefixes=self.prefixes)
        release_here()

    def decoding_held(self):
        """A context in which no answer decodes (the decode scheduler's hold, at most
        scheduler.MAX_HOLD_S), for work a person waits on more than on the next tokens: the
        first piece of a spoken answer. Nothing is held when answers decode alone."""
        return self.decoder.hold() if self.decoder is not None else nullcontext()

    def unshare(self) -> None:
        """Back to each answer decoding alone (its scheduler's thread stops when idle)."""
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None

    def _keep_opening(self, decode) -> None:
        """Prefill the system prompt alone when it is not kept (the first answer, or evicted),
        so that every conversation, anyone's, starts after it (prefix_cache.PUBLIC)."""
        if not self.system_prompt:
            return
        if self._opening is None or self._opening[0] != self.system_prompt:
            system = [{"role": "system", "content": self.system_prompt}]
            text = self.tokenizer.apply_chat_template(system, tokenize=False)
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            embed = self.lm.get_input_embeddings()
            opening = embed(torch.tensor([ids], device=embed.weight.device))  # 1, L, D
            self._opening = (self.system_prompt, opening)
        opening = self._opening[1]
        if not self.prefixes.holds(opening[0], PUBLIC):
            one = GenerationOptions(max_new_tokens=1)
            for _ in decode(opening, one, set(), None, PUBLIC):
                pass

    def _decode_alone(self, embeddings, options, stop_ids, layout, owner) -> Iterator[int]:
        return generate_tokens(self.lm, embeddings, options, stop_ids, layout, self.prefixes, owner)


def _prompt_options(messages: Sequence[Message], options: GenerationOptions) -> GenerationOptions:
    """The options an answer to `messages` is prefilled with (_prompt_in_bfloat16)."""
    if _prompt_in_bfloat16(messages):
        return replace(options, prompt_in_bfloat16=True)
    return options


def _prompt_in_bfloat16(messages: Sequence[Message]) -> bool:
    """Whether the prompt answering `messages` runs on the bfloat16 prompt copies: that of a
    conversation with photos (~60 tokens a photo: its prefill is most of its first token, and
    bfloat16 left every photo row of `lunettes eval` as float32 had it; README, Speed), and the
    pass that reads its clips (reading_pass.py)."""
    return any(m.photos for m in messages)


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    return min(found) if found else None


def _stop_ids(lm: torch.nn.Module, tokenizer) -> set[int]:
    ids = set()
    configured = getattr(getattr(lm, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return ids


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def naming_sentence(phrase: str) -> str:
    """The name head's phrase -> the sentence the LM reads on both sides of a photo's tokens."""
    return f"This is {phrase}."
