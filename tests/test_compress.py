"""CTC compression of speech tokens, the CTC head, context layers and the alignment loss."""

import torch

from fusion.adapter import Adapter
from fusion.compress import BLANK, CtcHead, compress
from fusion.projector import Projector
from fusion.training.align import ctc_loss, pad_features


def test_compress_drops_blanks_and_averages_each_run():
    frames = torch.arange(7, dtype=torch.float32)[:, None].repeat(1, 2)  # T=7, D=2, row t = t
    labels = torch.tensor([BLANK, 5, 5, BLANK, 9, 9, 9])
    out = compress(frames, labels)
    torch.testing.assert_close(out, torch.tensor([[1.5, 1.5], [5.0, 5.0]]))


def test_compress_keeps_a_token_said_twice_when_blanks_separate_it():
    frames = torch.randn(5, 3)
    labels = torch.tensor([4, BLANK, 4, 4, 2])
    out = compress(frames, labels)
    assert out.shape == (3, 3)
    torch.testing.assert_close(out[0], frames[0])
    torch.testing.assert_close(out[1], frames[2:4].mean(0))
    torch.testing.assert_close(out[2], frames[4])


def test_compressed_tokens_take_the_length_of_the_embedding_they_name():
    frames = torch.tensor([[3.0, 4.0], [6.0, 8.0], [0.0, 2.0]])
    vocabulary = torch.tensor([[0.0, 0.5], [10.0, 0.0]])
    out = compress(frames, torch.tensor([1, 1, 0]), vocabulary)
    torch.testing.assert_close(out, torch.tensor([[6.0, 8.0], [0.0, 0.5]]))  # lengths 10, 0.5


def test_compress_of_an_all_blank_clip_keeps_one_token():
    frames = torch.randn(4, 3)
    out = compress(frames, torch.full((4,), BLANK))
    torch.testing.assert_close(out, frames.mean(0, keepdim=True))


def test_frame_labels_follow_cosine_similarity_to_the_vocabulary():
    head = CtcHead(3)
    with torch.no_grad():
        head.blank.copy_(torch.tensor([0.0, 0.0, 1.0]))
    vocabulary = torch.tensor([[1.0, 0.0, 0.0], [0.0, 5.0, 0.0]])  # scale must not matter
    frames = torch.tensor([[2.0, 0.1, 0.0], [0.0, 0.0, 3.0], [0.1, 0.3, 0.0]])
    assert head.frame_labels(frames, vocabulary).tolist() == [0, BLANK, 1]


def test_frame_labels_see_a_changed_vocabulary_despite_the_cached_unit_table():
    head = CtcHead(3)
    with torch.no_grad():
        head.blank.copy_(torch.tensor([0.0, 0.0, 1.0]))
    vocabulary = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    frames = torch.tensor([[0.9, 0.1, 0.0]])
    assert head.frame_labels(frames, vocabulary).tolist() == [0]
    vocabulary[0] = torch.tensor([0.0, -1.0, 0.0])  # edited in place: same storage
    assert head.frame_labels(frames, vocabulary).tolist() == [1]
    other = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.2, 0.0]])  # another table
    assert head.frame_labels(frames, other).tolist() == [1]


def test_context_layers_let_tokens_see_their_neighbours_and_ignore_padding():
    torch.manual_seed(0)
    projector = Projector(in_dim=4, out_dim=8, stack=2, context_layers=1).eval()
    features = torch.randn(1, 6, 4)
    changed = features.clone()
    changed[:, 0] += 1.0  # only the first token's frames change ...
    assert not torch.allclose(
        projector(features)[:, 2], projector(changed)[:, 2]
    )  # ... yet all move
    padded = torch.cat([features, torch.randn(1, 4, 4)], dim=1)  # junk after the real frames
    torch.testing.assert_close(
        projector(padded, torch.tensor([6]))[:, :3], projector(features), rtol=1e-4, atol=1e-5
    )


def test_pad_features_pads_with_zeros_and_reports_lengths():
    batch, lengths = pad_features([torch.ones(2, 3).half(), torch.ones(4, 3).half()])
    assert batch.shape == (2, 4, 3) and batch.dtype == torch.float32
    assert lengths.tolist() == [2, 4] and batch[0, 2:].abs().sum() == 0


def test_ctc_loss_trains_frames_towards_the_spoken_tokens(model):
    adapter = Adapter.untrained(model.adapter.config, model.adapter.info.identities, seed=3)
    adapter.train().requires_grad_(True)
    vocabulary = model.lm.get_input_embeddings().weight.detach()
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(40, adapter.config.audio_dim, generator=generator) for _ in range(2)]
    targets = [[5, 9, 12], [7, 7, 3]]
    optimizer = torch.optim.Adam(adapter.parameters(), lr=3e-3)
    first = ctc_loss(adapter, features, targets, vocabulary, torch.Generator().manual_seed(1))
    for step in range(60):
        loss = ctc_loss(adapter, features, targets, vocabulary, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first.item()
    adapter.eval()
    tokens = adapter.projectors["audio"](features[0][None])[0]
    labels = adapter.audio_ctc.frame_labels(tokens, vocabulary)
    spoken = [int(t) for i, t in enumerate(labels) if t != BLANK and (i == 0 or t != labels[i - 1])]
    assert spoken == [5, 9, 12]  # greedy CTC reads back the tokens, in order


def test_collapse_reads_out_like_compress_groups():
    from fusion.training.align import collapse

    assert collapse([BLANK, 4, 4, BLANK, 4, 2, 2, BLANK]) == [4, 4, 2]
    assert collapse([BLANK, BLANK]) == []


def test_embedding_loss_pulls_correctly_heard_tokens_onto_their_embeddings(model):
    from fusion.training.align import alignment_losses

    adapter = Adapter.untrained(model.adapter.config, model.adapter.info.identities, seed=3)
    adapter.train().requires_grad_(True)
    vocabulary = model.lm.get_input_embeddings().weight.detach()
    features = [
        torch.randn(40, adapter.config.audio_dim, generator=torch.Generator().manual_seed(0))
    ]
    targets = [[5, 9, 12]]
    optimizer = torch.optim.Adam(adapter.parameters(), lr=3e-3)
    history = []
    for step in range(120):
        ctc, embedding = alignment_losses(
            adapter, features, targets, vocabulary, torch.Generator().manual_seed(step)
        )
        optimizer.zero_grad()
        (ctc + embedding).backward()
        optimizer.step()
        history.append(embedding.item())
    assert history[-1] > 0  # by the end the clip is heard correctly, so the loss counts
    heard = [h for h in history if h > 0]
    assert heard and heard[-1] < 0.5 * heard[0]  # compressed tokens moved onto the embeddings
    adapter.eval()
    tokens = adapter.project("audio", features[0][None], vocabulary)
    said = vocabulary[targets[0]]
    assert tokens.shape == said.shape  # one vector per token said ...
    torch.testing.assert_close(tokens.norm(dim=-1), said.norm(dim=-1))  # ... of its length ...
    assert torch.cosine_similarity(tokens, said).min() > 0.7  # ... pointing its way


def test_snapping_turns_sure_runs_into_their_exact_embeddings_and_keeps_unsure_ones():
    generator = torch.Generator().manual_seed(0)
    vocabulary = torch.randn(6, 4, generator=generator)  # V=6, D=4
    frames = torch.randn(5, 4, generator=generator)
    labels = torch.tensor([2, 2, BLANK, 5, 1])
    confidence = torch.tensor([0.9, 0.7, 0.99, 0.2, 0.5])
    continuous = compress(frames, labels, vocabulary)
    snapped = compress(frames, labels, vocabulary, confidence, snap_above=0.5)
    torch.testing.assert_close(snapped[0], vocabulary[2])  # run mean 0.8: snapped
    torch.testing.assert_close(snapped[1], continuous[1])  # 0.2: unsure, stays continuous
    torch.testing.assert_close(snapped[2], vocabulary[1])  # exactly at the threshold: snapped
    assert not torch.allclose(continuous[0], vocabulary[2])
    every = compress(frames, labels, vocabulary, confidence, snap_above=0.0)
    torch.testing.assert_close(every, vocabulary[torch.tensor([2, 5, 1])])
    torch.testing.assert_close(compress(frames, labels, vocabulary, confidence), continuous)


def test_read_frames_gives_each_label_its_probability():
    head = CtcHead(2)
    vocabulary = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        head.blank.copy_(torch.tensor([-1.0, -1.0]))
    labels, confidence = head.read_frames(torch.tensor([[5.0, 0.1], [-1.0, -1.0]]), vocabulary)
    assert labels.tolist() == [0, BLANK]
    probabilities = head.logits(torch.tensor([[5.0, 0.1]]), vocabulary).softmax(-1)[0]
    torch.testing.assert_close(confidence[0], probabilities.max())
    assert 0.0 < float(confidence.min()) and float(confidence.max()) <= 1.0


def test_cue_vectors_wrap_every_clip_and_survive_save_and_load(model, tmp_path):
    import dataclasses

    config = dataclasses.replace(model.adapter.config, audio_cues=True, audio_snap=0.0)
    adapter = Adapter.untrained(config, model.adapter.info.identities, seed=3)
    with torch.no_grad():
        adapter.audio_cues.copy_(torch.randn(2, config.lm_dim))
    vocabulary = model.lm.get_input_embeddings().weight
    features = torch.randn(1, 40, config.audio_dim)
    plain = Adapter.untrained(model.adapter.config, model.adapter.info.identities, seed=3)
    inner = plain.project("audio", features, vocabulary)
    wrapped = adapter.project("audio", features, vocabulary)
    assert wrapped.shape[0] == inner.shape[0] + 2
    torch.testing.assert_close(wrapped[0], adapter.audio_cues[0])
    torch.testing.assert_close(wrapped[-1], adapter.audio_cues[1])
    labels = adapter.audio_ctc.frame_labels(adapter.projectors["audio"](features)[0], vocabulary)
    kept = sorted(set(labels.tolist()) - {BLANK})
    assert all(any(torch.equal(row, vocabulary[k]) for k in kept) for row in wrapped[1:-1])
    adapter.save(tmp_path)
    loaded = Adapter.load(tmp_path, model.adapter.info.identities)
    assert loaded.config.audio_cues and loaded.config.audio_snap == 0.0
    torch.testing.assert_close(loaded.project("audio", features, vocabulary), wrapped)
