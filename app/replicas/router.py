"""Which replica answers a request: the less loaded of two for the API, and one replica per
web page while that replica lives.

A Gradio page keeps its session (its queue, its gr.State: the conversation being shown, the
camera frame) in the process that served it, so every request of one page must reach the
same replica. The front (front.py) names the page's session in each call; the first request
of a session goes to the least loaded replica, which becomes its home; when that replica
dies the session's next request finds a new home (the page reloads; conversations kept in
the store come back there). Requests with no session (the API's: self-contained) go to the
less loaded of two replicas drawn at random: the power of two choices, Ray Serve's default.

Built on Ray Serve's RequestRouter alone: its default router's FIFO mixin may hand the
replica chosen for one request to an older one waiting, which would send a page's request
to another page's replica. This one fulfils exactly the request it chose for.
This runs in the front's process (Ray builds it from `request_router_config`).
"""

import random
from collections import OrderedDict

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from app.replicas.front import SESSION_KWARG

MAX_SESSIONS = 100_000  # homes remembered, least recently used forgotten first


class StickyRouter(RequestRouter):
    def initialize_state(self, **kwargs) -> None:
        self.homes: OrderedDict[str, ReplicaID] = OrderedDict()  # session -> its replica

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """-> ranks of replicas to try; Ray takes the one with the shortest queue among the
        first rank that has room, else backs off and asks again."""
        if pending_request is not None:
            pending_request.routing_context.should_backoff = True  # all busy: wait, don't spin
        if not candidate_replicas:
            return []
        session = pending_request.kwargs.get(SESSION_KWARG) if pending_request else None
        if not session:
            return [random.sample(candidate_replicas, min(2, len(candidate_replicas)))]
        home = self.homes.get(session)
        if home is not None and home in self.curr_replicas:  # alive: wait for it if it is busy
            self.homes.move_to_end(session)
            return [[replica for replica in candidate_replicas if replica.replica_id == home]]
        lengths = self.replica_queue_len_cache
        chosen = min(
            candidate_replicas,
            key=lambda replica: (lengths.get(replica.replica_id) or 0, random.random()),
        )
        self.homes[session] = chosen.replica_id
        if len(self.homes) > MAX_SESSIONS:
            self.homes.popitem(last=False)
        return [[chosen]]
