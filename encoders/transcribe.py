"""What the person said: Whisper's decoder over already-encoded features.

The features are the same [1, T, D] tokens the adapter sees (only the real frames, see
encoders/audio.py), so transcription costs the decoder alone. Language is detected from the
first decoder step unless given.

Decoding is openai-whisper's own beam search (its DecodingTask, BEAM_SIZE beams, given the
encoded frames), which on natural held-out speech read far better than greedy decoding
("How do I tie a tie?" greedy: "Haruai tai tai."; README "How a clip is read"). On a clip
cut short of the 30 s window the beam may go on after the question, repeating it: a tail that
repeats a block keeps one copy of it, and a sentence that starts the transcript over
("How long does it take to walk a mile? How long does it") is cut off.
`beam_size=1` is greedy decoding with a loop stop of its own, at a third of the cost.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from whisper.decoding import (
    DecodingOptions,
    DecodingTask,
    LogitFilter,
    MaximumLikelihoodRanker,
    PyTorchInference,
)
from whisper.model import Whisper, disable_sdpa
from whisper.tokenizer import Tokenizer, get_tokenizer

from encoders.whisper_decoder import PackedTextDecoder

TOKENS_PER_SECOND_CAP = 10  # speech rarely exceeds ~6 tokens/s; caps runaway repetition
MIN_TOKEN_CAP = 16
BEAM_SIZE = 5  # openai-whisper's own default for beam search


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    # Every reading the beam finished with, cleaned as `text` is, Whisper's best first
    # (text itself); only `text` when decoding is greedy. Another judge may choose among them.
    alternatives: tuple[str, ...] = ()
    # The beam's log-probability of each alternative (its likeliest beam that reads so, end of
    # text included, before cleaning); () when decoding is greedy.
    scores: tuple[float, ...] = ()


class Transcriber:
    """Whisper's decoder over encoded frames; one call at a time (the KV-cache hooks are per model)."""

    def __init__(self, whisper: Whisper, beam_size: int = BEAM_SIZE):
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        self.whisper = whisper
        self.beam_size = beam_size
        self._lock = threading.Lock()

    def tokenizer(self, language: str | None, task: str = "transcribe") -> Tokenizer:
        return get_tokenizer(
            self.whisper.is_multilingual,
            num_languages=self.whisper.num_languages,
            language=language,
            task=task,
        )

    @torch.inference_mode()
    def __call__(
        self,
        features: torch.Tensor,
        language: str | None = None,
        task: str = "transcribe",
        stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        """features [1, T, D] from AudioEncoder -> Transcript. task "translate": what was said,
        in English (Whisper's own translation; multilingual models only). stop: asked before
        each token of a greedy transcript; True ends it there, with the words so far."""
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be transcribe or translate, got {task!r}")
        seconds = features.shape[1] / 50  # T frames at 50 Hz
        max_tokens = min(
            self.whisper.dims.n_text_ctx // 2, MIN_TOKEN_CAP + int(TOKENS_PER_SECOND_CAP * seconds)
        )
        with self._lock:
            cross: dict = {}  # cross-attention's keys and values of these frames, once made
            if language is None and self.whisper.is_multilingual:
                language = self._detect_language(features, cross)
            tokenizer = self.tokenizer(language or "en", task)
            scores: list[float] = []  # the beam's log-probability of each reading
            if self.beam_size > 1:
                readings, scores = self._beam(features, tokenizer, max_tokens, cross)
            else:
                cache, hooks = self.whisper.install_kv_cache_hooks()
                try:
                    readings = [self._greedy(features, tokenizer, max_tokens, cache, stop)]
                finally:
                    for hook in hooks:
                        hook.remove()
        texts = [tokenizer.decode(tokens).strip() for tokens in readings]
        best: dict[str, float | None] = {}  # each text's likeliest beam, in the order read
        for text, score in zip(texts, scores or [None] * len(texts)):
            if text and (text not in best or (score is not None and score > best[text])):
                best[text] = score
        alternatives = tuple(best) or (texts[0],)
        kept = tuple(best.values()) if scores and best else ()
        return Transcript(texts[0], language or "en", alternatives, kept)

    def _beam(
        self, features: torch.Tensor, tokenizer: Tokenizer, max_tokens: int, cross: dict
    ) -> tuple[list[list[int]], list[float]]:
        """openai-whisper's beam search over the encoded frames [1, T, D] -> (every finished
        reading, cleaned of loops and restarts, the library's choice first; the beam's
        log-probability of each). cross: what the language detection kept of cross-attention
        (_detect_language), or nothing."""
        options = DecodingOptions(
            task=tokenizer.task,
            language=tokenizer.language or "en",  # English-only models' tokenizers have none
            beam_size=self.beam_size,
            sample_len=max_tokens,
            without_timestamps=True,
            fp16=features.dtype == torch.float16,
        )
        task = _EncodedFramesTask(self.whisper, options, cross)
        task.sequence_ranker = ranker = _KeepingRanker(options.length_penalty)
        best = list(task.run(features)[0].tokens)
        finished = dict(zip(map(tuple, ranker.candidates), ranker.sum_logprobs))
        readings = [best] + [c for c in ranker.candidates if c != best]
        scores = [finished.get(tuple(tokens), float("nan")) for tokens in readings]
        return [_cleaned(tokens, tokenizer) for tokens in readings], scores

    @torch.inference_mode()
    def score(
        self, features: torch.Tensor, texts: list[str], language: str | None = None
    ) -> list[float]:
        """Whisper's log-probability of each text as the whole transcript of features [1, T, D]
        (teacher-forced, end of text included): how well Whisper's own decoder thinks each
        text fits what was said. Language None: English.

        Candidate texts mostly share their beginnings, so they run as one tree: each distinct
        prefix is one decoder position that attends to its own ancestors only (tree attention,
        as speculative decoding verifies drafts), and the vocabulary projection runs once per
        prefix. Eight readings of a 5 s clip: ~100 positions instead of ~240.
        """
        if not texts:
            return []
        tokenizer = self.tokenizer(language or "en")
        prompt = list(tokenizer.sot_sequence_including_notimestamps)
        rows = [prompt + tokenizer.encode(" " + text.strip()) + [tokenizer.eot] for text in texts]
        if max(len(row) for row in rows) > self.whisper.dims.n_text_ctx:
            raise ValueError(
                f"a text is longer than Whisper's {self.whisper.dims.n_text_ctx} tokens"
            )
        tree = PrefixTree(rows)
        with self._lock, disable_sdpa():  # no KV-cache hooks; attention with the tree's mask
            hidden = self._decoder_hidden(tree, features)  # N, D
        predictors = [i for i, depth in enumerate(tree.depths) if depth >= len(prompt) - 1]
        row_of = {node: k for k, node in enumerate(predictors)}
        log_probs = _logits(self.whisper.decoder, hidden[predictors]).log_softmax(-1)  # P, V
        scores = []
        for row in rows:
            total = 0.0
            for end in range(len(prompt), len(row)):  # row[:end] predicts row[end]
                total += float(log_probs[row_of[tree.nodes[tuple(row[:end])]], row[end]])
            scores.append(total)
        return scores

    def _decoder_hidden(self, tree: "PrefixTree", features: torch.Tensor) -> torch.Tensor:
        """Whisper's TextDecoder.forward up to its final norm, over a prefix tree: [N, D].
        features [1, T, D] are the clip's encoder frames, which every position attends to."""
        decoder = self.whisper.decoder
        tokens = torch.tensor(tree.tokens)[None]  # 1, N
        x = decoder.token_embedding(tokens) + decoder.positional_embedding[tree.depths]
        x = x.to(features.dtype)
        mask = tree.mask().to(features.dtype)  # N, N additive
        for block in decoder.blocks:
            x = block(x, features, mask=mask)
        return decoder.ln(x)[0]

    def _detect_language(self, features: torch.Tensor, cross: dict) -> str:
        """The language of features [1, T, D], from the decoder's first step. With the packed
        decoder, cross-attention's keys and values of the frames land in `cross`, for the
        beam search to start from (_SharedStartInference); no other cache is filled."""
        tokenizer = self.tokenizer(None)
        sot = torch.tensor([[tokenizer.sot]])
        kept = cross if isinstance(self.whisper.decoder, PackedTextDecoder) else None
        logits = self.whisper.decoder(sot, features, kv_cache=kept)[0, -1]  # [V], one step
        language_ids = torch.tensor(list(tokenizer.all_language_tokens))
        best = language_ids[logits[language_ids].argmax()].item()
        return tokenizer.decode([best]).strip("<|>")

    def _greedy(
        self,
        features: torch.Tensor,
        tokenizer: Tokenizer,
        max_tokens: int,
        cache: dict,
        stop: Callable[[], bool] | None = None,
    ) -> list[int]:
        prompt = list(tokenizer.sot_sequence_including_notimestamps)
        suppressed = torch.zeros(self.whisper.dims.n_vocab, dtype=torch.bool)
        suppressed[tokenizer.timestamp_begin :] = True  # no timestamps
        suppressed[list(tokenizer.non_speech_tokens)] = True
        suppressed[tokenizer.sot : tokenizer.timestamp_begin] = True  # special tokens ...
        suppressed[tokenizer.eot] = False  # ... except end of text
        tokens = torch.tensor([prompt])
        generated: list[int] = []
        for step in range(max_tokens):
            if stop is not None and stop():
                break
            logits = self.whisper.decoder(tokens, features, kv_cache=cache)[0, -1]  # [V]
            logits[suppressed] = -torch.inf
            if step == 0:  # Whisper's SuppressBlank: do not start with a space or end at once
                logits[tokenizer.encode(" ") + [tokenizer.eot]] = -torch.inf
            token = int(logits.argmax())
            if token == tokenizer.eot:
                break
            generated.append(token)
            if (period := repeated_tail(generated)) is not None:
                return generated[:-period]  # a loop: keep one copy of the repeated block
            tokens = torch.tensor([[token]])
        return generated


def _logits(decoder, hidden: torch.Tensor) -> torch.Tensor:
    """hidden [..., D] after the decoder's final norm -> logits [..., V] float32: the
    decoder's own projection where it has one (whisper_decoder.py), else openai-whisper's."""
    if hasattr(decoder, "logits"):
        return decoder.logits(hidden)
    return (hidden @ decoder.token_embedding.weight.to(hidden.dtype).T).float()


def _cleaned(tokens: list[int], tokenizer: Tokenizer) -> list[int]:
    tokens = [t for t in tokens if t < tokenizer.eot]  # text only: no timestamp or task tokens
    while (period := repeated_tail(tokens)) is not None:
        tokens = tokens[:-period]  # a loop: keep one copy of the repeated block
    sentence_ends = [tokenizer.decode([t]).rstrip().endswith((".", "?", "!")) for t in tokens]
    return tokens[: restart(tokens, sentence_ends, decode=tokenizer.decode)]


class _KeepingRanker(MaximumLikelihoodRanker):
    """openai-whisper's ranking, which also keeps every finished candidate (one audio)."""

    def __init__(self, length_penalty: float | None):
        super().__init__(length_penalty)
        self.candidates: list[list[int]] = []
        self.sum_logprobs: list[float] = []  # each candidate's

    def rank(self, tokens, sum_logprobs):
        self.candidates = [t.tolist() for t in tokens[0]]
        self.sum_logprobs = [float(s) for s in sum_logprobs[0]]
        return super().rank(tokens, sum_logprobs)


class _EndLoops(LogitFilter):
    """Ends a beam's reading (end of text, at its own log-probability) as soon as it loops or
    starts the transcript over: everything after that point is cut by _cleaned anyway, and
    without this the beam went on repeating the question up to its token cap. On 30 natural
    tuning clips (the held-out neural voice) decoding took half the time, with the same best
    reading on 29 and, on the 30th, another wrong one."""

    def __init__(self, tokenizer: Tokenizer, sample_begin: int):
        self.tokenizer = tokenizer
        self.sample_begin = sample_begin
        self._ends: dict[int, bool] = {}  # token -> it ends a sentence

    def ends_sentence(self, token: int) -> bool:
        if token not in self._ends:
            self._ends[token] = self.tokenizer.decode([token]).rstrip().endswith((".", "?", "!"))
        return self._ends[token]

    def apply(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        """logits [B, V] of the next token, in place; tokens [B, L], the prompt included."""
        eot = self.tokenizer.eot
        for row, sequence in enumerate(tokens[:, self.sample_begin :].tolist()):
            if not sequence or sequence[-1] >= eot:
                continue  # nothing yet, or finished
            ends = [self.ends_sentence(token) for token in sequence]
            looping = repeated_tail(sequence) is not None
            if looping or restart(sequence, ends, decode=self.tokenizer.decode) < len(sequence):
                end = logits[row, eot].clone()
                logits[row] = -torch.inf
                logits[row, eot] = end


class _SharedStartInference(PyTorchInference):
    """openai-whisper's inference (its KV-cache hooks) doing less of the first step: from
    the cross-attention the language detection made of the clip (`cross`, packed decoder
    only: its cache takes such entries), and with the beams' identical prompts run once.

    The first step feeds every beam the same prompt (start, language, task, no timestamps):
    one row of it makes the keys, values and logits of all (4 positions instead of 20).
    The bench's 5 s question, 2-core AVX2 EPYC, 2026-12-05: the detection's step and the
    beams' first took 68-82 ms, now 31-41 ms. The 220 natural questions of both halves
    (assets/eval/spoken_questions.txt) in the neural voice and the bench's, alternating in
    one process: the same language and every reading in the same order on all 221, a
    transcript 31 ms shorter (median of the pairs)."""

    def __init__(self, model: Whisper, initial_token_length: int, cross: dict):
        super().__init__(model, initial_token_length)
        self.cross = cross

    def logits(self, tokens: torch.Tensor, audio_features: torch.Tensor) -> torch.Tensor:
        """tokens [B, N], audio_features [1, T, D] -> logits [B, N, V]."""
        if self.kv_cache:
            return super().logits(tokens, audio_features)
        self.kv_cache, self.hooks = self.model.install_kv_cache_hooks(self.cross)
        rows = tokens.shape[0]
        if rows == 1 or not bool((tokens == tokens[:1]).all()):
            return self.model.decoder(tokens, audio_features, kv_cache=self.kv_cache)
        logits = self.model.decoder(tokens[:1], audio_features, kv_cache=self.kv_cache)
        for module in self.kv_modules:  # self-attention's [1, N, D] -> every beam's
            self.kv_cache[module] = self.kv_cache[module].repeat(rows, 1, 1)
        return logits.repeat(rows, 1, 1)  # B, N, V: copies, which the logit filters change


class _EncodedFramesTask(DecodingTask):
    """openai-whisper's decoding, given encoder frames of any length [B, T, D] (its own
    check only recognises the full 30 s window, 1500 frames, as already encoded), whose
    beams end when they loop (_EndLoops), on _SharedStartInference."""

    def __init__(self, model: Whisper, options: DecodingOptions, cross: dict | None = None):
        super().__init__(model, options)
        self.logit_filters.append(_EndLoops(self.tokenizer, self.sample_begin))
        self.inference = _SharedStartInference(model, len(self.initial_tokens), cross or {})
        if hasattr(self.decoder, "inference"):  # the beam search keeps its own reference
            self.decoder.inference = self.inference

    def _get_audio_features(self, features: torch.Tensor) -> torch.Tensor:
        return features


class PrefixTree:
    """Token rows as a tree of their distinct prefixes, parents before children.

    nodes: prefix -> its position; tokens / depths [N]: each position's last token and its
    position in its own row (Whisper's positional embedding).
    """

    def __init__(self, rows: list[list[int]]):
        self.nodes: dict[tuple[int, ...], int] = {}
        self.tokens: list[int] = []
        self.depths: list[int] = []
        self.parents: list[int] = []
        for row in rows:
            for length in range(1, len(row)):  # the full row predicts nothing: not a node
                prefix = tuple(row[:length])
                if prefix in self.nodes:
                    continue
                self.nodes[prefix] = len(self.tokens)
                self.tokens.append(row[length - 1])
                self.depths.append(length - 1)
                self.parents.append(self.nodes[prefix[:-1]] if length > 1 else -1)

    def sees(self) -> torch.Tensor:
        """[N, N] bool: True where a position sees itself or an ancestor."""
        count = len(self.tokens)
        sees = torch.eye(count, dtype=torch.bool)
        for node, parent in enumerate(self.parents):
            if parent >= 0:
                sees[node] |= sees[parent]
        return sees

    def mask(self) -> torch.Tensor:
        """[N, N] additive attention mask: 0 where a position sees itself or an ancestor."""
        return torch.zeros(len(self.tokens), len(self.tokens)).masked_fill(
            ~self.sees(), float("-inf")
        )


def restart(
    tokens: list[int], sentence_ends: list[bool], min_sentence: int = 3, decode=None
) -> int:
    """Where a transcript starts itself over: the first k (>= min_sentence) such that
    tokens[k - 1] ends a sentence and tokens[k:] repeats the transcript's own beginning
    (with `decode`, as text: " Your" after a full stop is another token than "Your" at the
    start); len(tokens) when it never does.

    [How long ... mile ? How long] -> the position of the second "How".
    """
    for k in range(min_sentence, len(tokens)):
        if not sentence_ends[k - 1]:
            continue
        if tokens[k:] == tokens[: len(tokens) - k]:
            return k
        if decode is not None:  # as text, in any case: "how long ...? How long"
            again = decode(tokens[k:]).strip().casefold()
            if again and decode(tokens[:k]).strip().casefold().startswith(again):
                return k
    return len(tokens)


def repeated_tail(tokens: list[int], min_period: int = 4) -> int | None:
    """Length k of a block that ends `tokens` and stands twice in a row, or None.

    [a b c d e a b c d e] -> 5. Blocks shorter than `min_period` are legitimate speech ("no no").
    """
    for period in range(min_period, len(tokens) // 2 + 1):
        if tokens[-period:] == tokens[-2 * period : -period]:
            return period
    return None
