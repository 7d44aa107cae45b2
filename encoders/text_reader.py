"""Reading the text in a photo (OCR): PIL image -> its lines of text, in reading order.

rapidocr runs PaddleOCR's PP-OCRv6 small text detector and recogniser, and a text direction
classifier, with onnxruntime. The three models ship inside rapidocr's wheel and are named here
by path, so it never looks for (or downloads) anything else. Nothing loads at import or on
construction; the ONNX sessions load on the first image (that one takes ~1.2 s on 2 cores).

Pieces of text come back as boxes; reading_order sorts them top-to-bottom and left-to-right
along the text's own slant (a sign held at 10 degrees still reads line by line) and merges the
pieces of one line into one TextLine.

Units: boxes and heights in pixels of the image given; angles in radians.
"""

import math
import statistics
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

MODEL_FILES = {
    "Det": "PP-OCRv6_det_small.onnx",  # where the text is: quadrilaterals
    "Rec": "PP-OCRv6_rec_small.onnx",  # what each box says (Chinese and Latin characters)
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",  # whether a box is upside down
}
MIN_CONFIDENCE = 0.6  # recogniser's mean character probability below which a piece is junk
THREADS = 2  # onnxruntime threads per session: the whole of a 2-core machine, as torch uses
# The detector sees the photo with its longer side at most this (a 640 x 480 frame as it is):
# on 120 rendered signs (sign_data.py) every word was read at 640 and at 480 alike; 40 of
# them took a median 180 / 120 ms on 2 idle cores, 270 ms at rapidocr's default (shorter side
# 736). 640 keeps the detail of smaller text in larger photos.
DETECTOR_SIDE = 640
SAME_LINE = 0.5  # pieces share a line when their centres, across it, differ by < this x height


@dataclass(frozen=True)
class TextLine:
    text: str
    confidence: float  # 0..1, the lowest of its pieces'
    box: tuple[float, float, float, float]  # left, top, right, bottom in pixels, axis-aligned


@dataclass(frozen=True)
class TextPiece:
    text: str
    confidence: float  # 0..1
    corners: np.ndarray  # [4, 2] x, y of top-left, top-right, bottom-right, bottom-left


class TextReader:
    """A photo's text lines; the OCR engine is built on first use."""

    def __init__(self, min_confidence: float = MIN_CONFIDENCE, threads: int = THREADS):
        self.min_confidence = min_confidence
        self.threads = threads
        self._engine = None
        self._building = threading.Lock()  # sessions share one model: build the engine once

    def read(self, image: Image.Image) -> list[TextLine]:
        """RGB image -> its lines of text in reading order ([] when none is legible)."""
        result = self.engine(np.asarray(image.convert("RGB"))[:, :, ::-1])  # H, W, 3 BGR
        if result.boxes is None:
            return []
        pieces = [
            TextPiece(text.strip(), float(score), np.asarray(box, np.float32))
            for text, score, box in zip(result.txts, result.scores, result.boxes)
        ]
        return reading_order([p for p in pieces if self.legible(p)])

    def legible(self, piece: TextPiece) -> bool:
        return piece.confidence >= self.min_confidence and any(c.isalnum() for c in piece.text)

    @property
    def engine(self):
        with self._building:
            if self._engine is None:
                self._engine = build_engine(self.min_confidence, self.threads)
        return self._engine


def build_engine(min_confidence: float, threads: int):
    """rapidocr on its bundled models only (explicit paths: no download is ever attempted)."""
    from pathlib import Path

    import rapidocr

    models = Path(rapidocr.__file__).parent / "models"
    params = {f"{task}.model_path": str(models / name) for task, name in MODEL_FILES.items()}
    params |= {
        "Global.log_level": "error",
        "Global.text_score": min_confidence,
        "Det.limit_type": "max",
        "Det.limit_side_len": DETECTOR_SIDE,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    return rapidocr.RapidOCR(params=params)


def reading_order(pieces: list[TextPiece]) -> list[TextLine]:
    """Pieces -> lines, top to bottom, each read left to right along the median slant."""
    if not pieces:
        return []
    angle = statistics.median(slant(p.corners) for p in pieces)
    cos, sin = math.cos(angle), math.sin(angle)
    centres = [p.corners.mean(axis=0) for p in pieces]
    along = [cos * x + sin * y for x, y in centres]  # position along the text direction
    across = [-sin * x + cos * y for x, y in centres]  # position down the lines
    heights = [height(p.corners) for p in pieces]
    lines: list[list[int]] = []
    for index in sorted(range(len(pieces)), key=across.__getitem__):
        line = lines[-1] if lines else None
        limit = SAME_LINE * min(heights[index], mean(heights, line)) if line else 0.0
        if line and abs(across[index] - mean(across, line)) < limit:
            line.append(index)
        else:
            lines.append([index])
    return [merge([pieces[i] for i in sorted(line, key=along.__getitem__)]) for line in lines]


def slant(corners: np.ndarray) -> float:
    """The angle of a box's top edge, radians, clockwise in image coordinates (y down)."""
    dx, dy = corners[1] - corners[0]
    return math.atan2(dy, dx)


def height(corners: np.ndarray) -> float:
    """Mean length of a box's left and right edges, pixels."""
    return float(
        (np.linalg.norm(corners[3] - corners[0]) + np.linalg.norm(corners[2] - corners[1])) / 2
    )


def mean(values: list[float], indices: list[int]) -> float:
    return sum(values[i] for i in indices) / len(indices)


def merge(pieces: list[TextPiece]) -> TextLine:
    corners = np.concatenate([p.corners for p in pieces])  # 4P, 2
    left, top = corners.min(axis=0)
    right, bottom = corners.max(axis=0)
    return TextLine(
        " ".join(p.text for p in pieces),
        min(p.confidence for p in pieces),
        (float(left), float(top), float(right), float(bottom)),
    )
