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
    from plagiarism.authorship import mask_content_words

    assert mask_content_words("The reef, however, was bleached in 2016!") == \
        "The ****, however, was ******** in 2016!"


def test_style_features_measure_what_they_say():
    from plagiarism.stylometry import scalar_features

    short = scalar_features("I ran. I hid. I won!")
    assert short["sentence_length"] == 2.0 and short["exclamations"] == 100 / 6
    long = scalar_features("The committee, having considered the evidence; concluded that the policy, "
                           "which had been adopted in haste, should be withdrawn.")
    assert long["sentence_length"] > 15 and long["semicolons"] > 0 and long["commas"] > short["commas"]


def _class_of_profiles(ghost: bool):
    """Feature rows = assignment topic + author habit + noise: 6 students x 4 assignments.
    Student 0's last text is their own, or (ghost) written by an outsider on the same topic."""
    import numpy as np

    rng = np.random.default_rng(3)
    topics = [rng.normal(size=60) for _ in range(4)]
    authors = [rng.normal(size=60) for _ in range(7)]   # author 6 is outside the class
    rows, who = [], []
    for s in range(6):
        for a in range(4):
            writer = 6 if (ghost and s == 0 and a == 3) else s
            rows.append(2.0 * topics[a] + 1.0 * authors[writer] + 0.5 * rng.normal(size=60))
            who.append(s)
    x = np.array(rows)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T, who


def test_cohort_normalised_evidence_sees_the_ghost_where_the_topic_hides_it():
    import numpy as np

    from plagiarism.authorship import family_evidence

    for ghost in (False, True):
        sim, who = _class_of_profiles(ghost)
        own, cohort = [0, 1, 2], [j for j, s in enumerate(who) if s != 0]
        ev = family_evidence(sim, 3, own, cohort, k=5)
        # Every other student's answer to the same assignment is closer to the text than the
        # student's own earlier texts are: raw closeness says "not theirs" either way.
        assert sim[3, cohort].max() > sim[3, own].max()
        if ghost:
            ghost_ev = ev
        else:
            own_ev = ev
    assert own_ev.z < 0 < ghost_ev.z
    assert ghost_ev.peers_closer > own_ev.peers_closer and ghost_ev.peers_count == 5
    assert 0 <= own_ev.impostors_closer < ghost_ev.impostors_closer <= 1
    # A cohort smaller than the neighbourhood uses what it has.
    assert family_evidence(sim, 3, own, cohort[:2], k=10).peers_count == 2
    assert np.isfinite(family_evidence(np.ones_like(sim), 3, own, cohort).z)


def test_model_weighs_families_and_ignores_one_it_has_no_weight_for():
    from plagiarism.authorship import Model

    m = Model(intercept=-1.0, weights={"vocabulary": 2.0, "style": 1.0}, threshold=0.5)
    assert m.score({"vocabulary": 0.5, "style": 0.0}) == 0.5
    assert m.score({"vocabulary": 2.0, "style": 1.0}) > m.score({"vocabulary": 1.0, "style": 1.0}) > 0.5
    assert m.score({"vocabulary": 0.5, "style": 0.0, "unknown": 99.0}) == 0.5
    assert [n for _, n in m.contributions({"vocabulary": 1.0, "style": 3.0})] == ["style", "vocabulary"]


def test_differences_name_the_measures_with_their_figures():
    from plagiarism.anomaly import Measures, differences

    own = ["I like tea. We go out. It is late. She ran home. They sat down. He won.",
           "We walk. I read a lot. It rains. They swim. You sing. He cooks.",
           "I sleep. We eat now. It is cold. She reads. They play. He naps."]
    classmates = ["The results, in short, were mixed: some rose and some fell, as expected.",
                  "Tests ran long. Nobody, however, complained about the wait, which was odd.",
                  "Our team met twice; we planned, argued and finally agreed on a date."]
    ornate = ("Although the committee, which had deliberated at length, concluded that the proposal "
              "was sound, it nevertheless recommended, with some reluctance, that the matter be "
              "deferred until the following session, when further evidence would be available.")
    texts = own + classmates + [ornate]
    measures = Measures.of(texts)
    lines = differences(measures, target=6, own=[0, 1, 2], cohort=[3, 4, 5])
    length = next(line for line in lines if line.startswith("Average sentence length"))
    assert length.startswith("Average sentence length: 35.0 words in this text, against 2.5 words on average "
                             "in the student's other texts")
    assert any(line.startswith("Function words used at a different rate") and '"that" 5.7 per 100 words here against 0.0' in line for line in lines)
    # The student's own third text is nothing unusual next to their first two.
    assert differences(measures, target=2, own=[0, 1], cohort=[3, 4, 5]) == []
