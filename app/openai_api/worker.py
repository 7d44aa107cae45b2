"""One model, one answer at a time: admission, a first-come turn, blocking steps in a thread.

- Admission: at most 1 + max_waiting API requests hold a place (answering or waiting for
  their turn); the gate refuses more with 429 before reading their body.
- Turn: API requests take the model first come, first served; waiting is cancellable (a
  client that leaves gives its place up).
- Steps: each step of `model.stream` (encoding, then one token) runs in a worker thread under
  a lock that the web app's model wrapper also takes, so a web chat and an API request never
  compute at the same time on the two cores; both progress, a step each.
"""

import logging
import math
import threading
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


class Turns:
    """A first-come, first-served lock for tasks of one event loop; any task may release it."""

    def __init__(self):
        self.busy = False
        self.waiting: deque[anyio.Event] = deque()

    async def acquire(self) -> None:
        if not self.busy:
            self.busy = True
            return
        event = anyio.Event()
        self.waiting.append(event)
        try:
            await event.wait()
        except BaseException:  # cancelled: leave the line, or pass on a turn just handed over
            if event in self.waiting:
                self.waiting.remove(event)
            else:
                self.release()
            raise

    def release(self) -> None:
        if self.waiting:
            self.waiting.popleft().set()  # handed over: stays busy
        else:
            self.busy = False


class ModelWorker:
    def __init__(self, model: LunettesModel, max_waiting: int):
        self.model = model
        self.admission = Admission(1 + max_waiting)
        self.turns = Turns()
        self.lock = threading.Lock()  # held for each blocking step, API and web app alike
        self.average_s = 2.0  # running mean of a turn's duration, for Retry-After

    def retry_after_s(self) -> int:
        return max(1, min(60, math.ceil(self.average_s)))

    async def start(self, messages: Sequence[Message], options: GenerationOptions) -> "Generation":
        """Wait for the turn, then run up to the first piece of the answer, so that a refused
        conversation (too long for the context) is an error response, not a broken stream."""
        await self.turns.acquire()
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
        """Run function(*args) in a worker thread in its turn (e.g. a transcription)."""
        await self.turns.acquire()
        started = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(self.run_locked, function, *args)
        finally:
            self.finish(started)

    def run_locked(self, function: Callable, *args):
        with self.lock:
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
        self.turns.release()

    def shared_model(self) -> "SharedModel":
        return SharedModel(self.model, self.lock)


class Generation:
    """A running answer holding the model's turn until closed. Events come from `pull`, one
    blocking step at a time; `close` stops the model (a client that left) and passes the turn on."""

    def __init__(self, worker: ModelWorker, events: Iterator[Event]):
        self.worker, self.events = worker, events
        self.ready: deque[Event | None] = deque()  # pulled by start(), not yet taken
        self.started = time.perf_counter()
        self.closed = False

    async def next(self) -> Event | None:
        """The next event; None once the answer is complete."""
        return self.ready.popleft() if self.ready else await self.pull()

    async def pull(self) -> Event | None:
        return await anyio.to_thread.run_sync(self.worker.run_locked, next, self.events, None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.events.close()  # not running: a step in its thread is always awaited to its end
            self.worker.finish(self.started)


class SharedModel:
    """The model as the web app sees it: `stream` takes the worker's lock for each step."""

    def __init__(self, model: LunettesModel, lock: threading.Lock):
        self._model, self._lock = model, lock

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None, owner: str = ""
    ) -> Iterator[Event]:
        events = self._model.stream(messages, options, owner)
        try:
            while True:
                with self._lock:
                    event = next(events, None)
                if event is None:
                    return
                yield event
        finally:
            events.close()
