"""Real classes of same-prompt answers, with copies planted in them, for the near-duplicate bench.

    .venv/bin/python bench/neardup_corpus.py            # builds (or checks) the classes
    ATTEST_CORPORA_DIR=/path/to/corpora ...             # where the raw corpora live

Nothing here is committed data: the raw corpora stay outside the repository (their
licences do not allow redistribution, see bench/CORPORA.md) and so do the classes
built from them, under $ATTEST_CORPORA_DIR/built/<BUILD>/.

A class is what an instructor scans: 40 answers to one ASAP prompt, plus the folder
of sources they are compared with.
* independent answers: real students' essays to that prompt, untouched (label 0).
  Same-prompt essays are close in embedding space by nature; this is the case the
  detector must not flag.
* copies (label 1): a real essay of the class in which a run of its sentences is
  replaced by text from a source:
  - cut: consecutive sentences (without quotation marks where the essay allows:
    quotations do not count, by design) of another student's essay to the same prompt
    (the "donor", kept in the sources folder as a past cohort's answer), verbatim;
  - light: the same, lightly edited (about 20 % of content words swapped for a
    WordNet synonym, a few function words dropped, punctuation changed): synthetic;
  - heavy: the same, spun (most content words swapped, clauses rotated, sentences
    shuffled and joined; bench/eval_data.py's article spinner): synthetic, on topic;
  - light-human / heavy-human: REAL human paraphrases.  The source is a "reading"
    made of consecutive MSRP sentence-1s (positive pairs); the copy carries their
    sentence-2s, written by other journalists about the same event.  light-human
    pairs keep at least 50 % of their word 3-grams, heavy-human pairs under 30 %
    (pairs with quotation marks are left out: quotations do not count, by design).
    They are off the prompt's topic, so they test that corroboration still accepts
    a real paraphrase, not the topic confound (the on-topic heavy case does that).
  - peer-cut / peer-light: a passage of a classmate's essay (the "donor", itself a
    submission of the class), verbatim or lightly edited: collusion.  Donors copied
    nothing and are left out of the figures.
* sources: the donors, four more same-prompt essays nobody copied (hard negatives
  for every independent answer), the MSRP readings, and two readings nobody copied.

Split, fixed and seeded: prompts 1, 3, 5, 7 and MSRP's training file are for tuning;
prompts 2, 4, 6, 8 and MSRP's test file for evaluation.  No essay, prompt or
paraphrase pair appears in both.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from bench.eval_data import heavy_paraphrase, light_edit, load_synonyms  # noqa: E402

BUILD = "neardup-v5"
SEED = 20261201
TUNE_PROMPTS = (1, 3, 5, 7)
EVAL_PROMPTS = (2, 4, 6, 8)
CLASSES_PER_PROMPT = {"tune": 2, "eval": 3}
CLASS_SIZE = 40
COPIES = {"cut": 4, "light": 3, "heavy": 3, "light-human": 3, "heavy-human": 3}
UNCOPIED_DONORS = 4
UNCOPIED_READINGS = 2
READING_SENTENCES = 6
WORDNET = Path("/usr/share/wordnet")
PEER_COPIES = ("peer-cut", "peer-light")
KINDS = (*COPIES, *PEER_COPIES)
READING_NGRAM = 6
READING_MIN_ESSAYS = 5

csv.field_size_limit(10_000_000)


class CorporaMissing(SystemExit):
    """Raised with a message that says what is missing and how to get it."""


def corpora_dir() -> Path:
    """$ATTEST_CORPORA_DIR, checked: the raw corpora are never in the repository."""
    raw = os.environ.get("ATTEST_CORPORA_DIR")
    if not raw:
        raise CorporaMissing(
            "ATTEST_CORPORA_DIR is not set. It names a folder holding asap/ and msrp/ "
            "(see bench/CORPORA.md for where each corpus comes from and how to obtain it).")
    root = Path(raw).expanduser()
    missing = []
    if not list((root / "asap").glob("*.tsv")):
        missing.append(f"{root / 'asap'}/*.tsv (ASAP essays: training_set_rel3.tsv or the fold_*_test.tsv files)")
    for name in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt"):
        if not (root / "msrp" / name).exists():
            missing.append(str(root / "msrp" / name))
    if not (root / "asap-prompts" / "README.md").exists():
        missing.append(f"{root / 'asap-prompts' / 'README.md'} (the ASAP prompt texts: see bench/CORPORA.md)")
    if not (WORDNET / "data.noun").exists():
        missing.append(f"{WORDNET}/data.noun (Debian package wordnet-base: apt-get install wordnet-base)")
    if missing:
        raise CorporaMissing("missing corpora files:\n  " + "\n  ".join(missing) + "\nsee bench/CORPORA.md")
    return root


# --------------------------------------------------------------------------- raw corpora

def asap_essays(root: Path) -> dict[int, list[tuple[int, str]]]:
    """prompt -> [(essay id, text)], deduplicated by id across the ASAP files present."""
    seen: dict[int, tuple[int, str]] = {}
    for path in sorted((root / "asap").glob("*.tsv")):
        raw = path.read_bytes()
        try:  # Kaggle's own file is Windows-1252; the fold files people publish are UTF-8
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            content = raw.decode("cp1252", errors="replace")
        import io

        with io.StringIO(content, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                try:
                    eid, prompt = int(row["essay_id"]), int(row["essay_set"])
                except (KeyError, TypeError, ValueError):
                    continue
                text = " ".join((row.get("essay") or "").split())
                if text:
                    seen[eid] = (prompt, text)
    out: dict[int, list[tuple[int, str]]] = {}
    for eid, (prompt, text) in sorted(seen.items()):
        out.setdefault(prompt, []).append((eid, text))
    return out


def msrp_pairs(root: Path, split: str) -> list[tuple[str, str, float]]:
    """Positive MSRP pairs (sentence 1, sentence 2, share of 2's word 3-grams found in 1)."""
    name = "msr_paraphrase_train.txt" if split == "tune" else "msr_paraphrase_test.txt"
    out = []
    with (root / "msrp" / name).open(encoding="utf-8-sig") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            # Quoted speech is excluded from the score by design, so a pair with quotation
            # marks would plant text that cannot count.
            if len(parts) == 5 and parts[0] == "1" and not any(q in parts[3] + parts[4] for q in '"“”'):
                a, b = parts[3].strip(), parts[4].strip()
                out.append((a, b, _trigram_share(b, a)))
    return out


def _trigram_share(a: str, b: str) -> float:
    def tri(s: str) -> set[tuple[str, ...]]:
        w = re.findall(r"[a-z0-9]+", s.lower())
        return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}
    ta = tri(a)
    return len(ta & tri(b)) / max(1, len(ta))


def prompt_texts(root: Path) -> dict[int, str]:
    """prompt -> the assignment text students were given (what an instructor passes as template).

    Read from the Markdown summary of the ASAP prompts (one "# Essay set N" section
    each, the text under "## Essay prompt"); Markdown marks are dropped.
    """
    text = (root / "asap-prompts" / "README.md").read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r"^# Essay set #?(\d+)(.*?)(?=^# Essay set|\Z)", text, re.M | re.S):
        body = m.group(2).split("## Essay prompt", 1)[-1]
        lines = [ln.strip().lstrip(">").strip() for ln in body.splitlines()]
        lines = [ln.replace("__", "") for ln in lines if ln and not ln.startswith("__Note__")]
        out[int(m.group(1))] = "\n".join(lines)
    return out


# ASAP essays are often unpunctuated or use ".." and "!!"; a plain splitter is what a
# student's text gets from the detector too, so the copy takes whole sentences of it.
_SENT = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if s.strip()]


# --------------------------------------------------------------------------- classes

@dataclass
class Member:
    name: str
    text: str
    kind: str        # "independent" or one of KINDS
    source: str      # file name of the source it copies ("" for independent)
    essay_id: int


def _insert(host: list[str], taken: list[str], rng: random.Random) -> str:
    k = min(len(taken), max(1, len(host) - 1))
    at = rng.randrange(0, len(host) - k + 1) if len(host) > k else 0
    return " ".join(host[:at] + taken + host[at + k:])


def _template_grams(template: str, n: int = READING_NGRAM) -> set[tuple[str, ...]]:
    w = re.findall(r"[^\W_]+(?:['’][^\W_]+)*", template.lower())
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def _template_share(text: str, given: set[tuple[str, ...]], n: int = READING_NGRAM) -> float:
    """Share of a text's words inside word 6-grams of the template."""
    w = re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text.lower())
    inside = [False] * len(w)
    for i in range(len(w) - n + 1):
        if tuple(w[i:i + n]) in given:
            inside[i:i + n] = [True] * n
    return sum(inside) / max(1, len(w))


def _countable_start(src: list[str], k: int, rng: random.Random, given: set[tuple[str, ...]]) -> int:
    """Where to take k sentences from: a stretch that would count, when there is one.

    Quotations and template text (the prompt and its reading) are excluded from the
    score by design, so a planted copy of them would plant nothing that counts."""
    clean = [i for i in range(len(src) - k + 1)
             if not any(q in " ".join(src[i:i + k]) for q in '"“”')
             and _template_share(" ".join(src[i:i + k]), given) < 0.3]
    return rng.choice(clean) if clean else rng.randrange(0, len(src) - k + 1)


def _share(host_len: int, rng: random.Random) -> int:
    return max(2, round(host_len * rng.uniform(0.25, 0.6)))


def in_class_pool(essay_id: int) -> bool:
    """Even ids make the classes, odd ids rebuild the reading (reading_phrases): fixed, so no
    class member's text ever shapes the template its class is scanned with."""
    return essay_id % 2 == 0


def build_class(prompt: int, essays: list[tuple[int, str]], pairs: dict[str, list[tuple[str, str]]],
                syn: dict, rng: random.Random, template: str, size: int = CLASS_SIZE) -> tuple[list[Member], dict[str, str]]:
    """One class: `size` submissions and its sources folder (name -> text)."""
    usable = [(eid, t) for eid, t in essays
              if in_class_pool(eid) and len(t.split()) >= 60 and len(sentences(t)) >= 4]
    given = _template_grams(template)
    n_copies = sum(COPIES.values())
    n_donors = COPIES["cut"] + COPIES["light"] + COPIES["heavy"]
    picked = rng.sample(usable, size + n_donors + UNCOPIED_DONORS)
    cohort, donors, spare = picked[:size], picked[size:size + n_donors], picked[size + n_donors:]
    kinds = [k for k, n in COPIES.items() for _ in range(n)]
    hosts = rng.sample(range(size), n_copies)
    sources: dict[str, str] = {}
    members: list[Member] = []
    copy_of = dict(zip(hosts, kinds, strict=True))
    donor_iter = iter(donors)
    for i, (eid, text) in enumerate(cohort):
        name = f"p{prompt}-{eid}.txt"
        kind = copy_of.get(i)
        if kind is None:
            members.append(Member(name, text, "independent", "", eid))
            continue
        own = sentences(text)
        if kind in ("cut", "light", "heavy"):
            d_id, d_text = next(donor_iter)
            src_name = f"past-p{prompt}-{d_id}.txt"
            sources[src_name] = d_text
            src = sentences(d_text)
            k = min(len(src), _share(len(own), rng))
            s0 = _countable_start(src, k, rng, given)
            taken = src[s0:s0 + k]
            if kind == "light":
                taken = light_edit(taken, syn, rng)
            elif kind == "heavy":
                taken = heavy_paraphrase(taken, syn, rng)
        else:
            bucket = pairs[kind]
            reading = [bucket.pop() for _ in range(READING_SENTENCES)]
            src_name = f"reading-{len(sources):02d}.txt"
            sources[src_name] = " ".join(a for a, _ in reading)
            k = min(READING_SENTENCES - 1, max(3, _share(len(own), rng)))
            s0 = rng.randrange(0, READING_SENTENCES - k + 1)
            taken = [b for _, b in reading[s0:s0 + k]]
        members.append(Member(name, _insert(own, taken, rng), kind, src_name, eid))
    # Collusion inside the class: a passage of one student's essay in another's.  A separate
    # generator keeps every other case as it was when the peer copies were added.
    peer_rng = random.Random(f"{SEED}-{prompt}-{members[0].essay_id}")
    free = [i for i, m in enumerate(members) if m.kind == "independent"]
    chosen = peer_rng.sample(free, 2 * len(PEER_COPIES))
    for kind, host_i, donor_i in zip(PEER_COPIES, chosen[::2], chosen[1::2], strict=True):
        host, donor = members[host_i], members[donor_i]
        own, src = sentences(host.text), sentences(donor.text)
        k = min(len(src), _share(len(own), peer_rng))
        s0 = _countable_start(src, k, peer_rng, given)
        taken = src[s0:s0 + k]
        if kind == "peer-light":
            taken = light_edit(taken, syn, peer_rng)
        members[host_i] = Member(host.name, _insert(own, taken, peer_rng), kind, donor.name, host.essay_id)
        members[donor_i] = Member(donor.name, donor.text, "donor", "", donor.essay_id)
    for d_id, d_text in spare:
        sources[f"past-p{prompt}-{d_id}.txt"] = d_text
    for n in range(UNCOPIED_READINGS):
        bucket = pairs["rest"]
        sources[f"reading-x{n}.txt"] = " ".join(bucket.pop()[0] for _ in range(READING_SENTENCES))
    return members, sources


def reading_phrases(essays: list[tuple[int, str]]) -> list[str]:
    """The wording many students of a prompt took from what they were given.

    ASAP's source-dependent prompts (3-6) gave students a reading that is not in
    the data set, and students quote it, often without quotation marks.  An
    instructor would pass the reading as template text; here it is rebuilt from
    the prompt's essays that can be in no class (odd ids, see in_class_pool): every
    word 6-gram used by at least READING_MIN_ESSAYS of them, chained into phrases.  For the other prompts
    the same rule finds the prompt's stock phrases.
    """
    counts: dict[tuple[str, ...], int] = {}
    for eid, text in essays:
        if in_class_pool(eid):
            continue
        w = re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text.lower())
        for g in {tuple(w[i:i + READING_NGRAM]) for i in range(len(w) - READING_NGRAM + 1)}:
            counts[g] = counts.get(g, 0) + 1
    frequent = {g for g, n in counts.items() if n >= READING_MIN_ESSAYS}
    # Chain overlapping 6-grams ("a b c d e f" + "b c d e f g") into phrases.
    by_prefix = {g[:-1]: g for g in frequent}
    suffixes = {g[1:] for g in frequent}
    starts = [g for g in frequent if g[:-1] not in suffixes]
    phrases, seen = [], set()
    for g in sorted(starts) + sorted(frequent):  # then whatever a cycle left unreached
        if g in seen:
            continue
        words, cur = list(g), g
        seen.add(cur)
        while cur[1:] in by_prefix and by_prefix[cur[1:]] not in seen:
            cur = by_prefix[cur[1:]]
            seen.add(cur)
            words.append(cur[-1])
        phrases.append(" ".join(words))
    return phrases


def build(root: Path) -> Path:
    """Write every class under root/built/BUILD (idempotent: an existing build is kept)."""
    out = root / "built" / BUILD
    if (out / "classes.json").exists():
        return out
    if out.exists():  # a build that stopped half way
        import shutil

        shutil.rmtree(out)
    rng = random.Random(SEED)
    essays = asap_essays(root)
    syn = load_synonyms(WORDNET)
    given = prompt_texts(root)
    templates = {p: given[p] + "\n\n" + "\n".join(reading_phrases(essays[p])) for p in given}
    index = []
    for split, prompts in (("tune", TUNE_PROMPTS), ("eval", EVAL_PROMPTS)):
        all_pairs = msrp_pairs(root, split)
        rng.shuffle(all_pairs)
        pairs = {"light-human": [(a, b) for a, b, s in all_pairs if s >= 0.5],
                 "heavy-human": [(a, b) for a, b, s in all_pairs if s < 0.3],
                 "rest": [(a, b) for a, b, s in all_pairs if 0.3 <= s < 0.5]}
        for prompt in prompts:
            for c in range(CLASSES_PER_PROMPT[split]):
                members, sources = build_class(prompt, essays[prompt], pairs, syn, rng, templates[prompt])
                folder = out / split / f"prompt{prompt}-class{c}"
                (folder / "template").mkdir(parents=True, exist_ok=True)
                (folder / "template" / "prompt.txt").write_text(templates[prompt], encoding="utf-8")
                (folder / "submissions").mkdir(parents=True, exist_ok=True)
                (folder / "sources").mkdir(parents=True, exist_ok=True)
                for m in members:
                    (folder / "submissions" / m.name).write_text(m.text, encoding="utf-8")
                for name, text in sources.items():
                    (folder / "sources" / name).write_text(text, encoding="utf-8")
                # A donor shares a passage but copied nothing: it is neither a copy nor an
                # independent answer, so it is left out of every figure (label None).
                labels = [{"submission": m.name, "kind": m.kind,
                           "label": None if m.kind == "donor" else int(m.kind != "independent"),
                           "source": m.source, "essay_id": m.essay_id} for m in members]
                (folder / "labels.json").write_text(json.dumps(labels, indent=1))
                index.append({"split": split, "prompt": prompt, "class": str(folder.relative_to(out))})
    (out / "classes.json").write_text(json.dumps(index, indent=1))
    return out


def scan_class(prompt: int, size: int = 100) -> LabelledClass:
    """One larger class of an evaluation prompt for bench/bench_scan.py (built once, seeded),
    made like the others: real answers, planted copies, its own sources and template."""
    root = corpora_dir()
    build(root)
    folder = root / "built" / BUILD / "scan" / f"prompt{prompt}-{size}"
    if not (folder / "labels.json").exists():
        rng = random.Random(f"{SEED}-scan-{prompt}-{size}")
        template = prompt_texts(root)[prompt] + "\n\n" + "\n".join(reading_phrases(asap_essays(root)[prompt]))
        all_pairs = msrp_pairs(root, "eval")
        rng.shuffle(all_pairs)
        pairs = {"light-human": [(a, b) for a, b, s in all_pairs if s >= 0.5],
                 "heavy-human": [(a, b) for a, b, s in all_pairs if s < 0.3],
                 "rest": [(a, b) for a, b, s in all_pairs if 0.3 <= s < 0.5]}
        members, sources = build_class(prompt, asap_essays(root)[prompt], pairs, load_synonyms(WORDNET), rng,
                                       template, size)
        for sub in ("submissions", "sources", "template"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for m in members:
            (folder / "submissions" / m.name).write_text(m.text, encoding="utf-8")
        for name, text in sources.items():
            (folder / "sources" / name).write_text(text, encoding="utf-8")
        (folder / "template" / "prompt.txt").write_text(template, encoding="utf-8")
        labels = [{"submission": m.name, "kind": m.kind, "label": None if m.kind == "donor" else int(m.kind != "independent"),
                   "source": m.source, "essay_id": m.essay_id} for m in members]
        (folder / "labels.json").write_text(json.dumps(labels, indent=1))
    return LabelledClass("scan", prompt, folder, json.loads((folder / "labels.json").read_text()))


@dataclass
class LabelledClass:
    split: str
    prompt: int
    folder: Path
    labels: list[dict]

    @property
    def template_path(self) -> Path:
        """The instructor's template: the prompt and the phrases of its reading (reading_phrases)."""
        return self.folder / "template" / "prompt.txt"

    @property
    def template(self) -> str:
        return self.template_path.read_text(encoding="utf-8")

    def texts(self, sub: str) -> dict[str, str]:
        d = self.folder / sub
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(d.iterdir())}


def load_classes() -> list[LabelledClass]:
    """Every built class (building them first if needed), tuning classes first."""
    out = build(corpora_dir())
    classes = []
    for row in json.loads((out / "classes.json").read_text()):
        folder = out / row["class"]
        classes.append(LabelledClass(row["split"], row["prompt"], folder,
                                     json.loads((folder / "labels.json").read_text())))
    return classes


if __name__ == "__main__":
    built = load_classes()
    for split in ("tune", "eval"):
        sel = [c for c in built if c.split == split]
        rows = [r for c in sel for r in c.labels]
        kinds = {k: sum(r["kind"] == k for r in rows) for k in ("independent", *KINDS, "donor")}
        print(f"{split}: {len(sel)} classes, prompts {sorted({c.prompt for c in sel})}, {kinds}")
