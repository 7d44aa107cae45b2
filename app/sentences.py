"""Cutting a streamed answer into pieces to speak as soon as each is complete.

A voice that waits for the whole answer starts seconds late; one that speaks word by word
sounds broken. The answer's text arrives token by token; `Sentences.push` returns each
sentence once its end (. ! ? or a line break, then a space) has arrived, and `end` returns
what is left. The first piece may end at a clause (a comma, colon or semicolon after at least
FIRST_CLAUSE_WORDS words), or, in a long first sentence with no such mark, before a word that
joins two clauses ("and", "because", "which", ... after at least FIRST_JOIN_WORDS words), or
between a sentence's subject and its verb ("The plant you're referring to | is a succulent":
before "is", "can", "depends", ... after at least FIRST_SUBJECT_WORDS words that do not end in a
pronoun), whichever comes first, so that the voice starts sooner; later pieces are whole
sentences, which sound more natural.
The first piece does not wait for the space after its mark or its verb: the answer comes
token by token, and the language model writes a word, with its space before it, as one token
(" is", never " i" + "s"), so the end of the text so far is taken as a word's end there (not
after a digit, "3." may be 3.5 and "1," 1,000, nor after one letter, "e." may be e.g.). That
is one token sooner, and the decoding can pause right there while the piece is spoken
(`first_piece_written`, fusion/scheduler.py).
"The ideal time to boil an egg depends on the recipe | and the type of egg you use." Five
typed questions to the embedded bundle, asked -> first sound, one run each (2026-12-02):
median 981 -> 756 ms; that egg question 2467 -> 2118 ms.

The subject | verb cut (2026-12-04): on the answers to 50 of the natural spoken questions
(assets/eval/spoken_questions.txt, every 4th), the first piece came after a median of 13
tokens before, 8 after (mean 12.9 -> 8.7). Said by Piper as two pieces or as one, the first
two pieces were heard back by the project's Whisper with about the same word error (4.1%
against 3.7%, 36 answers).
"""

import re

FIRST_CLAUSE_WORDS = 4
FIRST_JOIN_WORDS = 8
FIRST_SUBJECT_WORDS = 3
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
_JOINING_WORD = re.compile(
    r"\s+(?=(?:and|but|or|because|which|who|when|where|while|if|although|though|since|"
    r"unless|until|whereas)\s)",
    re.IGNORECASE,
)  # the space before the word: the piece ends there, the next begins with the word
_PREDICATE_VERB = re.compile(
    r"\s+(?=(?:is|are|was|were|has|have|had|can|could|will|would|should|may|might|must|"
    r"depends|varies|lies|refers|remains|becomes|seems|happens|consists|occurs|involves)\s)",
    re.IGNORECASE,
)  # the space before an auxiliary or a copula: "The capital of Canada | is Ottawa."
_BOUND_TO_THE_VERB = (  # words that end no subject: "when it | is", "not | be"
    "i you he she it we they that this these those which who what there here where when how "
    "why not also often usually always never still just only really and or but as so if"
)
_NOT_A_SUBJECT_END = frozenset(_BOUND_TO_THE_VERB.split())
_WORD_THEN_MARK = re.compile(r"[^\W\d_]{2}[.!?…]$")  # a mark that ends the text so far after a word
_ABBREVIATIONS = ("e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "no.")


class Sentences:
    def __init__(self):
        self.pending = ""
        self.pieces = 0  # pieces returned so far

    def push(self, text: str) -> list[str]:
        """Add streamed text -> the pieces it completed (stripped, not empty)."""
        self.pending += text
        done = []
        while True:
            cut = self._cut()
            if cut is None:
                return done
            piece, self.pending = self.pending[:cut].strip(), self.pending[cut:]
            if piece:
                done.append(piece)
                self.pieces += 1

    def end(self) -> str:
        """What is left once the answer is complete (may be empty)."""
        rest, self.pending = self.pending.strip(), ""
        if rest:
            self.pieces += 1
        return rest

    def _cut(self) -> int | None:
        """The index after the first complete piece of `pending`, or None."""
        # The first piece takes the end of the text so far as a word's end (see above)
        text = self.pending + " " if self.pieces == 0 else self.pending
        for match in _SENTENCE_END.finditer(text):
            before = text[: match.start()].rstrip("\"')]").lower()
            if "\n" not in match.group() and before.endswith(_ABBREVIATIONS):
                continue  # "e.g. " does not end a sentence
            if re.search(r"\d\.$", before) and not match.group().strip():
                continue  # "3. " in a list, or "1.5 " split at the point: wait for more
            if match.end() > len(self.pending) and not _WORD_THEN_MARK.search(self.pending):
                continue  # "e." may be e.g., "?" another mark: wait for more
            return min(match.end(), len(self.pending))
        if self.pieces == 0:
            cuts = [self._first_cut(text, pattern, words) for pattern, words in _FIRST_CUTS]
            cuts = [cut for cut in cuts if cut is not None]
            return min(cuts) if cuts else None
        return None

    def _first_cut(self, text: str, pattern: re.Pattern, least_words: int) -> int | None:
        """The end of the first piece of `text` at the first match of `pattern` after at least
        `least_words` words, or None."""
        for match in pattern.finditer(text):
            words = text[: match.start()].split()
            if len(words) < least_words:
                continue
            if match.end() > len(self.pending) and re.search(r"\d[,;:]$", self.pending):
                continue  # "1," at the end of the text so far may be 1,000: wait for more
            verb = text[match.end() :].split()[:1]  # (none after a clause's mark at the end)
            if pattern is _PREDICATE_VERB and not _ends_a_subject(words[-1], verb[0]):
                continue
            return min(match.end(), len(self.pending))
        return None


def first_piece_written(text: str) -> bool:
    """Whether an answer's text so far holds its first piece to speak (as Sentences cuts
    it): GenerationOptions.pause_after for an answer that is spoken."""
    return bool(Sentences().push(text))


def _ends_a_subject(word: str, verb: str) -> bool:
    """Whether `word` may end the subject that `verb` follows: not a pronoun or a word that
    binds to the verb ("when it | is", "not | be"), nor an infinitive's "to" ("to | have")."""
    word, verb = word.lower(), verb.lower()
    return word not in _NOT_A_SUBJECT_END and not (word == "to" and verb == "have")


_FIRST_CUTS = (
    (_CLAUSE_END, FIRST_CLAUSE_WORDS),
    (_JOINING_WORD, FIRST_JOIN_WORDS),
    (_PREDICATE_VERB, FIRST_SUBJECT_WORDS),
)
