"""One thread owns the language model's decoding; every answer, from any surface, joins it.

Continuous batching on a BatchDecoder (batch_decoder.py): between two decode steps the
scheduler takes the next waiting answer (first come, first served), prefills it and adds its
row; it then runs one step for every row and hands each answer its new token. While answers
are running, a prompt is prefilled PREFILL_CHUNK tokens per turn (after the prefix a kept
prompt gave it, prefix_cache.py), so a running answer waits at most one chunk between two of
its tokens, however many arrive and however long their prompts. An answer whose reader stops
(a client that left, Stop in the web app) leaves the batch at the next step, freeing its row.

A hold (`hold()`) keeps every answer waiting for a moment, e.g. while the first piece of a
spoken answer is synthesised: the tokens are far ahead of the voice anyway, and the voice
ran ~3x slower beside the decode steps (below). It begins once the turn in flight has ended
and lasts at most MAX_HOLD_S. Its reader cannot ask for it before the step that follows the
piece's last token has begun, though: the decode thread hands the token over and goes on at
once. So an answer may come with a pause (`tokens(pause_at=...)`), checked in the decode
thread as each token is handed over: once it says the reader's piece is written, no step
starts, as under a hold, until the reader's hold() takes over (or MAX_HOLD_S has passed).

Rows are bounded by memory, not by a count: an answer is let in while the batch's KV cache,
counted at the longest row (prompt + max_new_tokens, as the rows are padded to it), stays
within `kv_budget_bytes`. An answer alone is always let in, however long.

The decode thread's OpenMP team has as many threads as torch's (set for that thread alone).
It was one fewer while the idle team of the thread that loaded the model made libgomp stop
spinning between parallel regions (one stream 34.1 tok/s with 1 thread vs 20.7 with 2, AMD
EPYC, 2026-12-02); other threads now let their teams go when done (openmp.py), and so does
the decode thread when it goes idle.

Letters: L prompt length, D LM width.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from fusion.batch_decoder import BatchDecoder, Row
from fusion.generate import GenerationOptions
from fusion.openmp import release_here, set_threads_here
from fusion.prefill import Prefill
from fusion.prefix_cache import PrefixCache
from fusion.prompt_layout import PromptLayout
from fusion.team_size import TeamSizes

DEFAULT_KV_BUDGET_BYTES = 512 * 1024 * 1024
PREFILL_CHUNK = 64  # prompt tokens prefilled per turn while other answers are running
# The longest a hold() keeps the batch waiting. Piper's voice for "The plant you're referring
# to" (1.4 s of speech), made while an answer decoded beside it: median 172 ms; with the
# decoding held from the end of the step in flight: 65 ms (8 of each, one process, 2 cores,
# AMD EPYC, 2026-12-04).
MAX_HOLD_S = 0.5
_END = object()
log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Answer:
    embeddings: torch.Tensor  # [1, L, D]
    options: GenerationOptions
    stop_ids: set[int]
    layout: PromptLayout | None
    owner: str | None  # whose kept prompt prefixes it may start from
    tokens: deque = field(default_factory=deque)  # new token ids, then _END or an exception
    ready: threading.Event = field(default_factory=threading.Event)
    prefill: Prefill | None = None  # while its prompt goes into the cache
    row: Row | None = None
    sent: int = 0  # tokens of row.generated handed over so far
    cancelled: bool = False
    pause_at: Callable[[list[int]], bool] | None = None  # see DecodeScheduler.tokens
    paused_until: float | None = None  # the end of the hold its pause put in force

    @property
    def columns(self) -> int:
        """The most cache columns it can need: prompt + every new token."""
        return self.embeddings.shape[1] + self.options.max_new_tokens

    def put(self, item) -> None:
        self.tokens.append(item)
        self.ready.set()


class DecodeScheduler:
    def __init__(
        self,
        lm: torch.nn.Module,
        kv_budget_bytes: int = DEFAULT_KV_BUDGET_BYTES,
        threads: int | None = None,
        prefixes: PrefixCache | None = None,
        adapt_team: bool = True,
    ):
        """prefixes: kept prompt prefixes (prefix_cache.py) each prompt starts from; None:
        every prompt is prefilled whole. adapt_team: decode steps on the faster of `threads`
        and one thread, as measured (team_size.py); False: always on `threads`."""
        self.decoder = BatchDecoder(lm, prefixes)
        self.threads = threads or torch.get_num_threads()
        self.team_sizes = TeamSizes(self.threads) if adapt_team else None
        self.kv_budget_bytes = kv_budget_bytes
        self.kv_bytes_per_column = kv_bytes_per_token(lm)
        self._waiting: deque[_Answer] = deque()
        self._running: list[_Answer] = []
        self._filling: _Answer | None = None  # the answer whose prompt is being prefilled
        lock = threading.Lock()
        self._wake = threading.Condition(lock)  # the decode thread waits on it
        self._between = threading.Condition(lock)  # hold() waits on it for the turn in flight
        self._holds: list[float] = []  # when each hold() in force stops holding, at the latest
        self._pauses: list[float] = []  # ... those of them that answers' pauses put in force
        self._in_turn = False  # a prefill or a step is running (outside the lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.steps = 0  # decode steps run, and rows summed over them (for the bench)
        self.row_steps = 0

    def tokens(
        self,
        embeddings: torch.Tensor,
        options: GenerationOptions,
        stop_ids: set[int],
        layout: PromptLayout | None = None,
        owner: str | None = "",
        pause_at: Callable[[list[int]], bool] | None = None,
    ) -> Iterator[int]:
        """As generate.generate_tokens: embeddings [1, L, D] -> new token ids, decoded in the
        batch. Closing the iterator cancels the answer.
        pause_at: called in the decode thread with the answer's token ids so far as each new
        one is handed over, until it returns True once: from then on no step starts until a
        hold() begins, which takes the pause over, or MAX_HOLD_S has passed. For a reader that
        holds the decoding as soon as it has read those tokens (a spoken answer's first piece)."""
        answer = _Answer(embeddings.detach(), options, set(stop_ids), layout, owner)
        answer.pause_at = pause_at
        with self._wake:
            self._start()
            self._waiting.append(answer)
            self._wake.notify()
        try:
            while True:
                answer.ready.wait()
                while answer.tokens:
                    item = answer.tokens.popleft()
                    if item is _END:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                answer.ready.clear()
                if answer.tokens:  # put between the drain and the clear
                    answer.ready.set()
        finally:
            with self._wake:
                answer.cancelled = True
                self._end_pause(answer.paused_until)
                if answer in self._waiting:
                    self._waiting.remove(answer)
                self._wake.notify()

    @contextmanager
    def hold(self):
        """No prefill or decode step starts while this is held, for at most MAX_HOLD_S; it
        begins once the turn in flight has ended (waiting for it at most as long)."""
        until = time.monotonic() + MAX_HOLD_S
        with self._wake:
            for paused in list(self._pauses):  # what the pauses waited for: this hold
                self._end_pause(paused)
            self._holds.append(until)
            while self._in_turn and (left := until - time.monotonic()) > 0:
                self._between.wait(left)
        try:
            yield
        finally:
            with self._wake:
                self._holds.remove(until)
                self._wake.notify()

    @property
    def running(self) -> int:
        return len(self._running)

    def close(self) -> None:
        """Stop the thread once no answer is left (a new answer starts it again)."""
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _start(self) -> None:
        self._closed = False
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="decode", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        set_threads_here(self.threads)
        while True:
            try:
                if not self._turn():
                    return
            except BaseException as error:  # never leave a reader waiting on a dead thread
                with self._wake:
                    stranded = list(self._running) + list(self._waiting)
                    stranded += [self._filling] if self._filling is not None else []
                    self._waiting.clear()
                self._running.clear()
                self._filling = None
                self.decoder = BatchDecoder(self.decoder.lm, self.decoder.prefixes)
                for answer in stranded:
                    answer.put(RuntimeError(f"decoding failed: {error!r}"))
                if not isinstance(error, Exception):
                    raise

    def _turn(self) -> bool:
        """Prefill the answer being let in (a chunk of it while others run; let in the next
        waiting one first when none is), then one step for every row -> False when closed
        and idle."""
        with self._wake:
            self._in_turn = False
            self._between.notify_all()
            while not self._waiting and not self._running and self._filling is None:
                if self._closed:
                    self._thread = None
                    return False
                release_here()  # idle: its team would slow the threads that encode meanwhile
                self._wake.wait()
            while self._holds and (left := max(self._holds) - time.monotonic()) > 0:
                release_here()  # held: the cores go to whoever holds it
                self._wake.wait(left)
            for paused in [p for p in self._pauses if p <= time.monotonic()]:
                self._end_pause(paused)  # no hold took it over
            if self._filling is None:
                self._filling = self._next_to_admit()
            cancelled = [a for a in self._running if a.cancelled]
            self._in_turn = True
        if cancelled:
            self._finish(cancelled, None)
        if self._filling is not None:
            self._prefill(self._filling)
        if self._running:
            self._step()
        return True

    def _next_to_admit(self) -> "_Answer | None":
        """The first waiting answer if the batch's cache would stay within the budget with
        it (or the batch is empty). Called holding the lock."""
        if not self._waiting:
            return None
        candidate = self._waiting[0]
        rows = [a for a in self._running if not a.cancelled] + [candidate]
        need = len(rows) * max(a.columns for a in rows) * self.kv_bytes_per_column
        if len(rows) > 1 and need > self.kv_budget_bytes:
            return None
        return self._waiting.popleft()

    def _prefill(self, answer: _Answer) -> None:
        """The next chunk of the answer's prompt (all of it when no other answer runs); once
        the prompt is in, its row joins the batch. (Its reader cannot leave before its first
        token: it waits for it inside the iterator.)"""
        try:
            if answer.prefill is None:
                answer.prefill = self.decoder.begin(
                    answer.embeddings,
                    answer.layout,
                    answer.owner,
                    answer.options.prompt_in_bfloat16,
                )
            chunk = PREFILL_CHUNK if self._running else None
            answer.row = self.decoder.advance(
                answer.prefill, answer.options, answer.stop_ids, chunk
            )
        except Exception as error:  # noqa: BLE001 - this answer's prompt only: the batch goes on
            self._filling = None
            answer.put(error)
            return
        if answer.row is None:
            return  # more chunks to come
        self._filling, answer.prefill = None, None
        self._deliver(answer)
        if not answer.row.finished:
            self._running.append(answer)

    def _step(self) -> None:
        rows = len(self._running)
        size = self.team_sizes.next(rows) if self.team_sizes is not None else self.threads
        set_threads_here(size)
        start = time.perf_counter()
        try:
            self.decoder.step()
        except Exception as error:  # noqa: BLE001 - the batch is lost: every answer hears why
            self._finish(list(self._running), error)
            self.decoder = BatchDecoder(self.decoder.lm, self.decoder.prefixes)
            return
        if self.team_sizes is not None:
            self.team_sizes.took(rows, size, time.perf_counter() - start)
            set_threads_here(self.team_sizes.in_use)  # for prefills too: the cores are the same
        self.steps += 1
        self.row_steps += len(self._running)
        for answer in list(self._running):
            self._deliver(answer)
            if answer.row.finished:
                self._running.remove(answer)

    def _deliver(self, answer: _Answer) -> None:
        """Hand the answer its new tokens, and the end when its row is finished; pause the
        decoding once its pause_at says so (see `tokens`)."""
        row = answer.row
        if answer.pause_at is not None and len(row.generated) > answer.sent and not row.finished:
            try:
                pause = answer.pause_at(list(row.generated))
            except Exception:  # the answer goes on unpaused
                log.exception("an answer's pause_at failed")
                pause, answer.pause_at = False, None
            if pause:
                answer.pause_at = None
                with self._wake:
                    if not answer.cancelled:
                        answer.paused_until = time.monotonic() + MAX_HOLD_S
                        self._pauses.append(answer.paused_until)
                        self._holds.append(answer.paused_until)
        for token in row.generated[answer.sent :]:
            answer.put(token)
        answer.sent = len(row.generated)
        if row.finished:
            answer.put(_END)

    def _end_pause(self, until: float | None) -> None:
        """The hold a pause put in force (until `until`) ends, if it has not. Called holding
        the lock."""
        if until in self._pauses:
            self._pauses.remove(until)
            self._holds.remove(until)
            self._wake.notify()

    def _finish(self, answers: list[_Answer], error: BaseException | None) -> None:
        self.decoder.drop([a.row for a in answers if a.row is not None])
        for answer in answers:
            if answer in self._running:
                self._running.remove(answer)
            answer.put(error if error is not None else _END)


def kv_bytes_per_token(lm: torch.nn.Module) -> int:
    """Bytes of keys and values one token adds to the cache, over all layers."""
    config = lm.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    dtype = next(lm.parameters()).dtype
    element = torch.finfo(dtype).bits // 8 if dtype.is_floating_point else 4
    return 2 * config.num_hidden_layers * kv_heads * head_dim * max(element, 2)
