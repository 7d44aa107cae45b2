"""Many answers at once: admission, then each request's steps in worker threads.

- Admission: at most 1 + max_waiting API requests hold a place (answering or waiting); the
  gate refuses more with 429 before reading their body.
- Answers: the model's decode scheduler (fusion/scheduler.py) owns the language model and
  batches every running answer, API and web app alike; neither takes a lock around the model.
  Its rows are bounded by the memory of their KV cache: an answer that does not fit yet waits
  there, first come, first served.
- Steps: each step of `model.stream` (encoding, then one token) runs in a worker thread; the
  encoders take one request at a time (the model's media lock).
"""

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import anyio

from app.openai_api.errors import ApiError, internal_error
from encoders.errors import InputError
from fusion.conversation import Message
from fusion.generate import GenerationOptions
from fusion.model import Chunk, Heard, LunettesModel, Stats

log = logging.getLogger(__name__)

Event = Heard | Chunk | Stats


class Admission:
    """A counter of places; used from the event loop only."""

    def __init__(self, capacity: int):
        self.capacity, self.held = capacity, 0

    def try_enter(self) -> bool:
        if self.held >= self.capacity:
            return False
        self.held += 1
        return True

    def leave(self) -> None:
        self.held -= 1


class ModelWorker:
    def __init__(self, model: LunettesModel, max_waiting: int):
        self.model = model
        model.share()  # one decode scheduler owns the model, for every surface
        self.admission = Admission(1 + max_waiting)
        self.average_s = 2.0  # running mean of an answer's duration, for Retry-After

    def retry_after_s(self) -> int:
        return max(1, min(60, math.ceil(self.average_s)))

    async def start(self, messages: Sequence[Message], options: GenerationOptions) -> "Generation":
        """Run up to the first piece of the answer, so that a refused conversation (too long
        for the context) is an error response, not a broken stream."""
        # every API client holds the same key (or none): one owner in the media cache
        generation = Generation(self, self.model.stream(messages, options, owner="api"))
        try:
            while True:
                event = await generation.pull()
                generation.ready.append(event)
                if not isinstance(event, Heard):  # a piece of the answer, Stats or the end
                    return generation
        except BaseException:
            generation.close()
            raise

    async def call(self, function: Callable, *args):
        """Run function(*args) in a worker thread, with the model's encoders (a transcription)."""
        started = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(self.run_encoding, function, *args)
        finally:
            self.finish(started)

    def run_encoding(self, function: Callable, *args):
        with self.model.media_lock:
            return self.run(function, *args)

    def run(self, function: Callable, *args):
        try:
            return function(*args)
        except InputError as error:
            raise ApiError(400, str(error), "invalid_input") from None
        except ApiError:
            raise
        except Exception:
            log.exception("the model failed")
            raise internal_error() from None

    def finish(self, started: float) -> None:
        self.average_s = 0.8 * self.average_s + 0.2 * (time.perf_counter() - started)

    def shared_model(self) -> LunettesModel:
        """The model as the web app uses it: the same scheduler batches its answers."""
        return self.model


class Generation:
    """A running answer. Events come from `pull`, one blocking step at a time in a worker
    thread; `close` stops it (a client that left), which frees its row in the batch."""

    def __init__(self, worker: ModelWorker, events: Iterator[Event]):
        self.worker, self.events = worker, events
        self.ready: deque[Event | None] = deque()  # pulled by start(), not yet taken
        self.started = time.perf_counter()
        self.closed = False

    async def next(self) -> Event | None:
        """The next event; None once the answer is complete."""
        return self.ready.popleft() if self.ready else await self.pull()

    async def pull(self) -> Event | None:
        return await anyio.to_thread.run_sync(self.worker.run, next, self.events, None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.events.close()  # not running: a step in its thread is always awaited to its end
            self.worker.finish(self.started)
