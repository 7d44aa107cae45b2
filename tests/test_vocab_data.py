"""Vocabulary sentences: every dictionary word the LM spells as one token is said, none held out."""

import collections
import re

from fusion.training.questions import split_questions
from fusion.training.vocab_data import FRAMES, token_words, vocabulary_texts


def _words_file(tmp_path, words):
    path = tmp_path / "words"
    path.write_text("\n".join(words) + "\n")
    return path


def test_token_words_are_dictionary_words_the_lm_spells_as_one_token(tokenizer, tmp_path):
    vocabulary = tokenizer.get_vocab()
    one_token = [
        text[1:]
        for token in vocabulary
        if (text := tokenizer.convert_tokens_to_string([token])).startswith(" ")
        and re.fullmatch(r"[a-z]{2,}", text[1:])
    ]
    assert len(one_token) >= 3, "the tiny tokenizer should spell some words as one token"
    listed = one_token[:3] + ["zzzqqq", "Capitalised", "don't"]
    words = token_words(tokenizer, _words_file(tmp_path, listed))
    assert sorted(words) == sorted(one_token[:3])  # not multi-token, capitalised or quoted
    ids = [vocabulary[tokenizer.tokenize(" " + w)[0]] for w in words]
    assert ids == sorted(ids)  # BPE merge order


def test_vocabulary_texts_say_every_word_before_any_twice(tokenizer, tmp_path):
    words_file = _words_file(tmp_path, ["the", "is", "what", "a", "this", "cat", "red", "dog"])
    words = token_words(tokenizer, words_file)
    texts = vocabulary_texts(tokenizer, 0, 40, words_file)
    assert len(texts) == 40 and texts == vocabulary_texts(tokenizer, 0, 40, words_file)
    assert texts != vocabulary_texts(tokenizer, 1, 40, words_file)
    frames = [re.compile(re.escape(f).replace(r"\{\}", r"([a-z]+)")) for f in FRAMES]
    said = []
    for text in texts:
        match = next(m for f in frames if (m := f.fullmatch(text)))
        said += match.groups()
    counts = collections.Counter(said[: len(words)])
    assert set(counts) == set(words) and max(counts.values()) == 1


def test_words_of_a_dropped_sentence_are_said_later(tokenizer, tmp_path, monkeypatch):
    from fusion.training import vocab_data

    calls = []

    def drop_every_third(texts):  # stands in for the held-out rule (a hash of the text)
        calls.append(texts)
        return [] if len(calls) % 3 == 0 else list(texts)

    monkeypatch.setattr(vocab_data, "keep_unseen", drop_every_third)
    words_file = _words_file(tmp_path, ["the", "is", "what", "a", "this", "cat", "red", "dog"])
    words = token_words(tokenizer, words_file)
    texts = vocabulary_texts(tokenizer, 0, 12, words_file)
    assert len(texts) == 12 and len(calls) == 17  # 12 kept, 5 dropped
    assert texts == [t for i, [t] in enumerate(calls) if (i + 1) % 3]
    said = " ".join(texts)
    assert all(re.search(rf"\b{w}\b", said) for w in words)


def test_a_missing_word_list_gives_no_texts_and_says_so(tokenizer, tmp_path, capsys):
    assert vocabulary_texts(tokenizer, 0, 10, tmp_path / "absent") == []
    assert "wamerican" in capsys.readouterr().err


def test_slot_texts_fill_question_templates_with_dictionary_words(tokenizer, tmp_path):
    from fusion.training.align_data import NEW_TEMPLATES
    from fusion.training.questions import TEMPLATES
    from fusion.training.vocab_data import slot_texts

    words_file = _words_file(tmp_path, ["the", "is", "what", "a", "this", "cat", "red", "dog"])
    words = set(token_words(tokenizer, words_file))
    texts = slot_texts(tokenizer, 0, 60, words_file)
    assert len(texts) == 60 and texts == slot_texts(tokenizer, 0, 60, words_file)
    shapes = [
        re.compile(re.escape(t).replace(re.escape("{" + slot + "}"), "(.+)"))
        for t, slot in TEMPLATES + NEW_TEMPLATES
    ]
    for text in texts:
        fillers = [m.group(1) for shape in shapes if (m := shape.fullmatch(text))]
        filler = min(fillers, key=len)  # "What is {thing}?" also matches "What is a x used for?"
        assert set(filler.split()) - {"a", "an", "the", "my"} <= words, text
    held_out = [q.rstrip(".?!").lower() for q in split_questions()[1]]
    assert not any(q in t.lower() for t in texts for q in held_out)
