"""The composed assistant model: encoders -> adapter -> causal LM, streaming its answer.

Letters: L prompt length, D LM width, N / T media tokens, C encoder width.

The model never branches on model names: the prompt goes through the tokenizer's chat
template, media through the placeholder/splice contract, decoding through generate.py.
"""

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from encoders.audio import AudioEncoder
from encoders.errors import InputError
from encoders.transcribe import Transcriber
from encoders.vision import VisionEncoder
from fusion.adapter import Adapter
from fusion.conversation import Message, Photo, Speech
from fusion.generate import GenerationOptions, IncrementalText, generate_tokens
from fusion.placeholders import expand_placeholders, new_marker
from fusion.prompt_layout import PromptLayout, Scope, layout
from fusion.speech_reading import DEFAULT_READING, ReadingOptions, choose_reading
from fusion.splice import splice

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
    ]  # encode_image, encode_audio, transcribe, prefill, first_token, total
    new_tokens: int
    tokens_per_s: float  # decoding speed after the first token
    prompt_tokens: dict[str, int]  # text / image / audio
    finish_reason: str  # "stop" (end of answer or a stop string) or "length"
    transcripts: list[str] = field(default_factory=list)  # of the speech in the last user turn
    readings: list[str] = field(default_factory=list)  # what the LM read for that speech, as text


@dataclass
class PromptInputs:
    embeddings: torch.Tensor  # [1, L, D] token embeddings with media spliced in
    prompt_tokens: dict[str, int]  # text / image / audio
    layout: PromptLayout | None = None  # positions and attention, when a clip has scoped cues


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
        self.context_length = getattr(lm.config, "max_position_embeddings", 2048)
        self.stop_ids = _stop_ids(lm, tokenizer)

    def describe(self) -> dict:
        """What is loaded, for every surface (CLI JSON, web app)."""
        info = self.adapter.info
        return {
            "language_model": self.lm_name,
            "vision_encoder": self.vision.name,
            "audio_encoder": self.audio.name,
            "adapter": {"trained": info.trained, "metrics": info.metrics, "notes": info.notes},
        }

    def encode_media(self, messages: Sequence[Message]) -> dict[str, float]:
        """Encode every photo and clip that has no features yet; transcribe and read (as LM
        tokens, read_speech) new speech.

        Returns the time spent, in milliseconds, under encode_image / encode_audio /
        transcribe / read_speech.
        """
        timings = {"encode_image": 0.0, "encode_audio": 0.0, "transcribe": 0.0, "read_speech": 0.0}
        new_photos = [p for m in messages for p in m.photos if p.features is None]
        if new_photos:
            start = time.perf_counter()
            features = self.vision.encode([p.image for p in new_photos])  # B, N, C
            for photo, row in zip(new_photos, features):
                photo.features = row.unsqueeze(0)
            timings["encode_image"] = _ms_since(start)
        for speech in (m.speech for m in messages if m.speech and m.speech.transcript is None):
            if speech.features is None:
                start = time.perf_counter()
                speech.features = self.audio.encode(speech.waveform)  # 1, T, C
                timings["encode_audio"] += _ms_since(start)
            start = time.perf_counter()
            transcript = self.transcriber(speech.features)
            speech.transcript, speech.language = transcript.text, transcript.language
            timings["transcribe"] += _ms_since(start)
        if self.reads_speech:
            vocabulary = self.lm.get_input_embeddings().weight
            for speech in (m.speech for m in messages if m.speech and m.speech.reading is None):
                start = time.perf_counter()
                self.read_speech(speech, vocabulary)
                timings["read_speech"] += _ms_since(start)
        return timings

    def build_inputs(self, messages: Sequence[Message]) -> PromptInputs:
        """Messages with encoded media -> input embeddings [1, L, D] for the LM."""
        marker = new_marker()
        chat, media = [], []  # media: (modality, Photo | Speech | None) in prompt order
        cued = self.adapter.audio_cues is not None  # clips wrapped in scoped cues
        if self.system_prompt and (not messages or messages[0].role != "system"):
            chat.append({"role": "system", "content": self.system_prompt})
        for message in messages:
            if marker in message.text:  # a fresh random marker: only a collision could do this
                raise InputError("message text collides with the media marker; please resend")
            parts = []
            for photo in message.photos:
                parts.append(marker)
                media.append(("image", photo))
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
        return PromptInputs(embeddings, counts, layout(embeddings.shape[1], scopes))

    def project_medium(
        self, kind: str, medium: Photo | Speech, embed: torch.nn.Embedding
    ) -> torch.Tensor:
        """One encoded medium -> its LM input embeddings [T', D]: the adapter's projection of
        its features [1, T, C] (a clip read as tokens when the model reads speech,
        read_speech), then, for a photo whose encoder has a labeller and an adapter that reads
        labels, the embeddings of its top label's words ("a tabby cat")."""
        features = medium.features.to(embed.weight.device)
        if kind == "audio" and self.reads_speech:
            reading = self.read_speech(medium, embed.weight)
            if reading:
                return self.adapter.project_reading(reading, embed.weight)
        tokens = self.adapter.project(kind, features, embed.weight)
        labeller = self.vision.labeller
        if kind != "image" or labeller is None or not self.adapter.config.image_label:
            return tokens
        phrase = labeller.phrase(medium.features)  # on the vision encoder's own device
        words = self.tokenizer.encode(phrase, add_special_tokens=False)
        label = embed(torch.tensor(words, device=tokens.device))  # W, D
        return torch.cat([tokens, label.to(tokens.dtype)])

    @property
    def reads_speech(self) -> bool:
        """Whether clips are read as tokens chosen by read_speech (else: the adapter's own
        projection of each clip)."""
        return self.speech_reading is not None and self.adapter.audio_ctc is not None

    @torch.inference_mode()
    def read_speech(self, speech: Speech, vocabulary: torch.Tensor) -> list[int]:
        """The LM tokens a clip is read as, chosen once per clip and kept on it: the
        adapter's likeliest readings, rescored with Whisper's decoder (speech_reading.py)."""
        if speech.reading is None:
            features = speech.features.to(vocabulary.device)  # 1, T, C
            heard = (
                self.tokenizer.encode(speech.transcript.strip(), add_special_tokens=False)
                if speech.transcript
                else None
            )
            speech.reading = choose_reading(
                self.adapter.audio_log_probs(features, vocabulary),
                heard,
                self.tokenizer.decode,
                lambda texts: self.transcriber.score(features, texts, speech.language),
                self.speech_reading,
            )
        return speech.reading

    @torch.inference_mode()
    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[Heard | Chunk | Stats]:
        """Answer the conversation: yields Heard for each new transcript, Chunk pieces of the
        answer, then one Stats."""
        options = options or GenerationOptions()
        start = time.perf_counter()
        new_speech = [m.speech for m in messages if m.speech and m.speech.features is None]
        timings = self.encode_media(messages)
        for speech in new_speech:
            yield Heard(speech.transcript)
        inputs = self.build_inputs(messages)
        length = inputs.embeddings.shape[1]
        if length + options.max_new_tokens > self.context_length:
            raise InputError(
                f"the conversation is {length} tokens; with {options.max_new_tokens} new tokens it "
                f"exceeds the model's {self.context_length}: clear the chat or ask for a shorter answer"
            )
        text = IncrementalText(self.tokenizer)
        emitted, stopped, first_token_at = 0, False, None
        longest_stop = max((len(s) for s in options.stop), default=0)
        for token in generate_tokens(
            self.lm, inputs.embeddings, options, self.stop_ids, inputs.layout
        ):
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
            readings=[self.tokenizer.decode(last_user.speech.reading)]
            if last_user and last_user.speech and last_user.speech.reading
            else [],
        )


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
