"""An OpenAI-compatible HTTP API (/v1) on the same FastAPI server as the web app.

    config.py     what is allowed: API key, limits, queue size
    gate.py       ASGI gate: API key, admission (429), bounded body (413/408), clean 500s
    schema.py     request bodies (pydantic)        errors.py   OpenAI's error JSON
    media.py      data:/http(s) URLs, base64 -> encoders' readers
    messages.py   request messages -> fusion conversation
    worker.py     one answer at a time, in a worker thread; admission; first-come turns
    responses.py  completions, chunks, server-sent events
    routes.py     /v1/models, /v1/chat/completions, /v1/audio/transcriptions
    install.py    install_api(server, model, config): all of it on a FastAPI server

Nothing heavy is imported here: the command line reads config.py without loading torch.
"""
