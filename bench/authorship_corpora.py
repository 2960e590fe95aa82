"""Real authorship corpora as classes of students, for bench/eval_anomalies.py.

The corpora are not in the repository (their licences allow research use, not
redistribution here): bench/CORPORA.md, section "Authorship", says where each
comes from and how to lay it out under $ATTEST_CORPORA_DIR.

A *class* is what `submissions anomalies DIR` is given: one folder per student,
each with 2-5 earlier texts and one latest text (file names sort oldest first).
The latest text is either the student's own (label 0) or, ghost-written, a text
by someone outside the class answering the same assignment (label 1).

* USE (Uppsala Student English corpus): essays by Swedish university students
  of English on set assignments (a1 "English, my English", a2 argumentation,
  a3 reflections on television, a4 literature, a5 culture, then second-term
  b1-b8 and third-term c1), in that order in time.  A class is one intake
  (the first digit of the student id is the term the student enrolled); the
  students' essay codes give the order of their texts.  A ghost-written essay
  is the same assignment by a student of the same intake who is not in the
  class, so topic and assignment cannot give it away.
* Reuters C50 (RCV1 subset of Houvardas & Stamatatos): 50 journalists, 100
  articles each.  A class is 15 journalists; ghost-written means an article by
  one of the split's other journalists.  Journalists keep to their beats, so
  topic helps here: a secondary check, not the measure.

Students (or journalists) are split once, by a fixed hash of their id, into a
tuning and an evaluation half: no text, student or ghost-writer of one split
appears in the other.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

USE_ORDER = ("a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "c1")
MAX_HISTORY = 5
MIN_TEXTS = 3             # 2 earlier texts + the latest one
CLASS_SIZE = 30
P_GHOST = 0.5


class CorpusMissing(RuntimeError):
    """A corpus is not where ATTEST_CORPORA_DIR says; the message says how to get it."""


def corpora_dir() -> Path:
    raw = os.environ.get("ATTEST_CORPORA_DIR")
    if not raw:
        raise CorpusMissing("ATTEST_CORPORA_DIR is not set: point it at the folder holding use/ and c50/ "
                            "(bench/CORPORA.md, section \"Authorship\", says how to obtain them).")
    return Path(raw)


def _need(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise CorpusMissing(f"{what} not found at {path} (bench/CORPORA.md, section \"Authorship\", "
                            "says how to obtain it and lay it out).")
    return path


def split_of(key: str) -> str:
    """'tune' or 'eval', fixed by the author's id (never by chance at run time).

    A USE student id is a number: Knuth's multiplicative hash of it, the split the
    method was designed on (every exploration looked at "tune" students only)."""
    corpus, _, ident = key.partition(":")
    if corpus == "use" and ident.isdigit():
        return "tune" if (int(ident) * 2654435761 % 2**32) % 2 == 0 else "eval"
    return "tune" if hashlib.blake2b(key.encode(), digest_size=2).digest()[0] % 2 == 0 else "eval"


_USE_MARKUP = re.compile(r"<doc\.id=[^>]*>|</doc>|</?title>|<[^>\n]{0,60}removed>")


def clean_use(raw: str) -> str:
    """An essay without the corpus markup: the document tag (it names the student!),
    title tags (the title's words stay) and the compilers' '<table removed>' notes."""
    return _USE_MARKUP.sub("", raw.replace("\r\n", "\n")).strip()


def load_use(root: Path | None = None) -> dict[str, dict[str, str]]:
    """{student id: {essay code: text}} from $ATTEST_CORPORA_DIR/use/<code>/<id>.<code>.txt."""
    root = _need(root or corpora_dir() / "use", "The Uppsala Student English corpus (use/)")
    by: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted(root.glob("*/*.txt")):
        m = re.fullmatch(r"(\d{4})\.([abc]\d)i?\.txt", path.name)
        if m:
            by[m.group(1)][m.group(2)] = clean_use(path.read_text(encoding="latin-1"))
    if not by:
        raise CorpusMissing(f"no essays found under {root}")
    return dict(by)


def load_c50(root: Path | None = None) -> dict[str, list[str]]:
    """{journalist: [articles]} from $ATTEST_CORPORA_DIR/c50/C50train|C50test/<name>/*.txt."""
    root = _need(root or corpora_dir() / "c50", "Reuters C50 (c50/)")
    by: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.glob("C50*/*/*.txt")):
        by[path.parent.name].append(path.read_text(encoding="latin-1").strip())
    if not by:
        raise CorpusMissing(f"no articles found under {root}")
    return dict(by)


@dataclass
class ClassCase:
    """One class as the CLI sees it, with the truth about each student's latest text."""

    corpus: str
    name: str
    students: dict[str, dict[str, str]]      # student -> {file name: text}
    latest: dict[str, tuple[str, int]]       # student -> (file name of the latest text, label)


def use_classes(by: dict[str, dict[str, str]], split: str, rounds: int, seed: int) -> list[ClassCase]:
    """Classes drawn from one intake at a time (see the module docstring)."""
    rng = random.Random(seed)
    intakes: dict[str, list[str]] = defaultdict(list)
    for s in sorted(by):
        if split_of(f"use:{s}") == split:
            intakes[s[0]].append(s)
    out = []
    for r in range(rounds):
        for intake, members in sorted(intakes.items()):
            eligible = [s for s in members if len(by[s]) >= MIN_TEXTS]
            if len(eligible) < 8:
                continue
            rng.shuffle(eligible)
            chosen = eligible[:min(CLASS_SIZE, 2 * len(eligible) // 3)]
            outsiders = [s for s in members if s not in chosen]
            students, latest = {}, {}
            for s in chosen:
                codes = [c for c in USE_ORDER if c in by[s]][-(MAX_HISTORY + 1):]
                files = {f"{k}-{c}.txt": by[s][c] for k, c in enumerate(codes)}
                last = f"{len(codes) - 1}-{codes[-1]}.txt"
                writers = [o for o in outsiders if codes[-1] in by[o]]
                label = 0
                if writers and rng.random() < P_GHOST:
                    files[last] = by[rng.choice(writers)][codes[-1]]
                    label = 1
                students[f"s{s}"] = files
                latest[f"s{s}"] = (last, label)
            out.append(ClassCase("USE", f"intake {intake}, round {r + 1}", students, latest))
    return out


def c50_classes(by: dict[str, list[str]], split: str, rounds: int, seed: int, size: int = 15) -> list[ClassCase]:
    """Classes of `size` journalists; the split's other journalists are the ghost-writers."""
    rng = random.Random(seed)
    members = sorted(a for a in by if split_of(f"c50:{a}") == split)
    out = []
    for r in range(rounds):
        rng.shuffle(members)
        chosen, outsiders = members[:size], members[size:]
        students, latest = {}, {}
        for a in chosen:
            k = rng.randint(MIN_TEXTS, MAX_HISTORY + 1)
            texts = rng.sample(by[a], k)
            files = {f"{n}.txt": t for n, t in enumerate(texts)}
            label = int(rng.random() < P_GHOST)
            if label:
                files[f"{k - 1}.txt"] = rng.choice(by[rng.choice(outsiders)])
            students[a] = files
            latest[a] = (f"{k - 1}.txt", label)
        out.append(ClassCase("C50", f"round {r + 1}", students, latest))
    return out
