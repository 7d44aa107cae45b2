"""Serving past one process: the same web app and /v1 API on N Ray Serve replicas.

- front.py: the one HTTP ingress (FastAPI): forwards each request to a replica, retries one
  whose replica died before answering, says 503 with Retry-After when none can answer.
- router.py: which replica: the least loaded for the API (self-contained requests); a web
  page's requests stay with one replica while it lives (its Gradio session is there).
- replica.py: one replica: its own model, scheduler and server, on a loopback port.
- launch.py: `lunettes serve --replicas N`: Ray, Serve, the deployments, until stopped.

Nothing here is imported by plain `lunettes serve`: Ray is the scale-out path, not the default.
"""
