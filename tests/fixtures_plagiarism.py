"""Shared fixtures for the detection-core tests: the real embedding model (loaded once
per session) and hand-written texts of an assignment on coral bleaching."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedder():
    """The offline all-MiniLM-L6-v2 embedder (process-wide; loaded once per test session)."""
    from plagiarism.embedding import get_embedder

    return get_embedder()


@pytest.fixture(scope="session")
def encode(embedder):
    """The embedder's encode function, as the detectors take it."""
    return embedder.encode


# --------------------------------------------------------------------------- texts

SOURCE = (
    "Coral bleaching happens when corals under stress expel the symbiotic algae, called "
    "zooxanthellae, that live inside their tissues. These algae supply the coral with most of its "
    "energy through photosynthesis and give it its colour. When the water becomes too warm for "
    "several weeks, the partnership breaks down and the coral turns white. A bleached coral is not "
    "yet dead, but it is starving, and if temperatures stay high for too long it will die. Mass "
    "bleaching events have become far more frequent since the 1980s, driven mainly by rising ocean "
    "temperatures. The Great Barrier Reef suffered severe bleaching in 2016, 2017 and 2020, losing "
    "roughly half of its shallow-water corals. Reefs need about ten years to recover from a severe "
    "event, yet the gaps between events are now shorter than that. Local measures such as reducing "
    "runoff and overfishing help reefs recover, but they cannot protect corals from heat stress alone."
)

INTRO = (
    "Coral reefs are among the richest ecosystems on the planet, and this essay looks at why so many "
    "of them are losing their colour. I first became interested in the topic after a snorkelling "
    "trip where large parts of the reef looked pale and empty."
)
CONCLUSION = (
    "In my view the evidence shows that reefs will only survive if countries cut emissions quickly. "
    "Protecting reefs locally still matters, because healthy reefs bounce back faster, but it buys "
    "time rather than solving the problem."
)

COPIED = (
    "Coral bleaching happens when corals under stress expel the symbiotic algae, called "
    "zooxanthellae, that live inside their tissues. These algae supply the coral with most of its "
    "energy through photosynthesis and give it its colour. When the water becomes too warm for "
    "several weeks, the partnership breaks down and the coral turns white. A bleached coral is not "
    "yet dead, but it is starving, and if temperatures stay high for too long it will die."
)
VERBATIM = f"{INTRO}\n\n{COPIED}\n\n{CONCLUSION}\n"

LIGHTLY_EDITED = (
    "Mass bleaching events have become much more common since the 1980s, driven mostly by rising "
    "sea temperatures. The Great Barrier Reef went through severe bleaching in 2016, 2017 and 2020, "
    "losing around half of its shallow-water corals. Reefs need roughly ten years to recover from a "
    "severe event, but the gaps between events are now shorter than that."
)
LIGHT_EDIT = f"{INTRO}\n\n{LIGHTLY_EDITED}\n\n{CONCLUSION}\n"

PARAPHRASED = (
    "When a coral is put under stress, it pushes out the tiny algae known as zooxanthellae that "
    "normally inhabit its tissue. By photosynthesising, those algae provide the coral with the bulk "
    "of its food, and they are also what makes it colourful. If the sea stays unusually hot for a "
    "number of weeks, this relationship falls apart and the coral goes pale. At first a bleached "
    "coral is still alive, although it is effectively starving, and it perishes if the heat lasts "
    "too long."
)
HEAVY_PARAPHRASE = f"{INTRO}\n\n{PARAPHRASED}\n\n{CONCLUSION}\n"

INDEPENDENT_A = (
    "Why are reefs turning white? The short answer is heat. Each summer now brings marine heatwaves "
    "that last longer than they did when my parents were young, and reef-building animals are very "
    "sensitive to even one or two degrees of extra warmth.\n\n"
    "I interviewed a diver who has worked around Okinawa for twenty years. She told me that after "
    "the 1998 El Nino she saw whole fields of staghorn coral die, and that some bays never came "
    "back. Others recovered within a decade, mostly those far from towns and farms.\n\n"
    "Acidification is a second threat that people talk about less. As the ocean absorbs carbon "
    "dioxide, it becomes harder for corals to build their skeletons, so even reefs that escape a "
    "heatwave grow more slowly. Together these pressures make me pessimistic, although coral "
    "gardening projects give some reason for hope."
)
INDEPENDENT_B = (
    "Bleaching is a stress response. A reef is a partnership between an animal and the microscopic "
    "plants inside it, and when the ocean warms beyond what the animal can tolerate, the plants "
    "leave and the skeleton shows through.\n\n"
    "My group looked at satellite records of sea-surface temperature for the Caribbean. Spikes in "
    "temperature lined up closely with the years in which reef surveys reported bleaching, which "
    "supports the idea that warming is the main driver. Pollution from sewage and sediment made "
    "things worse near the coast.\n\n"
    "What should be done? Marine parks and better water treatment are useful, but the real fix is "
    "cutting greenhouse gases. Without that, scientists expect most reefs to bleach every year by "
    "the middle of the century."
)

QUOTED = (
    f"{INTRO}\n\nOne reading explains that \"a bleached coral is not yet dead, but it is starving, "
    "and if temperatures stay high for too long it will die.\" I think this is the key point, "
    "because it means there is a window in which a reef can still be saved.\n\n"
    "> Coral bleaching happens when corals under stress expel the symbiotic algae, called "
    "zooxanthellae, that live inside their tissues.\n\n"
    f"{CONCLUSION}\n\nReferences\n\n"
    "Reef Institute (2021). Coral bleaching happens when corals under stress expel the symbiotic "
    "algae: a guide to reef health. Townsville: Reef Press.\n"
)


def docx_bytes(paragraphs: list[str]) -> bytes:
    """A .docx file holding `paragraphs`, made with python-docx, as an upload would arrive."""
    import io

    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
