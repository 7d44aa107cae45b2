"""`lunettes serve --replicas N`: the front and N replicas on Ray Serve, until stopped.

Without --ray-address, Ray starts on this machine for the process's lifetime (no
dashboard) and stops with it; with one, the deployments join that cluster (presenting the
cluster's token, which Ray 2.60's `ray start` makes) and are removed from it on exit. Each replica gets `replica_cpus` of Ray's CPUs and as many torch threads.
"""

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.replicas.front import build_front
from app.replicas.replica import Replica, ReplicaSettings

APP_NAME = "lunettes"
ROUTER = "app.replicas.router:StickyRouter"
REPLICA_REQUESTS = 256  # in flight at one replica (its own gate and queue bound the answers)
FRONT_REQUESTS = 2048  # in flight at the front (each mostly waiting on a replica)
TARGET_ONGOING = 8  # autoscaling: requests per replica it aims for (one decode batch)
OBJECT_STORE_BYTES = 512 << 20  # a local Ray's shared memory: request bodies and answers
QUIET = {"log_level": "WARNING", "enable_access_log": False}


@dataclass(frozen=True)
class Scale:
    replicas: int = 2
    min_replicas: int | None = None  # with max_replicas: Ray Serve autoscales between them
    max_replicas: int | None = None
    replica_cpus: float = 1.0
    ray_address: str | None = None  # join this cluster ("auto": the one started here)

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError(f"--replicas must be at least 1, got {self.replicas}")
        if self.replica_cpus <= 0:
            raise ValueError(f"--replica-cpus must be above 0, got {self.replica_cpus:g}")
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("--min-replicas and --max-replicas go together")
        if self.min_replicas is not None and not 0 < self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"need 1 <= --min-replicas <= --max-replicas, got {self.min_replicas} and "
                f"{self.max_replicas}"
            )

    def deployment_options(self) -> dict:
        if self.min_replicas is None:
            return {"num_replicas": self.replicas}
        initial = min(max(self.replicas, self.min_replicas), self.max_replicas)
        return {
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": initial,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": TARGET_ONGOING,
            }
        }


def has_ray_token() -> bool:
    """Whether this machine holds a Ray cluster's token (`ray start --head` writes it)."""
    token_file = Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or token_file.exists()


def serve_replicas(settings: ReplicaSettings, scale: Scale, host: str, port: int, tls=None) -> None:
    """Start (or join) Ray, deploy the front and the replicas, serve until SIGINT/SIGTERM."""
    local = scale.ray_address is None
    if not local and "RAY_AUTH_MODE" not in os.environ and has_ray_token():
        # a cluster's `ray start` made one: present it (read when Ray is first imported)
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # not each step of the start
    ray.init(
        address=scale.ray_address,
        include_dashboard=False if local else None,
        object_store_memory=OBJECT_STORE_BYTES if local else None,
        logging_level=logging.WARNING,
        log_to_driver=True,  # a replica's errors reach this terminal
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop as Ctrl+C does: clean up
    api = settings.api  # app.openai_api.config.ApiConfig: the front reads bodies as its gate does
    try:
        http = {"host": host, "port": port}
        if tls is not None:
            http |= {"ssl_certfile": str(tls.certfile), "ssl_keyfile": str(tls.keyfile)}
        serve.start(http_options=http, logging_config=QUIET)
        replica = serve.deployment(
            name="LunettesReplica",
            ray_actor_options={"num_cpus": scale.replica_cpus},
            max_ongoing_requests=REPLICA_REQUESTS,
            health_check_period_s=2,
            health_check_timeout_s=10,
            graceful_shutdown_timeout_s=5,
            request_router_config=RequestRouterConfig(request_router_class=ROUTER),
            logging_config=QUIET,
            **scale.deployment_options(),
        )(Replica)
        front = serve.deployment(
            name="LunettesFront",
            ray_actor_options={"num_cpus": 0},
            max_ongoing_requests=FRONT_REQUESTS,
            logging_config=QUIET,
        )(build_front(api.max_body_bytes, api.body_timeout_s, secure_cookie=tls is not None))
        started = time.perf_counter()
        serve.run(front.bind(replica.bind(settings)), name=APP_NAME, route_prefix="/")
        scheme = "https" if tls else "http"
        count = (
            f"{scale.replicas} replica{'s' * (scale.replicas > 1)}"
            if scale.min_replicas is None
            else f"{scale.min_replicas}-{scale.max_replicas} replicas"
        )
        print(
            f"Lunettes is serving on {scheme}://{host}:{port} (API: {scheme}://{host}:{port}/v1) "
            f"with {count} on Ray Serve, ready in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        while True:
            time.sleep(3600)
    finally:
        if local:
            serve.shutdown()
            ray.shutdown()
        else:
            serve.delete(APP_NAME)
