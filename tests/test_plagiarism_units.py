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


# ---------------------------------------------------------------------------- corroborated evidence

def test_structure_ngrams_survive_synonym_swaps_but_not_same_topic_rewording():
    import numpy as np

    from plagiarism.nearduplicate import Cohort, Config, prepare, skeleton_keys

    source = ("The reef was bleached by the warm water of the summer, and most of the corals in the "
              "shallow lagoon died within a few weeks of the heat.")
    swapped = ("The shoal was whitened by the hot sea of the season, and most of the polyps in the "
               "shallow basin perished within a few months of the warmth.")
    same_topic = ("Warm summers bleach corals: heat stress kills shallow lagoon corals quickly, "
                  "often within weeks.")
    texts = [prepare("a", swapped), prepare("b", same_topic), prepare("src", source, "source")]
    cohort = Cohort.of(texts, Config())
    a, b, src = texts
    assert cohort.shared_structure(a, (0, len(a.norm)), src, (0, len(src.norm))) >= 5
    assert cohort.shared_structure(b, (0, len(b.norm)), src, (0, len(src.norm))) == 0
    # Grams need two function words and two masked words: "of the of the ..." alone is no evidence.
    _, usable = skeleton_keys("of the of the of the of the of the of".split(), np.ones(11, bool), 9)
    assert not usable.any()


def test_a_meaning_match_alone_never_counts():
    from plagiarism.nearduplicate import Config, accept_lead

    cfg = Config()
    assert not accept_lead({"meaning": 0.99}, cfg)
    assert not accept_lead({"meaning": 0.99, "stands_out": cfg.margin}, cfg)  # calibration below margin_alone
    assert accept_lead({"meaning": 0.99, "rare_words": ["zooxanthellae"] * cfg.rare_min_words}, cfg)
    # Below sim_strong it takes `corroboration` pieces of evidence.
    weak = {"meaning": cfg.sim_strong - 0.05, "structure": 2}
    assert accept_lead(weak, cfg) == (cfg.corroboration <= 1)
    assert accept_lead({**weak, "shared_run": cfg.lead_run_words, "aligned": 3}, cfg)
    # Class calibration: a pair no closer than other students' answers is refused whatever else it has.
    assert not accept_lead({"meaning": 0.99, "structure": 4, "shared_run": 30, "stands_out": cfg.margin_floor - 0.01},
                           cfg)
    assert accept_lead({"meaning": 0.8, "stands_out": cfg.margin_alone}, cfg)


def test_a_short_stock_phrase_does_not_count_but_a_long_run_or_an_uncommon_word_does():
    from plagiarism.nearduplicate import Config, accept_run

    cfg = Config()
    assert not accept_run(cfg.min_run_words, [], cfg)             # "bayes theorem can be used to calculate the"
    assert not accept_run(cfg.min_run_words - 1, ["zooxanthellae"], cfg)
    assert accept_run(cfg.min_run_words, ["zooxanthellae"], cfg)
    assert accept_run(cfg.long_run_words, [], cfg)


def test_uncommon_words_are_rare_in_english_and_in_the_class():
    from plagiarism.nearduplicate import Cohort, Config, prepare

    class_texts = [prepare(f"s{i}.txt", f"Student {i} thinks zooxanthellae matter and reefs suffer in @CAPS1 "
                                         f"{1970 + i} while photosynthesis slows.") for i in range(10)]
    copy = prepare("copy.txt", "The peculiar symbiodinium expel themselves when 1998 heat arrives, a copy.")
    source = prepare("src.txt", "When 1998 heat arrives, the peculiar symbiodinium expel themselves.", "source")
    cohort = Cohort.of([*class_texts, copy, source], Config())
    assert cohort.is_rare("symbiodinium", "symbiodinium")             # rare in English, two texts
    assert cohort.is_rare("1998", "1998")                              # a number two texts share
    assert not cohort.is_rare("zooxanthellae", "zooxanthellae")        # rare in English, but every student has it
    assert not cohort.is_rare("caps1", "caps1")                        # an anonymisation code is no word
    assert not cohort.is_rare("heat", "heat")                          # common English
    shared = cohort.rare_shared(copy, (0, len(copy.norm)), source, (0, len(source.norm)))
    assert {"1998", "symbiodinium"} <= set(shared) and "heat" not in shared


def test_wording_many_submissions_share_is_common_material():
    from plagiarism.nearduplicate import Config

    stock = "the central limit theorem says that the mean of many samples is normal"
    subs = {f"s{i}.txt": f"Answer {i}. {stock} which is useful. My own words number {i} follow here." for i in range(8)}
    copied = ("Sampling from a skewed population, the averages pile up in a bell shape as the samples grow, "
              "which is why the survey used two hundred households in each of the nine districts.")
    subs["s0.txt"] += " " + copied
    subs["s1.txt"] += " " + copied
    result = scan(subs, params=Config(use_embeddings=False))
    reports = {r.submission: r for r in result.reports}
    for name in ("s2.txt", "s3.txt", "s7.txt"):
        assert reports[name].matches == [] and reports[name].score == 0.0
    assert reports["s0.txt"].flagged and {m.source for m in reports["s0.txt"].matches} == {"s1.txt"}
    span = reports["s0.txt"].matches[0].submission_span
    assert stock not in subs["s0.txt"][span[0]:span[1]].lower()


def test_same_meaning_everywhere_without_corroboration_is_not_flagged():
    """An encoder that puts every sentence at the same point (cosine 1.0 for every pair): the
    extreme of same-prompt answers being close in embedding space.  Nothing else is shared, so
    nothing may be flagged; a real copy among them still is."""
    import numpy as np

    def same_everywhere(texts):
        return np.tile(np.eye(1, 384, dtype=np.float32), (len(texts), 1))

    subs = {"a.txt": ESSAY, "b.txt": OTHER,
            "c.txt": "People who live nearby depend on such places for food and work, and both are in danger now."}
    result = scan(subs, encode=same_everywhere)
    assert not any(r.flagged for r in result.reports), [r.as_dict() for r in result.reports]
    copied = ("Warm water makes corals expel the algae living in their tissues, and without them the "
              "coral turns white and starts to starve within weeks.")
    subs["d.txt"] = "My view is that fishing villages will adapt if they are helped early. " + copied
    result = scan(subs, {"src.txt": copied + " Scientists have measured this in many places."},
                  encode=same_everywhere)
    flagged = {r.submission for r in result.reports if r.flagged}
    assert flagged == {"d.txt"}


def test_score_is_the_share_of_countable_text_in_corroborated_passages():
    copied = ("Warm water makes corals expel the algae living in their tissues, and without them the "
              "coral turns white and starts to starve within weeks.")
    submission = OTHER + copied
    report = scan({"s.txt": submission}, {"src.txt": ESSAY + copied}, params=Params(use_embeddings=False)).reports[0]
    (match,) = report.matches
    chars_in = sum(e - s for s, e, _ in words(submission) if match.submission_span[0] <= s < match.submission_span[1])
    chars_all = sum(e - s for s, e, _ in words(submission))
    assert abs(report.score - chars_in / chars_all) < 1e-9
    assert report.evidence["coverage"] == report.score and set(report.evidence) == {"coverage", "confidence", "passages"}
    # Strength is shown apart from the score, and every reason names its evidence.
    assert 0 < report.confidence <= 1 and report.confidence == match.confidence
    assert match.evidence["shared_run"] >= 20 and any("words in a row" in r for r in match.reasons)


def test_every_signal_is_described_and_confidence_grows_with_evidence():
    from plagiarism import evidence

    names = {s["name"] for s in evidence.describe()}
    assert names == {"shared_run", "rare_words", "structure", "aligned", "meaning", "stands_out"}
    assert {s["name"] for s in evidence.describe() if not s["corroborates"]} == {"meaning", "stands_out"}
    weak = evidence.confidence({"meaning": 0.8})
    strong = evidence.confidence({"meaning": 0.8, "rare_words": ["symbiodinium", "1998"], "shared_run": 12})
    assert 0 < weak < strong < 1
    assert evidence.reasons({"rare_words": ["symbiodinium"]}) == [
        "Both passages use uncommon words that other students did not: “symbiodinium”."]


def test_config_is_checked_once_when_made():
    import pytest

    from plagiarism.nearduplicate import Config

    with pytest.raises(ValueError, match="sim_min"):
        Config(sim_min=1.5)
    with pytest.raises(ValueError, match="min_run_words"):
        Config(min_run_words=3)
    assert Params is Config


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
