"""The AccreditationRegistry contract, its client and its reader, on a real
Anvil and a real Ganache node: windows, withdrawal, reverts, events, listing,
and the verdict a verifier draws for a credential anchored in a real registry."""

from __future__ import annotations

import pytest
from eth_account import Account

from credentials.accreditation import (
    _INSTITUTION_AT,
    AccreditationError,
    AccreditationReader,
    AccreditationRegistry,
    NotAnAccreditationRegistry,
    NotTheAccreditor,
    Policy,
    Window,
    open_accreditation_reader,
    parse_registry_ref,
)
from credentials.chain import ChainError, TransactionReverted, fund_from_dev_account
from credentials.reader import ChainReader
from tests.helpers_credentials import anchor_of, mint

UNI = "did:web:uni.example.edu"
SECOND = "did:web:second.example.edu"


def funded(w3) -> Account:
    account = Account.create()
    assert fund_from_dev_account(w3, account.address)
    return account


@pytest.fixture
def accreditation(any_registry) -> AccreditationRegistry:
    """A fresh AccreditationRegistry, run by a fresh accreditor key, on the
    same chain as a fresh CredentialRegistry (`any_registry`)."""
    registry, _ = AccreditationRegistry.deploy(any_registry.w3, funded(any_registry.w3))
    return registry


@pytest.fixture
def reader(accreditation, any_registry) -> AccreditationReader:
    return AccreditationReader(ChainReader(any_registry.rpc_url), accreditation.address)


def mine(w3, blocks: int = 1) -> None:
    """Move the chain on by `blocks` blocks (one self-transfer each), so that
    windows have blocks inside them on automining nodes."""
    dev = w3.eth.accounts[0]
    for _ in range(blocks):
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": dev, "to": dev, "value": 0}))


def test_a_fresh_registry_lists_nobody(accreditation, reader):
    assert accreditation.owner() == accreditation.accreditor.address
    assert reader.institution_count() == 0
    assert reader.institutions() == []
    assert reader.institution(UNI) is None
    assert reader.accreditation(UNI, accreditation.chain_id, accreditation.address) is None
    reader.require_registry()


def test_accredit_then_readers_name_the_registry(accreditation, reader, any_registry):
    chain_id = any_registry.chain_id
    tx = accreditation.accredit(UNI, "University of Example", any_registry.address)
    found = reader.accreditation(UNI, chain_id, any_registry.address)
    assert found is not None
    assert (found.did, found.name, found.chain_id, found.registry) == (
        UNI, "University of Example", chain_id, any_registry.address)
    assert (found.since_block, found.until_block, found.accredited) == (tx.block_number, None, True)
    assert found.windows == (Window(tx.block_number, None),)
    assert reader.is_accredited(UNI, chain_id, any_registry.address)
    assert accreditation.contract.functions.isAccredited(UNI, chain_id, any_registry.address).call()
    # Another registry, the same registry on another chain, another DID: no.
    stranger = Account.create().address
    assert not reader.is_accredited(UNI, chain_id, stranger)
    assert not reader.is_accredited(UNI, chain_id + 1, any_registry.address)
    assert not reader.is_accredited(SECOND, chain_id, any_registry.address)
    assert not reader.is_accredited(UNI.upper(), chain_id, any_registry.address)  # exact string, hashed


def test_withdraw_keeps_the_window_and_answers_for_each_block(accreditation, reader, any_registry):
    chain_id, address = any_registry.chain_id, any_registry.address
    start = accreditation.accredit(UNI, "University of Example", address).block_number
    mine(any_registry.w3, 2)
    end = accreditation.withdraw(UNI).block_number
    assert end > start + 1
    found = reader.accreditation(UNI, chain_id, address)
    assert found is not None and not found.accredited
    assert (found.since_block, found.until_block) == (start, end)
    assert not reader.is_accredited(UNI, chain_id, address)
    was_at = accreditation.contract.functions.wasAccreditedAt
    for block, expected in [(start - 1, False), (start, True), (start + 1, True), (end - 1, True),
                            (end, False), (end + 100, False)]:
        assert was_at(UNI, chain_id, address, block).call() is expected, block
        assert reader.was_accredited_at(UNI, chain_id, address, block) is expected, block
        assert found.was_accredited_at(block) is expected, block
    with pytest.raises(TransactionReverted, match="institution is not accredited"):
        accreditation.withdraw(UNI)


def test_re_accrediting_opens_a_new_window(accreditation, reader, any_registry):
    chain_id, address = any_registry.chain_id, any_registry.address
    first = accreditation.accredit(UNI, "University of Example", address).block_number
    closed = accreditation.withdraw(UNI).block_number
    mine(any_registry.w3)
    again = accreditation.accredit(UNI, "Example University", address).block_number
    found = reader.accreditation(UNI, chain_id, address)
    assert found.windows == (Window(first, closed), Window(again, None))
    assert (found.since_block, found.until_block, found.accredited) == (again, None, True)
    assert found.name == "Example University"  # accrediting again may rename
    assert reader.was_accredited_at(UNI, chain_id, address, first)
    assert not reader.was_accredited_at(UNI, chain_id, address, again - 1)  # the gap
    assert reader.was_accredited_at(UNI, chain_id, address, again)
    assert reader.institution_count() == 1  # one institution, listed once


def test_only_the_accreditor_changes_anything(accreditation, any_registry):
    stranger = funded(any_registry.w3)
    functions = accreditation.contract.functions
    calls = [functions.accredit(UNI, "Fake", any_registry.chain_id, any_registry.address),
             functions.withdraw(UNI), functions.rename(UNI, "Fake"),
             functions.withdrawRegistry(UNI, any_registry.chain_id, any_registry.address),
             functions.transferOwnership(stranger.address)]
    for fn in calls:
        with pytest.raises(TransactionReverted, match="^AccreditationRegistry: caller is not the accreditor$"):
            accreditation.transactor.send(stranger, fn)
    # Through the client, a wrong key is a sentence naming both keys, before anything is sent.
    impostor = AccreditationRegistry(any_registry.w3, accreditation.address, stranger)
    with pytest.raises(NotTheAccreditor, match=f"{stranger.address}.*is not the accreditor.*"
                                               f"{accreditation.accreditor.address}.*ATTEST_ACCREDITOR_KEY"):
        impostor.accredit(UNI, "Fake", any_registry.address)
    assert AccreditationReader(ChainReader(any_registry.rpc_url), accreditation.address).institution(UNI) is None


def test_bad_input_reverts_with_the_reason(accreditation, any_registry):
    address = any_registry.address
    cases = [
        (lambda: accreditation.accredit("uni.example.edu", "U", address), "a DID starts with did:"),
        (lambda: accreditation.accredit("did:" + "x" * 253, "U", address), "DID is longer than 256 bytes"),
        (lambda: accreditation.accredit(UNI, "", address), "a name is required"),
        (lambda: accreditation.accredit(UNI, "n" * 257, address), "name is longer than 256 bytes"),
        (lambda: accreditation.accredit(UNI, "U", "0x" + "00" * 20), "registry is the zero address"),
        (lambda: accreditation.accredit(UNI, "U", address, chain_id=0), "chain id is zero"),
        (lambda: accreditation.accredit(UNI, "U", Account.create().address),
         "no contract at the registry address on this chain"),
        (lambda: accreditation.rename(UNI, "U"), "institution is not listed"),
        (lambda: accreditation.withdraw_registry(UNI, address), "not accredited with this registry"),
    ]
    for call, reason in cases:
        with pytest.raises(TransactionReverted, match=reason):
            call()
    accreditation.accredit(UNI, "U", address)
    with pytest.raises(TransactionReverted, match="already accredited with this registry"):
        accreditation.accredit(UNI, "U", address)
    with pytest.raises(TransactionReverted, match="name is unchanged"):
        accreditation.rename(UNI, "U")


def test_one_event_per_change(accreditation, any_registry):
    address, chain_id = any_registry.address, any_registry.chain_id
    elsewhere = Account.create().address  # a registry on another chain is taken on trust

    tx = accreditation.accredit(UNI, "University of Example", address)
    (event,) = accreditation.events(tx)
    assert event["event"] == "Accredited"
    assert (event["did"], event["name"], event["chainId"], event["registry"], event["sinceBlock"]) == (
        UNI, "University of Example", chain_id, address, tx.block_number)
    assert event["didHash"] == bytes(any_registry.w3.keccak(text=UNI))

    tx = accreditation.accredit(UNI, "University of Example", elsewhere, chain_id=10)
    assert [e["event"] for e in accreditation.events(tx)] == ["Accredited"]

    tx = accreditation.rename(UNI, "Example University")
    (event,) = accreditation.events(tx)
    assert (event["event"], event["name"]) == ("InstitutionRenamed", "Example University")

    # De-accrediting closes two windows: two changes, two events.
    tx = accreditation.withdraw(UNI)
    events = accreditation.events(tx)
    assert [(e["event"], e["chainId"], e["registry"], e["untilBlock"]) for e in events] == [
        ("AccreditationWithdrawn", chain_id, address, tx.block_number),
        ("AccreditationWithdrawn", 10, elsewhere, tx.block_number)]

    new_accreditor = funded(any_registry.w3)
    tx = accreditation.transfer_accreditor(new_accreditor.address)
    (event,) = accreditation.events(tx)
    assert (event["event"], event["newOwner"]) == ("OwnershipTransferred", new_accreditor.address)

    # The whole history, from the logs alone: deployment, then one log per change above.
    logs = any_registry.w3.eth.get_logs({"address": accreditation.address, "fromBlock": 0, "toBlock": "latest"})
    assert len(logs) == 1 + 1 + 1 + 1 + 2 + 1


def test_several_registries_and_withdrawing_one(accreditation, reader, any_registry):
    chain_id = any_registry.chain_id
    old, new = any_registry.address, Account.create().address
    accreditation.accredit(UNI, "University of Example", old)
    accreditation.accredit(UNI, "University of Example", new, chain_id=8453)  # another chain
    assert reader.is_accredited(UNI, chain_id, old) and reader.is_accredited(UNI, 8453, new)
    until = accreditation.withdraw_registry(UNI, old).block_number
    institution = reader.institution(UNI)
    assert institution.accredited  # still, through its other registry
    assert institution.accreditation_for(chain_id, old).until_block == until
    assert institution.accreditation_for(8453, new).accredited
    assert [a.registry for a in institution.accreditations] == [old, new]
    accreditation.withdraw(UNI)
    assert not reader.institution(UNI).accredited


def test_enumeration_lists_every_institution_once_in_order(accreditation, reader, any_registry):
    address = any_registry.address
    dids = [f"did:web:uni{i}.example.edu" for i in range(3)]
    for i, did in enumerate(dids):
        accreditation.accredit(did, f"University {i}", address)
    accreditation.withdraw(dids[1])
    accreditation.accredit(dids[1], "University 1", address)  # back again: still listed once
    accreditation.withdraw(dids[2])
    listed = reader.institutions()
    assert [i.did for i in listed] == dids
    assert [i.accredited for i in listed] == [True, True, False]  # withdrawn ones are listed too
    assert reader.institution_count() == 3
    assert len(listed[1].accreditations[0].windows) == 2
    # Out of range is a revert on both nodes (Ganache raises for a reverting eth_call too).
    with pytest.raises(ChainError, match="index is out of range"):
        reader._call(_INSTITUTION_AT, ["uint256"], [3], ["string"])


def test_transferred_accreditor_takes_over(accreditation, any_registry):
    successor = funded(any_registry.w3)
    accreditation.transfer_accreditor(successor.address)
    with pytest.raises(NotTheAccreditor):
        accreditation.accredit(UNI, "University of Example", any_registry.address)
    taken_over = AccreditationRegistry(any_registry.w3, accreditation.address, successor)
    taken_over.accredit(UNI, "University of Example", any_registry.address)
    assert taken_over.owner() == successor.address
    with pytest.raises(TransactionReverted, match="new accreditor is the zero address"):
        taken_over.transfer_accreditor("0x" + "00" * 20)


def test_the_reader_knows_an_accreditation_registry_from_anything_else(accreditation, any_registry):
    chain = ChainReader(any_registry.rpc_url)
    with pytest.raises(NotAnAccreditationRegistry, match="is not an AccreditationRegistry"):
        AccreditationReader(chain, any_registry.address).institution(UNI)  # a CredentialRegistry
    with pytest.raises(NotAnAccreditationRegistry, match="there is no contract at"):
        AccreditationReader(chain, Account.create().address).institution(UNI)
    with pytest.raises(NotAnAccreditationRegistry, match="is not an AccreditationRegistry"):
        AccreditationRegistry(any_registry.w3, any_registry.address)


def test_a_window_still_open_is_never_cached(accreditation, reader, any_registry):
    """An open window covers future blocks until a withdrawal closes it: an answer
    about a block not mined yet must be asked again, an answer about a mined one is kept."""
    chain_id, address, w3 = any_registry.chain_id, any_registry.address, any_registry.w3
    start = accreditation.accredit(UNI, "University of Example", address).block_number
    future = w3.eth.block_number + 3
    assert reader.was_accredited_at(UNI, chain_id, address, future)
    assert reader.was_accredited_at(UNI, chain_id, address, start)
    assert reader.is_accredited(UNI, chain_id, address)
    end = accreditation.withdraw(UNI).block_number
    assert end <= future
    assert not reader.was_accredited_at(UNI, chain_id, address, future)
    assert not reader.is_accredited(UNI, chain_id, address)
    assert reader.was_accredited_at(UNI, chain_id, address, start)  # the past stays


def test_a_credential_from_a_second_institution_passes_until_it_is_de_accredited(accreditation, reader,
                                                                                 any_registry, tmp_path):
    """The verifier's question, on a real anchored credential: its anchor proof names
    the chain and CredentialRegistry, the chain says at which block its root was anchored."""
    from credentials.chain import open_registry
    from kernel.settings import Settings

    with open_registry(Settings.from_env(data_dir=tmp_path / "second", rpc_url=any_registry.rpc_url)) as second:
        accreditation.accredit(SECOND, "Second University", second.address)
        (doc,) = mint(second, issuer_name="Second University")
    anchor = anchor_of(doc)["anchor"]
    record = ChainReader(any_registry.rpc_url).registry(anchor["registry"]).anchor_of(
        bytes.fromhex(anchor["merkleRoot"][2:]))
    assert record is not None

    def verdict(policy=Policy.CURRENT):
        return reader.judge(SECOND, anchor["chainId"], anchor["registry"], record.block_number, policy)

    for policy in Policy:
        assert verdict(policy).trusted, verdict(policy).message
    assert verdict().message.startswith(f"{SECOND} (Second University) is accredited by")
    assert verdict().accreditation.registry == anchor["registry"]
    # The first institution's registry is not the second's: a credential claiming
    # SECOND but anchored there is not vouched for.
    wrong = reader.judge(SECOND, anchor["chainId"], any_registry.address, record.block_number)
    assert not wrong.trusted and "but not with registry" in wrong.message
    assert not reader.judge(UNI, anchor["chainId"], anchor["registry"], record.block_number).trusted

    until = accreditation.withdraw(SECOND).block_number
    assert not verdict().trusted
    assert f"until block {until}, when the accreditation was withdrawn" in verdict().message
    assert not verdict(Policy.CURRENT_AND_WHEN_ANCHORED).trusted
    # Only a verifier that holds "accredited when awarded" keeps trusting it.
    assert verdict(Policy.WHEN_ANCHORED).trusted
    assert "while accredited" in verdict(Policy.WHEN_ANCHORED).message


def test_anchored_before_accreditation(accreditation, reader, any_registry):
    (doc,) = mint(any_registry)
    anchor = anchor_of(doc)["anchor"]
    block = ChainReader(any_registry.rpc_url).registry(anchor["registry"]).anchor_of(
        bytes.fromhex(anchor["merkleRoot"][2:])).block_number
    accreditation.accredit(UNI, "University of Example", any_registry.address)
    args = (UNI, anchor["chainId"], anchor["registry"], block)
    assert reader.judge(*args).trusted  # the default asks about now
    later = reader.judge(*args, policy=Policy.CURRENT_AND_WHEN_ANCHORED)
    assert not later.trusted and "when it was not accredited" in later.message
    assert not reader.judge(*args, policy="when-anchored").trusted


def test_open_reader_checks_the_chain_id(accreditation, any_registry):
    ref = f"{any_registry.chain_id}:{accreditation.address}"
    reader = open_accreditation_reader(any_registry.rpc_url, ref)
    assert reader.address == accreditation.address
    assert open_accreditation_reader(any_registry.rpc_url, accreditation.address.lower()).address == reader.address
    with pytest.raises(AccreditationError, match=f"is on chain 5, but the node at .* is chain {any_registry.chain_id}"):
        open_accreditation_reader(any_registry.rpc_url, f"5:{accreditation.address}")
    with pytest.raises(NotAnAccreditationRegistry):
        open_accreditation_reader(any_registry.rpc_url, any_registry.address)


def test_gas_of_each_change(accreditation, any_registry):
    """Accrediting is rare (an agency's decision), so its cost matters little, but it
    must stay bounded: a handful of storage slots for a short DID and name."""
    address = any_registry.address
    gas = {
        "accredit (first)": accreditation.accredit(UNI, "University of Example", address).gas_used,
        "accredit (second registry)": accreditation.accredit(UNI, "University of Example", Account.create().address,
                                                             chain_id=10).gas_used,
        "rename": accreditation.rename(UNI, "Example University").gas_used,
        "withdraw (2 registries)": accreditation.withdraw(UNI).gas_used,
        "accredit (again)": accreditation.accredit(UNI, "Example University", address).gas_used,
        "withdraw (1 registry)": accreditation.withdraw(UNI).gas_used,
    }
    print(gas)
    assert gas["accredit (first)"] <= 250_000, gas
    assert gas["accredit (again)"] <= 80_000, gas
    assert gas["withdraw (1 registry)"] <= 60_000, gas
    assert gas["withdraw (2 registries)"] <= 90_000, gas


@pytest.mark.parametrize(("text", "chain_id"), [
    ("0x" + "ab" * 20, None), ("31337:0x" + "ab" * 20, 31337), (" 1:0x" + "AB" * 20 + " ", 1)])
def test_registry_refs(text, chain_id):
    ref = parse_registry_ref(text)
    assert ref.chain_id == chain_id and ref.address.lower() == "0x" + "ab" * 20
    assert str(parse_registry_ref(str(ref))) == str(ref)


@pytest.mark.parametrize(("text", "reason"), [
    ("0x1234", "does not name an address"), ("x:0x" + "ab" * 20, "is not a chain id"),
    ("0:0x" + "ab" * 20, "is not a chain id"), ("", "does not name an address")])
def test_bad_registry_refs_say_what_is_wrong(text, reason):
    with pytest.raises(AccreditationError, match=reason):
        parse_registry_ref(text)


def test_did_length_limit_is_in_bytes(accreditation, any_registry):
    did = "did:web:" + "é" * 124  # 8 + 248 bytes = 256: the limit, exactly
    accreditation.accredit(did, "Université", any_registry.address)
    with pytest.raises(TransactionReverted, match="DID is longer than 256 bytes"):
        accreditation.accredit(did + "x", "U", any_registry.address)


def test_a_registry_on_another_chain_is_judged_by_current_accreditation_only(accreditation, reader):
    """Windows count the accreditation chain's blocks: an anchor block of another
    chain cannot be placed in them, and the verdict says so instead of guessing."""
    elsewhere = Account.create().address
    accreditation.accredit(UNI, "University of Example", elsewhere, chain_id=8453)
    current = reader.judge(UNI, 8453, elsewhere, 10**9)
    assert current.trusted and "since block" in current.message and "anchored" not in current.message
    for policy in (Policy.WHEN_ANCHORED, Policy.CURRENT_AND_WHEN_ANCHORED):
        verdict = reader.judge(UNI, 8453, elsewhere, 1, policy)
        assert not verdict.trusted and "anchored on chain 8453" in verdict.message
    accreditation.withdraw(UNI)
    assert not reader.judge(UNI, 8453, elsewhere, 10**9).trusted
