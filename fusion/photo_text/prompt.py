"""The text OCR read in a message's photos, worded for the language model.

It follows the photo tokens in the user message, before the question: 'Text in the photo:
"PLATFORM 4 / Trains to Lyon"' (lines in reading order, joined by " / "). When nothing could
be read it says so, so that the model does not make text up.
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
    return f'Text in {name}: "{" / ".join(line.text for line in photo.text_lines)}"'
