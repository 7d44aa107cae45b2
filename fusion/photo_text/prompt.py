"""The text OCR read in a message's photos, worded for the language model.

It follows the photo tokens in the user message, before the question: 'The text in the photo
says: "PLATFORM 4 Trains to Lyon"' (lines in reading order). When nothing could be read it says so,
so that the model does not make text up. When the question asks for the words themselves
(request.asks_for_words) this sentence stands for the photo: its vision tokens and name are
left out (model.build_inputs).

Why: on 40 rendered signs (sign_data.py, seed 1, the tuning seed) asked three ways ("What does
this sign say?", "Can you read this for me?", "What is written here?"), answers holding every
word: with the photo's tokens and name 78% / 20% / 28% (mean 42%); with its name but no tokens
93% / 75% / 78% (82%); the text alone 98% / 88% / 95% (93%). With the photo, this 135M model
names the photo or declines ("as a text-based AI, I don't have the ability to read images").

The wording, on the same tuning seed with the text standing for the photo, 60 signs asked four
ways in turn (the three above and "Read it out to me, please."): 'The text in the photo says:
"..."' 96.7%, as 'The photo says: "..."' and 'In the photo I see the words: "..."';
'Written in the photo: "..."' and 'Text in the photo: "..."' 86.7% (the model tells a story
about the words instead: "This is a classic example of a fictional character, ..."). The
held-out figure is `lunettes eval`'s (seed 0, the four phrasings in turn).
"""

from collections.abc import Sequence

from fusion.conversation import Photo

NOTHING_READ = "No text could be read in the photo."


def text_in_photos(photos: Sequence[Photo]) -> str:
    """The sentence(s) telling the LM what the photos say; "" while any is not read yet."""
    if any(photo.text_lines is None for photo in photos):
        return ""
    if len(photos) == 1:
        return text_in_photo(photos[0], "the photo")
    return "\n".join(text_in_photo(p, f"photo {i}") for i, p in enumerate(photos, start=1))


def text_in_photo(photo: Photo, name: str) -> str:
    if not photo.text_lines:
        return NOTHING_READ.replace("the photo", name)
    return f'The text in {name} says: "{" ".join(line.text for line in photo.text_lines)}"'
