"""A short, bounded load test over loopback (bench/load_test.py's, on the tiny model): 8
clients for 10 s mixing text, photo and speech, streamed and not, against a queue of 2.

Every request is answered or refused with 429, none is lost or mixed up with another
client's, memory stays bounded and the server answers normally afterwards. The minute-long
run on the real bundle is `python bench/load_test.py` (figures in the README).
"""

from bench.load_test import client_bodies, run_load
from tests.api_support import LiveServer, api_app, png_data_url, wav_base64

CLIENTS, SECONDS = 8, 10.0
MEMORY_GROWTH_MIB = 300  # the tiny model's answers are a few KB: growth means a leak


def test_eight_clients_mixing_media_are_answered_or_refused(model):
    import os

    app = api_app(model, max_waiting=2, max_tokens=16)
    photos = [png_data_url(seed, 96 + 16 * seed, 64) for seed in range(4)]
    clips = [wav_base64(0.6 + 0.2 * i, 220.0 * (i + 1)) for i in range(4)]
    bodies = [client_bodies(i, "lunettes", photos, clips, max_tokens=8) for i in range(CLIENTS)]
    with LiveServer(app) as server:
        report = run_load(server.url, bodies, SECONDS, server_pid=os.getpid())
    print("\n" + report.format())
    assert not report.lost, [(o.kind, o.status, o.problem) for o in report.lost]
    assert not report.mixed_up, report.mixed_up
    assert report.after_ok
    assert len(report.answered) >= 2 * CLIENTS and {o.kind for o in report.answered} == {
        "text",
        "photo",
        "speech",
        "photo+speech",
    }
    assert {o.stream for o in report.answered} == {True, False}
    assert report.refused, "8 clients against 3 places: back-pressure must have refused some"
    memory = report.memory_mib
    assert memory["peak"] - memory["before"] < MEMORY_GROWTH_MIB, memory
    assert app.state.worker.admission.held == 0 and app.state.worker.model.decoder.running == 0
