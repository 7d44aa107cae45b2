"""Cutting a streamed answer into pieces to speak: whole sentences, a first clause early."""

import re

from hypothesis import given
from hypothesis import strategies as st

from app.sentences import Sentences, first_piece_written


def tokens(text: str) -> list[str]:
    """`text` cut as a language model writes it: each word with the space before it, each
    mark alone."""
    return re.findall(r"\s*[\w']+|\s*[^\w\s]|\s+", text)


def fed(text: str, step: int) -> list[str]:
    """The pieces of `text` pushed `step` tokens at a time, as an answer streams."""
    sentences, pieces, cut = Sentences(), [], tokens(text)
    for start in range(0, len(cut), step):
        pieces += sentences.push("".join(cut[start : start + step]))
    return pieces + [rest] if (rest := sentences.end()) else pieces


def test_the_first_piece_comes_with_the_token_that_ends_it():
    sentences = Sentences()
    assert sentences.push("The capital of Australia") == []
    assert sentences.push(" is") == ["The capital of Australia"]  # not waiting for " Canberra"
    assert sentences.push(" Canberra.") == []  # later pieces wait for what follows the mark
    assert sentences.push(" It") == ["is Canberra."]
    assert not first_piece_written("The capital of Australia")
    assert first_piece_written("The capital of Australia is")
    assert not first_piece_written("Yes, it")  # too few words for a clause: it waits for "."
    assert not first_piece_written("Well, I think")
    assert first_piece_written("Well, I think so,")
    assert first_piece_written("This is a clock.")
    # after a digit the mark may go on: 1,000 and 3.5
    assert not first_piece_written("It costs about 1,")
    assert first_piece_written("It costs about 1,000 dollars,")
    assert not first_piece_written("The answer is 3.")
    assert not first_piece_written("Look, e.")  # e.g. to come: an abbreviation ends nothing
    assert not first_piece_written("See e.g.")


def test_sentences_come_as_soon_as_they_end():
    sentences = Sentences()
    assert sentences.push("Boil the egg") == []
    assert sentences.push(" for nine minutes. Then cool") == ["Boil the egg for nine minutes."]
    assert sentences.push(" it in cold water!\nEnjoy") == ["Then cool it in cold water!"]
    assert sentences.end() == "Enjoy"


def test_the_first_piece_may_be_a_clause_and_later_ones_are_sentences():
    text = "Well, the train to Lyon, which is late, leaves at nine. Take a coat, a hat, and tea."
    assert fed(text, 3) == [
        "Well, the train to Lyon,",
        "which is late, leaves at nine.",
        "Take a coat, a hat, and tea.",
    ]


def test_a_long_first_sentence_is_cut_before_a_word_that_joins_two_clauses():
    text = (
        "The ideal amount of time to boil an egg turns on the recipe and the type of egg. "
        "It is done when the white is firm and the yolk is soft."
    )
    assert fed(text, 2) == [
        "The ideal amount of time to boil an egg turns on the recipe",
        "and the type of egg.",
        "It is done when the white is firm and the yolk is soft.",  # later: whole sentences
    ]
    assert fed("Salt and pepper and oil go in first.", 2) == [
        "Salt and pepper and oil go in first."
    ]
    assert fed("The history of the island of Android goes back far.", 1) == [
        "The history of the island of Android goes back far."  # a word that begins like "and"
    ]


def test_a_first_sentence_may_be_cut_between_its_subject_and_its_verb():
    text = "The plant you're referring to is a type of succulent. It is green."
    assert fed(text, 2) == [
        "The plant you're referring to",
        "is a type of succulent.",
        "It is green.",  # later: whole sentences
    ]
    assert fed("The time to boil an egg depends on its size.", 3)[0] == "The time to boil an egg"
    assert fed("A violin has four strings.", 1) == ["A violin has four strings."]  # 2 words
    assert fed("In Tokyo when it is noon here.", 1) == ["In Tokyo when it is noon here."]
    assert fed("All you need to have fun.", 1) == ["All you need to have fun."]
    assert fed("What you need to have is time.", 1) == ["What you need to have", "is time."]
    assert fed("The history of this island is long.", 1) == [
        "The history of this island",  # "this" ends no subject here, but "island" does
        "is long.",
    ]


def test_abbreviations_and_numbers_do_not_end_a_sentence():
    text = "Pack light, e.g. a coat. It costs 3.50 euros. Steps: 1. boil 2. cool."
    assert fed(text, 1) == [
        "Pack light, e.g. a coat.",
        "It costs 3.50 euros.",
        "Steps: 1. boil 2. cool.",
    ]


@given(st.text(alphabet="ab .,!?\n", max_size=80), st.integers(1, 7))  # step: tokens
def test_everything_written_is_spoken_once_in_order(text, step):
    # (a first piece may end between two marks: "Really?" | "!")
    assert "".join("".join(fed(text, step)).split()) == "".join(text.split())
