"""Session-wide tiny models (tests/tiny.py): built once, shared read-only by every test.

A test that must change one of them (a stop id, a projector) does it through `monkeypatch`,
so the next test sees it as built.
"""

import pytest

from tests import tiny
from tests.postgres import postgres_server  # noqa: F401  (a fixture: the store's tests)


@pytest.fixture(scope="session")
def tokenizer():
    return tiny.tiny_tokenizer()


@pytest.fixture(scope="session")
def lm(tokenizer):
    return tiny.tiny_lm(len(tokenizer), tokenizer.eos_token_id)


@pytest.fixture(scope="session")
def whisper():
    return tiny.tiny_whisper()


@pytest.fixture(scope="session")
def audio_encoder(whisper):
    from encoders.audio import AudioEncoder

    return AudioEncoder(whisper, name="tiny-whisper")


@pytest.fixture(scope="session")
def clip_encoder():
    return tiny.tiny_clip_encoder()


@pytest.fixture(scope="session")
def timm_encoder():
    return tiny.tiny_timm_encoder("test_efficientnet")


@pytest.fixture(scope="session")
def model(tokenizer, lm, clip_encoder, audio_encoder):
    """The composed LunettesModel: tiny Llama, ViT tower, tiny Whisper, untrained adapter."""
    return tiny.tiny_lunettes(tokenizer, lm, clip_encoder, audio_encoder)


@pytest.fixture(autouse=True)
def _fresh_model_state(request):
    """Each test starts with the shared model's media cache and kept prompts empty, as a new
    server would, and ends with its answers decoding alone again (a server's worker shares
    it: model.share)."""
    model = request.getfixturevalue("model") if "model" in request.fixturenames else None
    if model is not None:
        model.media_cache.clear()
        model.prefixes.clear()
    yield
    if model is not None:
        model.unshare()


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """`serve --https`'s certificate authority and a certificate for localhost and 127.0.0.1."""
    from app.certificates import local_certificate

    return local_certificate(tmp_path_factory.mktemp("data") / "https", ["localhost", "127.0.0.1"])


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty store (app/store) on SQLite, then on a real PostgreSQL server (tests/postgres.py).
    Tests that need one kind only define their own `store`."""
    from app.store.database import open_store

    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").new_database()
    store = open_store(url, tmp_path / "data")
    yield store
    store.close()
