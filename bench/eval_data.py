"""Build the labelled evaluation sets in bench/data/ from texts available offline.

Run once (the outputs are committed, so the evaluations need none of the raw inputs):

    .venv/bin/python bench/eval_data.py --gensim-wheel WHEEL --pydoc DIR --wordnet DIR

Raw inputs and where they come from (all from the package registries reachable here):
* news articles: `lee_background.cor` and `lee.cor` from the PyPI wheel gensim==4.4.0
  (gensim/test/test_data/; the Lee et al. 2005 corpus of Australian Broadcasting
  Corporation news articles).  Fetched with `pip download --no-deps gensim==4.4.0`.
* single-author prose: the Python 3.11 documentation from Debian's `python3.11-doc`
  (`apt-get download python3.11-doc`, then `dpkg -x`): the "What's New" documents and
  HOWTOs carry an Author field (A.M. Kuchling, Raymond Hettinger, Vinay Sajip, ...).
* synonyms for the synthetic rewrites: WordNet 3.0 from Debian's `wordnet-base`.

How the near-duplicate cases are made (synthetic, honestly so):
* each case has a "student's own" article A and a same-topic source article B (the most
  similar other article by word tf-idf, with almost no shared 5-grams: two reporters
  writing on the same event) plus three unrelated distractor sources;
* positives replace a run of A's sentences (15-50 % of A) by consecutive sentences of B:
  verbatim; light edit (about 20 % of content words swapped for a WordNet synonym, a few
  function words dropped, punctuation changes); heavy paraphrase (about 90 % of the
  content words that WordNet knows swapped for a synonym from the word's most frequent sense
  (only synonyms common enough to occur in WordNet's sense-tagged SemCor corpus), frequent function words
  swapped, clauses rotated around commas, the passage's sentences shuffled, some joined
  with "and") - an article spinner, not a human paraphraser: its output is often
  ungrammatical, and a human paraphrase would keep more of the meaning and less of the
  wording;
* copied passages hold no quotation marks (quoted speech is excluded from the score by
  design, so a copied quotation is not a positive);
* negatives are A itself (independent writing on the same topic as B).
Articles are split by a fixed seed into a tuning half and an evaluation half; no article
appears in both.

Anomaly cases: each author's prose is cut into ~300-word texts; per author the texts are
split into a tuning and an evaluation half; a case is a "student" (one author) with three
of their own texts as history and one more text that is either their own (label 0) or a
text of another author (label 1, the ghost-written essay).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import zipfile
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SEED = 20261125
STOP = set("""a an the and or but if of to in on at by for with from as is are was were be been being
it its this that these those he she they we you i his her their our your my me him them us not no
so than then there here which who whom whose what when where why how all any some such can could
will would shall should may might must do does did have has had also into over under about after
before between during through up down out off again further once very just more most other same
own only too both each few nor""".split())


# --------------------------------------------------------------------------- WordNet

def load_synonyms(wordnet_dir: Path) -> dict[str, list[str]]:
    """lemma -> single-word synonyms from its most frequent sense, per WordNet 3.0."""
    offsets: dict[str, dict[str, str]] = {}
    syn: dict[str, list[str]] = {}
    for pos in ("noun", "verb", "adj", "adv"):
        data: dict[str, list[str]] = {}
        for line in (wordnet_dir / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            parts = line.split()
            n = int(parts[3], 16)
            data[parts[0]] = [parts[4 + 2 * i].lower() for i in range(n)]
        offsets[pos] = {}
        lines = [ln.split() for ln in (wordnet_dir / f"index.{pos}").read_text(encoding="latin-1").splitlines()
                 if not ln.startswith(" ")]
        # Words seen in the SemCor sense-tagged corpus: common enough for a natural swap.
        common = {parts[0] for parts in lines if int(parts[5 + int(parts[3])]) >= 1}
        for parts in lines:
            lemma, synset_cnt, p_cnt = parts[0], int(parts[2]), int(parts[3])
            first = parts[4 + p_cnt + 2]
            if "_" in lemma or lemma in syn:
                continue
            cands = [w for w in data.get(first, []) if w != lemma and "_" not in w
                     and re.fullmatch(r"[a-z]+", w) and w in common]
            if cands and synset_cnt <= 6:  # very polysemous words get silly swaps
                syn[lemma] = cands
    return syn


# --------------------------------------------------------------------------- rewriting

SENT_RE = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”]))\s+(?=[A-Z\"“])")
TOKEN_RE = re.compile(r"[A-Za-z]+|[^A-Za-z]+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENT_RE.split(text.strip()) if s.strip()]


_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"),
             ("es", ""), ("s", ""))


def _synonym(low: str, syn: dict[str, list[str]], rng: random.Random) -> str | None:
    """A synonym of the word, re-inflected crudely when only its lemma is in WordNet."""
    if low in syn:
        return rng.choice(syn[low])
    for suffix, repl in _SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix) + 2:
            lemma = low[: -len(suffix)] + repl
            if lemma in syn:
                new = rng.choice(syn[lemma])
                if suffix in ("ied", "ed"):
                    return new + ("d" if new.endswith("e") else "ed")
                if suffix == "ing":
                    return (new[:-1] if new.endswith("e") else new) + "ing"
                return new + ("es" if new.endswith(("s", "x", "ch", "sh")) else "s")
    return None


def swap_words(sentence: str, syn: dict[str, list[str]], rate: float, rng: random.Random) -> str:
    out = []
    for tok in TOKEN_RE.findall(sentence):
        low = tok.lower()
        new = _synonym(low, syn, rng) if (tok.isalpha() and low not in STOP
                                          and rng.random() < rate) else None
        if new:
            out.append(new.capitalize() if tok[0].isupper() else new)
        else:
            out.append(tok)
    return "".join(out)


def drop_function_words(sentence: str, rate: float, rng: random.Random) -> str:
    words = sentence.split(" ")
    kept = [w for w in words if not (w.lower() in {"the", "that", "very", "also", "just"}
                                     and rng.random() < rate)]
    return " ".join(kept)


def rotate_clauses(sentence: str, rng: random.Random) -> str:
    """'A, B.' -> 'B, a.' : the crude clause restructuring of a spinner."""
    body = sentence.rstrip(".!?")
    end = sentence[len(body):] or "."
    parts = [p.strip() for p in body.split(", ") if p.strip()]
    if len(parts) < 2:
        return sentence
    k = rng.randrange(1, len(parts))
    moved = parts[k:] + parts[:k]
    text = ", ".join(moved)
    first = parts[0]
    if first and not first.split()[0].isupper() and first[0].isupper() and len(first.split()[0]) > 1:
        text = text.replace(first, first[0].lower() + first[1:], 1)
    return text[0].upper() + text[1:] + end


def light_edit(sentences: list[str], syn, rng: random.Random) -> list[str]:
    out = []
    for s in sentences:
        s = swap_words(s, syn, 0.2, rng)
        s = drop_function_words(s, 0.3, rng)
        if rng.random() < 0.3:
            s = s.replace(", ", " ", 1)
        out.append(s)
    return out


_FUNCTION_SWAPS = {"the": "a", "a": "the", "said": "stated", "says": "states", "but": "however",
                   "because": "since", "about": "around", "many": "numerous", "also": "as well",
                   "has": "had", "will": "is going to", "more than": "over", "after": "following"}


def swap_function_words(sentence: str, rng: random.Random, rate: float) -> str:
    out = []
    for tok in TOKEN_RE.findall(sentence):
        low = tok.lower()
        if low in _FUNCTION_SWAPS and rng.random() < rate:
            new = _FUNCTION_SWAPS[low]
            out.append(new.capitalize() if tok[0].isupper() else new)
        else:
            out.append(tok)
    return "".join(out)


def heavy_paraphrase(sentences: list[str], syn, rng: random.Random) -> list[str]:
    out = [swap_words(s, syn, 0.9, rng) for s in sentences]
    out = [swap_function_words(s, rng, 0.7) for s in out]
    out = [rotate_clauses(s, rng) for s in out]
    out = [drop_function_words(s, 0.8, rng) for s in out]
    rng.shuffle(out)  # the passage's sentences in a new order
    merged: list[str] = []
    for s in out:  # join some short neighbours with "and"
        if merged and rng.random() < 0.3 and len(s.split()) < 20:
            merged[-1] = merged[-1].rstrip(".!?") + ", and " + s[0].lower() + s[1:]
        else:
            merged.append(s)
    return merged


# --------------------------------------------------------------------------- near-duplicates

def lee_articles(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        raw = []
        for name in ("gensim/test/test_data/lee_background.cor", "gensim/test/test_data/lee.cor"):
            raw.extend(z.read(name).decode("utf-8", "replace").splitlines())
    seen, out = set(), []
    for line in raw:
        text = " ".join(line.split())
        if len(text.split()) >= 120 and text[:80] not in seen:
            seen.add(text[:80])
            out.append(text)
    return out


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def build_near_duplicates(wheel: Path, syn) -> list[dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = random.Random(SEED)
    arts = lee_articles(wheel)
    tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(arts)
    sim = (tfidf @ tfidf.T).toarray()
    order = list(range(len(arts)))
    rng.shuffle(order)
    half = len(order) // 2
    split_of = {i: ("tune" if k < half else "eval") for k, i in enumerate(order)}
    cases = []
    for a in order:
        split = split_of[a]
        pool = [b for b in range(len(arts)) if b != a and split_of[b] == split]
        pool.sort(key=lambda b: -sim[a, b])
        partner = None
        for b in pool[:10]:
            sa, sb = shingles(arts[a]), shingles(arts[b])
            if sa and len(sa & sb) / len(sa) < 0.05:
                partner = b
                break
        if partner is None or sim[a, partner] < 0.15:
            continue
        distractors = rng.sample([b for b in pool[20:] if b != partner], 3)
        sources = [partner, *distractors]  # article ids (news_articles.jsonl line numbers)
        own = split_sentences(arts[a])
        src = split_sentences(arts[partner])
        base = {"split": split, "article": a, "sources": sources, "topic_similarity": round(float(sim[a, partner]), 3)}
        cases.append({**base, "kind": "independent", "label": 0, "submission": arts[a]})
        if len(own) < 4 or len(src) < 3:
            continue
        for kind in ("verbatim", "light", "heavy"):
            share = rng.uniform(0.15, 0.5)
            k = max(2, min(len(src), round(len(own) * share)))
            # Quoted speech is excluded from the score by design, so copy unquoted sentences.
            starts = [i for i in range(len(src) - k + 1)
                      if not any(q in "".join(src[i:i + k]) for q in '"“”')]
            if not starts:
                continue
            s0 = rng.choice(starts)
            taken = src[s0:s0 + k]
            if kind == "light":
                taken = light_edit(taken, syn, rng)
            elif kind == "heavy":
                taken = heavy_paraphrase(taken, syn, rng)
            at = rng.randrange(0, len(own) - k + 1) if len(own) > k else 0
            body = own[:at] + taken + own[at + k:]
            cases.append({**base, "kind": kind, "label": 1, "submission": " ".join(body)})
    return arts, cases


# --------------------------------------------------------------------------- authorship

def doc_prose(html_path: Path) -> tuple[str, str]:
    """(author, prose) of one Python documentation page; code, tables and notes removed."""
    from lxml import html as lhtml

    tree = lhtml.parse(str(html_path))
    author = ""
    for dt in tree.xpath("//dt"):
        if dt.text_content().strip().startswith("Author"):
            dd = dt.getnext()
            author = dd.text_content().strip() if dd is not None else ""
            break
    body = tree.xpath("//div[@role='main']") or tree.xpath("//body")
    paras = []
    for p in body[0].xpath(".//p"):
        if p.xpath("ancestor::table|ancestor::div[contains(@class,'highlight')]"
                   "|ancestor::dl[contains(@class,'field-list')]|ancestor::div[contains(@class,'admonition')]"):
            continue
        t = " ".join(p.text_content().split())
        if len(t.split()) >= 12:
            paras.append(t)
    return author, "\n\n".join(paras)


def canonical_author(raw: str) -> str | None:
    raw = re.sub(r"<.*?>|\(.*?\)", "", raw)
    if " and " in raw or "," in raw and "Editor" not in raw:
        return None  # co-authored: not usable as one person's style
    name = raw.replace("(Editor)", "").strip()
    name = re.sub(r"\s+", " ", name).replace("A. M.", "A.M.")
    return name or None


def chunks(prose: str, words: int = 300) -> list[str]:
    out, cur = [], []
    for para in prose.split("\n\n"):
        cur.append(para)
        if sum(len(p.split()) for p in cur) >= words:
            out.append("\n\n".join(cur))
            cur = []
    return out


def build_authorship(pydoc: Path) -> list[dict]:
    rng = random.Random(SEED)
    by_author: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for page in sorted(list(pydoc.glob("whatsnew/*.html")) + list(pydoc.glob("howto/*.html"))):
        raw, prose = doc_prose(page)
        author = canonical_author(raw)
        if not author:
            continue
        for k, c in enumerate(chunks(prose)):
            by_author[author].append((f"{page.parent.name}/{page.stem}#{k}", c))
    texts = []
    for author, items in sorted(by_author.items()):
        if len(items) < 6:
            continue
        rng.shuffle(items)
        cap = items[:40]  # keep prolific authors from dominating
        for k, (origin, text) in enumerate(cap):
            texts.append({"author": author, "origin": origin, "text": text,
                          "split": "tune" if k % 2 == 0 else "eval"})
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gensim-wheel", type=Path, required=True)
    ap.add_argument("--pydoc", type=Path, required=True, help="…/python3.11/html")
    ap.add_argument("--wordnet", type=Path, required=True, help="…/share/wordnet")
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    syn = load_synonyms(args.wordnet)
    arts, nd = build_near_duplicates(args.gensim_wheel, syn)
    with (DATA / "news_articles.jsonl").open("w") as f:
        for i, text in enumerate(arts):
            f.write(json.dumps({"id": i, "text": text}) + "\n")
    with (DATA / "near_duplicates.jsonl").open("w") as f:
        for c in nd:
            f.write(json.dumps(c) + "\n")
    au = build_authorship(args.pydoc)
    with (DATA / "authorship.jsonl").open("w") as f:
        for t in au:
            f.write(json.dumps(t) + "\n")
    kinds = defaultdict(int)
    for c in nd:
        kinds[(c["split"], c["kind"])] += 1
    print("near-duplicate cases:", dict(sorted(kinds.items())))
    authors = defaultdict(int)
    for t in au:
        authors[t["author"]] += 1
    print("authorship texts:", dict(authors))


if __name__ == "__main__":
    main()
