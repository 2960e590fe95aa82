"""The institution's methods (its DID, signing address, registry, Ed25519 keys)
are recorded once, however many first batches record them at the same time."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from credentials import identity
from credentials.identity import InstitutionMethod

DID = "did:web:uni.example.edu"


def test_first_batches_at_once_record_the_did_once(database):
    """Found by test_three_concurrent_issuers_on_one_key_never_collide: 1 run
    in 60 failed on the unique constraint, because two first batches both
    looked, found the DID missing, and both inserted it. Here four sessions
    are held between the look and the insert until all four have looked."""
    sessions = 4
    barrier = threading.Barrier(sessions, timeout=30)
    errors: list[str] = []
    new: list[bool] = []

    def first_batch() -> None:
        try:
            with database.session() as session:
                look = session.scalar

                def look_then_wait(*args, **kwargs):
                    found = look(*args, **kwargs)
                    barrier.wait()  # every session has looked and found nothing
                    return found

                session.scalar = look_then_wait
                new.append(identity.record_method(session, identity.DID, DID))
                session.commit()
        except Exception as exc:  # noqa: BLE001 - the test reports every failure
            errors.append(repr(exc)[:300])

    threads = [threading.Thread(target=first_batch) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert new.count(True) == 1 and len(new) == sessions
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(InstitutionMethod)) == 1
        assert identity.record_method(session, identity.DID, DID) is False


def test_recording_twice_in_one_session_keeps_one_row(database):
    with database.session() as session:
        assert identity.record_method(session, identity.ED25519, "z6MkX", label=f"{DID}#z6MkX") is True
        assert identity.record_method(session, identity.ED25519, "z6MkX", label=f"{DID}#z6MkX") is False
        session.commit()
        row = session.scalar(select(InstitutionMethod))
        assert (row.kind, row.value, row.label, row.chain_id) == (identity.ED25519, "z6MkX", f"{DID}#z6MkX", 0)
        assert row.added_at is not None
