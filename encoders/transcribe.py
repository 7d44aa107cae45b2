"""What the person said: greedy Whisper decoding over already-encoded features.

The features are the same [1, T, D] tokens the adapter sees (only the real frames, see
encoders/audio.py), so transcription costs the decoder alone. Language is detected from the
first decoder step unless given.
"""

import threading
from dataclasses import dataclass

import torch
from whisper.model import Whisper
from whisper.tokenizer import Tokenizer, get_tokenizer

TOKENS_PER_SECOND_CAP = 10  # speech rarely exceeds ~6 tokens/s; caps runaway repetition
MIN_TOKEN_CAP = 16


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str


class Transcriber:
    """Greedy decoding with Whisper's decoder; one call at a time (the KV-cache hooks are per model)."""

    def __init__(self, whisper: Whisper):
        self.whisper = whisper
        self._lock = threading.Lock()

    def tokenizer(self, language: str | None) -> Tokenizer:
        return get_tokenizer(
            self.whisper.is_multilingual,
            num_languages=self.whisper.num_languages,
            language=language,
            task="transcribe",
        )

    @torch.inference_mode()
    def __call__(self, features: torch.Tensor, language: str | None = None) -> Transcript:
        """features [1, T, D] from AudioEncoder -> Transcript."""
        seconds = features.shape[1] / 50  # T frames at 50 Hz
        max_tokens = min(
            self.whisper.dims.n_text_ctx // 2, MIN_TOKEN_CAP + int(TOKENS_PER_SECOND_CAP * seconds)
        )
        with self._lock:
            if language is None and self.whisper.is_multilingual:
                language = self._detect_language(
                    features
                )  # before the hooks: it must not fill the cache
            tokenizer = self.tokenizer(language or "en")
            cache, hooks = self.whisper.install_kv_cache_hooks()
            try:
                tokens = self._greedy(features, tokenizer, max_tokens, cache)
            finally:
                for hook in hooks:
                    hook.remove()
        return Transcript(text=tokenizer.decode(tokens).strip(), language=language or "en")

    @torch.inference_mode()
    def score(
        self, features: torch.Tensor, texts: list[str], language: str | None = None
    ) -> list[float]:
        """Whisper's log-probability of each text as the whole transcript of features [1, T, D]
        (teacher-forced, end of text included): how well Whisper's own decoder thinks each
        text fits what was said. One batched decoder pass; language None: English.

        Candidate texts mostly share their beginnings, and the vocabulary projection costs as
        much as the decoder layers, so it runs once per distinct prefix, not per position.
        """
        if not texts:
            return []
        tokenizer = self.tokenizer(language or "en")
        prompt = list(tokenizer.sot_sequence_including_notimestamps)
        rows = [prompt + tokenizer.encode(" " + text.strip()) + [tokenizer.eot] for text in texts]
        width = max(len(row) for row in rows)
        if width > self.whisper.dims.n_text_ctx:
            raise ValueError(
                f"a text is longer than Whisper's {self.whisper.dims.n_text_ctx} tokens"
            )
        tokens = torch.full((len(rows), width), tokenizer.eot, dtype=torch.long)  # B, W
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row)
        # each distinct prefix that predicts a scored token: (row, position) of its first use
        first_use: dict[tuple[int, ...], int] = {}
        where: list[tuple[int, int]] = []
        for i, row in enumerate(rows):
            for position in range(len(prompt) - 1, len(row) - 1):
                if first_use.setdefault(tuple(row[: position + 1]), len(where)) == len(where):
                    where.append((i, position))
        with self._lock:  # no KV-cache hooks may be installed while this runs
            hidden = self._decoder_hidden(tokens, features)  # B, W, D
        picked = hidden[[i for i, _ in where], [p for _, p in where]]  # P, D
        embedding = self.whisper.decoder.token_embedding.weight.to(picked.dtype)  # V, D
        log_probs = (picked @ embedding.T).float().log_softmax(-1)  # P, V
        scores = []
        for row in rows:
            total = 0.0
            for position in range(len(prompt) - 1, len(row) - 1):
                total += float(log_probs[first_use[tuple(row[: position + 1])], row[position + 1]])
            scores.append(total)
        return scores

    def _decoder_hidden(self, tokens: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Whisper's TextDecoder.forward up to its final norm: tokens [B, W] -> [B, W, D].
        features [1, T, D] are shared by every row (attention broadcasts them)."""
        decoder = self.whisper.decoder
        x = decoder.token_embedding(tokens) + decoder.positional_embedding[: tokens.shape[1]]
        x = x.to(features.dtype)
        for block in decoder.blocks:
            x = block(x, features, mask=decoder.mask)
        return decoder.ln(x)

    def _detect_language(self, features: torch.Tensor) -> str:
        tokenizer = self.tokenizer(None)
        sot = torch.tensor([[tokenizer.sot]])
        logits = self.whisper.decoder(sot, features)[0, -1]  # [V], no cache: one step
        language_ids = torch.tensor(list(tokenizer.all_language_tokens))
        best = language_ids[logits[language_ids].argmax()].item()
        return tokenizer.decode([best]).strip("<|>")

    def _greedy(
        self, features: torch.Tensor, tokenizer: Tokenizer, max_tokens: int, cache: dict
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


def repeated_tail(tokens: list[int], min_period: int = 4) -> int | None:
    """Length k of a block that ends `tokens` and stands twice in a row, or None.

    [a b c d e a b c d e] -> 5. Blocks shorter than `min_period` are legitimate speech ("no no").
    """
    for period in range(min_period, len(tokens) // 2 + 1):
        if tokens[-period:] == tokens[-2 * period : -period]:
            return period
    return None
