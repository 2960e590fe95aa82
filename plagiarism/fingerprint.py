"""Winnowed word n-gram fingerprints (Schleimer, Wilkerson & Aiken 2003, as in MOSS).

Hashing every word n-gram and keeping the minimum hash of each window of
`window` consecutive n-grams gives a small set of fingerprints with a
guarantee: any shared run of at least `window + n - 1` words yields at least
one shared fingerprint.  Words are normalised (lower case, a crude suffix
strip, stop words kept) so light edits such as changed inflection or
punctuation still match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

NGRAM = 5
WINDOW = 4


@lru_cache(maxsize=200_000)
def normalise_word(word: str) -> str:
    """Lower-cased word with common English inflections removed.

    A light stemmer keeps "argued"/"argues"/"arguing" together, which is the
    kind of change a student makes when lightly editing a copied passage.
    """
    w = word.lower()
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def _hash(gram: tuple[str, ...]) -> int:
    """Stable 64-bit hash (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(" ".join(gram).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ngram_hashes(tokens: Sequence[str], n: int = NGRAM) -> list[int]:
    """Hash of each word n-gram starting at token i (len(tokens) - n + 1 of them)."""
    return [_hash(tuple(tokens[i:i + n])) for i in range(len(tokens) - n + 1)]


def winnow(hashes: Sequence[int], window: int = WINDOW) -> list[tuple[int, int]]:
    """Robust winnowing: (hash, position) of each window's minimum, rightmost on ties.

    A position is recorded once even when it is the minimum of several
    consecutive windows.  Texts shorter than one window keep their global
    minimum so that short texts still get a fingerprint.
    """
    if not hashes:
        return []
    if len(hashes) <= window:
        pos = min(range(len(hashes)), key=lambda i: (hashes[i], -i))
        return [(hashes[pos], pos)]
    picked: list[tuple[int, int]] = []
    last = -1
    for start in range(len(hashes) - window + 1):
        best = start
        for i in range(start, start + window):
            if hashes[i] <= hashes[best]:
                best = i
        if best != last:
            picked.append((hashes[best], best))
            last = best
    return picked


def fingerprints(tokens: Sequence[str], n: int = NGRAM, window: int = WINDOW) -> dict[int, list[int]]:
    """Map fingerprint hash -> token positions where its n-gram starts."""
    out: dict[int, list[int]] = {}
    for h, pos in winnow(ngram_hashes(tokens, n), window):
        out.setdefault(h, []).append(pos)
    return out


def all_ngram_positions(tokens: Sequence[str], n: int = NGRAM) -> dict[int, list[int]]:
    """Every n-gram hash -> its positions: used on the source side, so a
    fingerprint chosen in one text is found wherever it occurs in the other."""
    out: dict[int, list[int]] = {}
    for i, h in enumerate(ngram_hashes(tokens, n)):
        out.setdefault(h, []).append(i)
    return out


def containment(a: Sequence[str], b: Sequence[str], n: int = NGRAM) -> float:
    """Share of a's word n-grams that also occur in b: the baseline detector."""
    ga = set(ngram_hashes(a, n))
    if not ga:
        return 0.0
    return len(ga & set(ngram_hashes(b, n))) / len(ga)
