"""Pure unit tests of the detection core: winnowing, segmentation and exclusions, span merging."""

from __future__ import annotations

import random

from plagiarism.fingerprint import (
    all_ngram_positions,
    containment,
    fingerprints,
    ngram_hashes,
    normalise_word,
    winnow,
)
from plagiarism.nearduplicate import Match, Params, SubmissionReport, _merge_matches, clusters, scan
from plagiarism.segment import merge_ranges, segment, sentences, template_spans, words

# ---------------------------------------------------------------------------- winnowing


def test_winnow_picks_rightmost_minimum_of_each_window_once():
    hashes = [77, 74, 42, 17, 98, 50, 17, 98, 8, 88, 67, 39, 77, 74, 42, 17, 98]
    picked = winnow(hashes, 4)
    # Schleimer et al.'s example: the robust winnowing of these hashes.
    assert [h for h, _ in picked] == [17, 17, 8, 39, 17]
    assert [p for _, p in picked] == [3, 6, 8, 11, 15]


def test_winnow_guarantee_shared_run_gives_a_shared_fingerprint():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(500)]
    n, w = 5, 4
    for _ in range(50):
        run = [rng.choice(vocab) for _ in range(w + n - 1)]
        a = [rng.choice(vocab) for _ in range(rng.randint(0, 40))] + run + \
            [rng.choice(vocab) for _ in range(rng.randint(0, 40))]
        b = [rng.choice(vocab) for _ in range(rng.randint(0, 40))] + run + \
            [rng.choice(vocab) for _ in range(rng.randint(0, 40))]
        assert set(fingerprints(a, n, w)) & set(fingerprints(b, n, w))


def test_winnow_short_text_keeps_one_fingerprint():
    assert winnow([5, 3, 9], 4) == [(3, 1)]
    assert winnow([], 4) == []


def test_ngram_hashes_are_stable_and_positional():
    toks = "the quick brown fox jumps over the quick brown fox".split()
    hashes = ngram_hashes(toks, 3)
    assert len(hashes) == len(toks) - 2
    assert hashes[0] == hashes[6]  # "the quick brown" twice
    assert all_ngram_positions(toks, 3)[hashes[0]] == [0, 6]


def test_normalise_word_folds_light_inflection():
    assert normalise_word("Argued") == normalise_word("argues") == "argu"
    assert normalise_word("studies") == "stud"
    assert normalise_word("is") == "is"


def test_containment_baseline():
    a = "one two three four five six".split()
    assert containment(a, a, 3) == 1.0
    assert containment(a, "seven eight nine ten".split(), 3) == 0.0
    assert containment(a, "x one two three y".split(), 3) == 0.25


# ---------------------------------------------------------------------------- segmentation

def test_words_keep_offsets():
    text = "Don't stop — it's 2024!"
    for s, e, w in words(text):
        assert text[s:e].lower().replace("’", "'") == w
    assert [w for _, _, w in words(text)] == ["don't", "stop", "it's", "2024"]


def test_sentences_respect_abbreviations():
    text = "Dr. Smith arrived, e.g. on time. Then he left! Did he?"
    got = [text[s.start:s.end] for s in sentences(text)]
    assert got == ["Dr. Smith arrived, e.g. on time.", "Then he left!", "Did he?"]


def test_inline_quotation_needs_four_words_and_at_most_sixty():
    short = 'He called it "fine" and moved on.'
    assert segment(short).excluded == []
    text = 'She wrote "the reef will not recover on its own" in her notes.'
    seg = segment(text)
    assert [(text[s:e], k) for s, e, k in seg.excluded] == [('"the reef will not recover on its own"',
                                                             "quotation")]
    long_quote = 'Stray "' + "word " * 70 + 'end" quote.'
    assert segment(long_quote).excluded == []


def test_curly_quotes_and_block_quotes_are_excluded():
    text = ("My own opening sentence is here.\n\n> A block quotation copied from the source text.\n\n"
            "And “a curly quoted passage of words” too.")
    kinds = sorted(k for _, _, k in segment(text).excluded)
    assert kinds == ["block quotation", "quotation"]


def test_indented_paragraph_is_a_block_quote_only_when_others_are_not():
    text = "Plain paragraph one here.\n\n    Indented quotation from a book goes here.\n\nPlain two."
    assert [k for _, _, k in segment(text).excluded] == ["block quotation"]
    all_indented = "    First paragraph indented.\n\n    Second paragraph indented too."
    assert segment(all_indented).excluded == []


def test_bibliography_runs_to_the_end_and_is_not_counted():
    body = "This essay argues a point at some length. " * 10
    text = body + "\nWorks Cited\nSmith, J. (2020). A Book About Reefs. Reef Press.\n"
    seg = segment(text)
    (start, end, kind), = seg.excluded
    assert kind == "bibliography" and text[start:].startswith("Works Cited") and end == len(text)
    assert all(x for (s, _, _), x in zip(seg.words, seg.word_excluded, strict=False) if s >= start)
    assert seg.countable_chars == sum(e - s for s, e, _ in words(body))


def test_heading_near_the_top_is_not_a_bibliography():
    text = "Sources\n" + "This essay is about sources of energy and where they come from. " * 5
    assert segment(text).excluded == []


def test_template_text_is_marked():
    template = "Answer the following question in no more than five hundred words using two sources"
    text = ("Answer the following question in no more than five hundred words using two sources. "
            "My answer starts here and is my own.")
    spans = template_spans(text, [template])
    assert len(spans) == 1 and text[spans[0][0]:spans[0][1]].startswith("Answer the following")
    assert text[spans[0][0]:spans[0][1]].endswith("two sources")


def test_merge_ranges():
    assert merge_ranges([(5, 9, "a"), (0, 3, "b"), (8, 12, "c"), (14, 15, "d")]) == \
        [(0, 3, "b"), (5, 12, "a"), (14, 15, "d")]
    assert merge_ranges([(0, 3, "a"), (5, 6, "b")], gap=2) == [(0, 6, "a")]


# ---------------------------------------------------------------------------- passages and clusters

def test_merge_matches_joins_overlapping_passages_of_one_source():
    a = Match("src", "source", 0.9, "fingerprint", (0, 50), (100, 150))
    b = Match("src", "source", 0.8, "paraphrase", (40, 90), (140, 200))
    c = Match("other", "submission", 0.7, "paraphrase", (0, 20), (0, 20))
    merged = _merge_matches([a, b, c])
    assert len(merged) == 2
    joined = next(m for m in merged if m.source == "src")
    assert joined.submission_span == (0, 90) and joined.source_span == (100, 200)
    assert joined.method == "fingerprint+paraphrase" and joined.similarity == 0.9


def test_clusters_link_submissions_above_threshold():
    reports = [SubmissionReport("a", 0.5, True, source_scores={"b": 0.5}),
               SubmissionReport("b", 0.5, True, source_scores={"a": 0.5, "c": 0.3}),
               SubmissionReport("c", 0.3, True, source_scores={"b": 0.3, "ref": 0.9}),
               SubmissionReport("d", 0.01, False, source_scores={"a": 0.01})]
    assert clusters(reports, 0.1) == [["a", "b", "c"]]


ESSAY = ("Coral reefs cover a tiny share of the ocean floor but shelter a quarter of marine species. "
         "They protect coastlines from storms and feed millions of people. ")
OTHER = ("Rainforests store vast amounts of carbon in their trees and soils. "
         "Logging releases that carbon and destroys habitats for countless animals. ")


def test_fingerprint_scan_spans_point_at_the_copied_text():
    copied = ("Warm water makes corals expel the algae living in their tissues, and without them the "
              "coral turns white and starts to starve within weeks.")
    submission = OTHER + copied + " " + OTHER.upper()
    source = ESSAY + copied + " " + ESSAY
    result = scan({"s.txt": submission}, {"src.txt": source}, params=Params(use_embeddings=False))
    report = result.reports[0]
    assert report.flagged
    (match,) = report.matches
    s0, s1 = match.submission_span
    r0, r1 = match.source_span
    assert submission[s0:s1] == copied.rstrip(".")
    assert source[r0:r1] == copied.rstrip(".")
    expected = len("".join(copied.split()).replace(",", "").replace(".", ""))
    assert 0.2 < report.score < 0.6 and expected > 0


def test_fingerprint_scan_ignores_a_copied_quotation():
    copied = ("Warm water makes corals expel the algae living in their tissues, and without them the "
              "coral turns white.")
    submission = OTHER + f'As one book says, "{copied}" ' + OTHER
    source = ESSAY + copied
    report = scan({"s.txt": submission}, {"src.txt": source}, params=Params(use_embeddings=False)).reports[0]
    assert report.score == 0.0 and not report.flagged and report.matches == []


# ---------------------------------------------------------------------------- anomaly building blocks

def test_mask_content_words_keeps_function_words_and_punctuation():
    from plagiarism.anomaly import mask_content_words

    assert mask_content_words("The reef, however, was bleached in 2016!") == \
        "The ****, however, was ******** in 2016!"


def test_style_features_measure_what_they_say():
    from plagiarism.stylometry import scalar_features

    short = scalar_features("I ran. I hid. I won!")
    assert short["sentence_length"] == 2.0 and short["exclamations"] == 100 / 6
    long = scalar_features("The committee, having considered the evidence; concluded that the policy, "
                           "which had been adopted in haste, should be withdrawn.")
    assert long["sentence_length"] > 15 and long["semicolons"] > 0 and long["commas"] > short["commas"]


def test_impostor_evidence_separates_own_writing_from_someone_elses():
    import numpy as np

    from plagiarism.anomaly import BlockGram, impostor_evidence

    rng = np.random.default_rng(0)
    student = rng.normal(size=40)
    others = [rng.normal(size=40) for _ in range(4)]
    rows = [student + 0.3 * rng.normal(size=40) for _ in range(4)]          # 0-3: the student
    rows += [o + 0.3 * rng.normal(size=40) for o in others for _ in range(2)]  # 4-11: classmates
    gram = BlockGram(np.array(rows), blocks=10)
    own_text, _, _ = impostor_evidence(gram, 3, [0, 1, 2], list(range(4, 12)), np.random.default_rng(1))
    ghost = np.array(rows + [others[0] + 0.3 * rng.normal(size=40)])
    gram2 = BlockGram(ghost, blocks=10)
    ghost_text, ref, ver = impostor_evidence(gram2, 12, [0, 1, 2], list(range(6, 12)), np.random.default_rng(1))
    assert own_text < 0.2 < 0.6 < ghost_text
    assert 0 <= ref <= 1 and 0 <= ver <= 1


# ---------------------------------------------------------------------------- score parts

def test_masked_word_ngrams_survive_synonym_swaps_but_not_same_topic_rewording():
    import numpy as np

    from plagiarism.nearduplicate import prepare, skeleton_containment, skeleton_grams

    source = ("The reef was bleached by the warm water of the summer, and most of the corals in the "
              "shallow lagoon died within a few weeks of the heat.")
    swapped = ("The shoal was whitened by the hot sea of the season, and most of the polyps in the "
               "shallow basin perished within a few months of the warmth.")
    same_topic = ("Warm summers bleach corals: heat stress kills shallow lagoon corals quickly, "
                  "often within weeks.")
    src = prepare("src", source, "source")
    assert skeleton_containment(prepare("a", swapped), src) == 1.0
    assert skeleton_containment(prepare("b", same_topic), src) == 0.0
    # Grams need two function words and two masked words: "of the of the ..." alone is no evidence.
    counted, every = skeleton_grams("of the of the of the of the of the of".split(), np.ones(11, bool), 9)
    assert counted == set() and every


def test_score_is_the_tuned_weighted_mean_of_its_parts():
    from plagiarism.nearduplicate import combine

    p = Params(coverage_weight=0.3, containment_weight=0.2)
    assert combine(1.0, 1.0, 1.0, p) == 1.0 and combine(0.0, 0.0, 0.0, p) == 0.0
    assert abs(combine(0.5, 0.25, 0.1, p) - (0.15 + 0.05 + 0.05)) < 1e-12
    copied = ("Warm water makes corals expel the algae living in their tissues, and without them the "
              "coral turns white and starts to starve within weeks.")
    report = scan({"s.txt": OTHER + copied}, {"src.txt": ESSAY + copied},
                  params=Params(use_embeddings=False)).reports[0]
    ev = report.evidence
    assert set(ev) == {"coverage", "containment", "skeleton"} and ev["coverage"] > 0 and ev["skeleton"] > 0
    assert abs(report.score - combine(ev["coverage"], ev["containment"], ev["skeleton"], Params())) < 1e-9


# ---------------------------------------------------------------------------- anomaly calibration and cohort

def _fake_encode(texts):
    import hashlib

    import numpy as np

    rows = [np.frombuffer(hashlib.sha512(t.encode()).digest() * 6, dtype=np.uint8)[:384].astype(np.float32)
            for t in texts]
    return np.array(rows) - 127.5


def test_robust_scale_ignores_the_odd_value_and_has_a_floor():
    import numpy as np

    from plagiarism.anomaly import robust_scale

    center, scale = robust_scale(np.array([0.30, 0.31, 0.29, 0.30, 0.32, 0.95]))
    assert abs(center - 0.305) < 1e-9 and scale < 0.05
    assert robust_scale(np.array([0.4, 0.4, 0.4]))[1] == 0.05 * 0.4


def test_a_text_unlike_the_whole_cohort_is_a_separate_flag_even_without_history():
    import json
    from pathlib import Path

    from plagiarism.anomaly import OUTLIER_Z, detect_anomalies

    rows = [json.loads(line) for line in
            (Path(__file__).resolve().parent.parent / "bench" / "data" / "authorship.jsonl").open()]
    by: dict[str, list[str]] = {}
    for r in rows:
        if r["split"] == "eval":
            by.setdefault(r["author"], []).append(r["text"])
    students = {a.split()[-1]: {f"{n}.txt": t for n, t in enumerate(by[a][:3])}
                for a in ("A.M. Kuchling", "Raymond Hettinger", "Vinay Sajip", "R. David Murray")}
    shouting = "OMG!!! this is SO cool!!! LOL!!! wow wow WOW!!! yes yes YES!!! " * 12
    students["newcomer"] = {"1.txt": shouting}
    reports = {(r.student, r.submission): r for r in detect_anomalies(students, encode=_fake_encode)}
    odd = reports[("newcomer", "1.txt")]
    assert odd.flagged and odd.score == 0.0 and odd.evidence["cohort_outlier"] >= OUTLIER_Z
    assert odd.reasons[0].startswith("Too little history")
    assert any(r.startswith("Outlier in its cohort") and "not a finding of misconduct" in r for r in odd.reasons)
    honest = [r for (s, _), r in reports.items() if s != "newcomer"]
    assert all(r.evidence["cohort_outlier"] < OUTLIER_Z for r in honest)
    assert not any(any(x.startswith("Outlier") for x in r.reasons) for r in honest)
