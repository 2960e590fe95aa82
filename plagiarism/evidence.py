"""The named pieces of evidence behind a near-duplicate passage, as data.

Each signal is one entry of SIGNALS: its name (the key stored in a report), what
it measures, how it is computed, whether it corroborates a meaning match, how
strong a given value is (0..1, for the passage's confidence) and the sentence a
reader sees.  A stored report keeps every signal of every passage under its
name, so adding a signal is one function plus one entry here; the page, the
JSON and the CLI all read the same data.

Why corroboration: answers to the same prompt are close in embedding space by
nature (cosine 0.8-0.99 between two honest students is common), so a sentence
embedding match between two students is a lead, not evidence.  It counts only
when something that honest answers rarely share backs it: an uncommon word, a
run of identical wording, the same sentence structure, or several sentences that
follow the other text in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Signal:
    """One kind of evidence a passage can carry."""

    name: str
    label: str
    measures: str
    computed: str
    corroborates: bool  # backs a meaning (embedding) match; the meaning signals do not
    strength: Callable[[Any], float]
    sentence: Callable[[Any], str]


def _words(value: list[str]) -> str:
    shown = [f"“{w}”" for w in value[:6]]
    more = f" and {len(value) - 6} more" if len(value) > 6 else ""
    return ", ".join(shown) + more


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("shared_run", "identical wording",
           "the longest run of words that is the same in both texts",
           "word 5-grams (lower case, common endings removed) shared by the two texts, chained "
           "across gaps of a few words; phrases many submissions share are left out first",
           True, lambda v: min(1.0, v / 30),
           lambda v: f"{v} words in a row are the same as in the other text (ignoring case, "
                     "punctuation and word endings)."),
    Signal("rare_words", "uncommon words",
           "content words both passages use that are rare in English and in this class",
           "words below a frequency in English (wordfreq) that occur in few texts of the scan",
           True, lambda v: min(1.0, 0.35 * len(v)),
           lambda v: f"Both passages use uncommon words that other students did not: {_words(v)}."),
    Signal("structure", "same sentence structure",
           "stretches where the sentences are built the same way once the content words are hidden",
           "masked word 9-grams (function words kept, content words replaced) shared by the two "
           "passages and by few other texts",
           True, lambda v: min(1.0, 0.25 * v),
           lambda v: f"With the content words hidden, {v} stretch{'es' if v != 1 else ''} of sentence "
                     "structure are the same (a rewording that swapped the words kept the sentences)."),
    Signal("aligned", "follows in order",
           "how many neighbouring sentences match the same stretch of the other text",
           "neighbouring sentences (up to two apart) whose best match in the other text lies at "
           "neighbouring sentences there too",
           True, lambda v: min(1.0, 0.3 * (v - 1)),
           lambda v: f"It is one of {v} neighbouring sentences that match neighbouring sentences of "
                     "the other text, in the same stretch."),
    Signal("meaning", "close in meaning",
           "how close the passage's meaning is to the other passage",
           "cosine of all-MiniLM-L6-v2 sentence embeddings (a sentence against single sentences "
           "and pairs of sentences of the other text)",
           False, lambda v: 0.5 * max(0.0, (v - 0.7) / 0.3),
           lambda v: f"Its meaning is close to the other passage (embedding similarity {v:.2f}); "
                     "on its own this is not evidence, since answers to one question are close by nature."),
    Signal("stands_out", "stands out from the class",
           "how much closer this pair is than the same sentence comes to other texts of the class",
           "cosine minus the third-highest cosine of the same sentence against the other texts",
           False, lambda v: 0.5 * min(1.0, max(0.0, v) / 0.2),
           lambda v: f"That closeness stands out: the same sentence comes {v:.2f} less close to the "
                     "other texts of the class."),
)}


def confidence(evidence: dict[str, Any]) -> float:
    """0..1: how strong a passage's evidence is, combining the strength of each signal.

    1 - prod(1 - strength): any one strong signal makes it strong, and several
    weak ones add up.  It is shown beside the score, never folded into it.
    """
    rest = 1.0
    for name, value in evidence.items():
        if name in SIGNALS and value:
            rest *= 1.0 - SIGNALS[name].strength(value)
    return round(1.0 - rest, 4)


def reasons(evidence: dict[str, Any]) -> list[str]:
    """The passage's evidence as sentences a misconduct panel can read, strongest kind first."""
    return [SIGNALS[name].sentence(evidence[name]) for name in SIGNALS
            if evidence.get(name)]


def describe() -> list[dict[str, Any]]:
    """The registry itself, for a report's legend and for documentation."""
    return [{"name": s.name, "label": s.label, "measures": s.measures, "computed": s.computed,
             "corroborates": s.corroborates} for s in SIGNALS.values()]
