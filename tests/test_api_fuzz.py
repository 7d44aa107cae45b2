"""Fuzzing the API with hypothesis: whatever the body, the answer is a 200 in OpenAI's shape or
an OpenAI error JSON with a 4xx status; never a 500, never a hang.

Bodies come from the project's own OpenAPI document (/v1/openapi.json: valid by the schema,
so they reach media decoding and the model), from that schema with one value broken, from
arbitrary JSON, and from arbitrary bytes.
"""

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.api_support import api_app, png_data_url, wav_base64

ALLOWED = {200, 400, 404, 413, 422}
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VALID_MEDIA = [png_data_url(), png_data_url(width=8, height=8), wav_base64(0.5)]


@pytest.fixture(scope="module")
def client(model):
    app = api_app(
        model, max_tokens=4, default_max_tokens=2, max_body_bytes=256 * 1024, max_waiting=100
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def schemas(client) -> dict:
    return client.get("/v1/openapi.json").json()["components"]["schemas"]


def from_schema(schema: dict, schemas: dict) -> st.SearchStrategy:
    """A JSON schema (the subset pydantic writes) -> a strategy for values valid under it."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: from_schema(schemas[name], schemas))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(option, schemas) for option in schema[key]])
    kind = schema.get("type")
    if kind == "object":
        properties = {k: from_schema(v, schemas) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), schemas),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 3), 3),
        )
    if kind == "string":
        return st.one_of(st.text(max_size=30), st.sampled_from(VALID_MEDIA))
    if kind == "integer":
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**70) - 1)
        return st.integers(schema.get("minimum"), high) | st.integers(1, 6)
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def requests(schemas: dict) -> st.SearchStrategy:
    """Schema-valid requests, mostly for the model this server has (else all are 404s)."""
    body = from_schema(schemas["ChatCompletionRequest"], schemas)
    model = st.sampled_from(["lunettes", "lunettes", "lunettes", "gpt-4o"])
    return st.tuples(body, model).map(lambda pair: {**pair[0], "model": pair[1]})


@st.composite
def broken(draw, valid: st.SearchStrategy) -> dict:
    """A schema-valid request with one value, anywhere in it, replaced by arbitrary JSON."""
    body = draw(valid)
    paths = list(walk(body))
    path = draw(st.sampled_from(paths))
    replace(body, path, draw(json_values))
    return body


def walk(value, path=()):
    yield path
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield from walk(child, (*path, key))


def replace(body, path, new):
    if not path:
        return
    for key in path[:-1]:
        body = body[key]
    body[path[-1]] = new


def post_json(client, body):
    """As JSON, with NaN and Infinity written as Python does (json.loads reads them back)."""
    content = json.dumps(body).encode()
    return client.post(
        "/v1/chat/completions", content=content, headers={"Content-Type": "application/json"}
    )


def check(response, route: str = "chat") -> None:
    event(f"HTTP {response.status_code}")  # shown by pytest --hypothesis-show-statistics
    assert response.status_code in ALLOWED, response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert error["type"] == "invalid_request_error" and error["code"]
        return
    if route == "transcription":
        assert "text" in (
            response.json() if "json" in response.headers["content-type"] else {"text": ""}
        )
    elif response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]", response.text[-500:]
        assert all("error" not in json.loads(event) for event in events[:-1])
    else:
        assert response.json()["object"] == "chat.completion"


@FUZZ
@given(data=st.data())
def test_schema_valid_requests(client, schemas, data):
    check(post_json(client, data.draw(requests(schemas), label="body")))


@FUZZ
@given(data=st.data())
def test_requests_with_one_broken_value(client, schemas, data):
    check(post_json(client, data.draw(broken(requests(schemas)), label="body")))


@FUZZ
@given(body=json_values)
def test_arbitrary_json(client, body):
    check(post_json(client, body))


@FUZZ
@given(
    raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "multipart/form-data; boundary=x", ""]
    ),
)
def test_arbitrary_bytes(client, raw, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    check(client.post("/v1/chat/completions", content=raw, headers=headers))


@settings(FUZZ, max_examples=60)
@given(
    fields=st.dictionaries(
        st.sampled_from(["model", "language", "response_format", "prompt", "temperature"]),
        st.text(max_size=15) | st.sampled_from(["whisper-1", "en", "json", "text"]),
    ),
    audio=st.binary(max_size=200) | st.just(None),
)
def test_arbitrary_transcription_forms(client, fields, audio):
    files = {"file": ("clip.wav", audio)} if audio is not None else None
    check(client.post("/v1/audio/transcriptions", data=fields, files=files), "transcription")
