"""Gas of each AccreditationRegistry change, and the verifier's read cost.

    .venv/bin/python bench/bench_accreditation.py [--reads 2000]

Starts a throw-away embedded Anvil node in a temp data dir, deploys a
CredentialRegistry (the peer: its issuer windows are the same pattern) and an
AccreditationRegistry, and prints the gas of deployment and of every change,
beside CredentialRegistry's authorizeIssuer/deauthorizeIssuer. Then times the
verifier's question (`AccreditationReader.judge`, one uncached eth_call) on
one thread. Also writes bench/results/bench_accreditation.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from eth_account import Account  # noqa: E402

from credentials.accreditation import AccreditationReader, AccreditationRegistry  # noqa: E402
from credentials.chain import fund_from_dev_account, open_registry  # noqa: E402
from credentials.reader import ChainReader  # noqa: E402
from kernel.settings import Settings  # noqa: E402


def deployment_gas(w3, block_number: int) -> int:
    """Gas of the one transaction in `block_number` (Anvil automines one per block)."""
    (tx_hash,) = w3.eth.get_block(block_number)["transactions"]
    return w3.eth.get_transaction_receipt(tx_hash)["gasUsed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    os.environ.pop("ATTEST_RPC_URL", None)
    with tempfile.TemporaryDirectory() as tmp, open_registry(Settings.from_env(data_dir=Path(tmp))) as reg:
        w3 = reg.w3
        accreditor = Account.create()
        fund_from_dev_account(w3, accreditor.address)
        acc, block = AccreditationRegistry.deploy(w3, accreditor)
        did, name, long_did = "did:web:uni.example.edu", "University of Example", "did:web:" + "a" * 52 + ".edu"
        elsewhere = Account.create().address
        gas = {
            "deploy AccreditationRegistry": deployment_gas(w3, block),
            "deploy CredentialRegistry (peer)": deployment_gas(w3, reg.deployed_block or 0),
            f"accredit, first time ({len(did)}-byte DID, {len(name)}-byte name)": acc.accredit(
                did, name, reg.address).gas_used,
            f"accredit, first time ({len(long_did)}-byte DID)": acc.accredit(long_did, name, reg.address).gas_used,
            "accredit a second registry": acc.accredit(did, name, elsewhere, chain_id=10).gas_used,
            "rename": acc.rename(did, "Example University").gas_used,
            "withdraw (closes 2 registries)": acc.withdraw(did).gas_used,
            "accredit again (new window)": acc.accredit(did, "Example University", reg.address).gas_used,
            "withdrawRegistry (1 registry)": acc.withdraw_registry(did, reg.address).gas_used,
            "withdraw (closes 1 registry)": acc.withdraw(long_did).gas_used,
        }
        issuer = Account.create().address
        gas["peer: CredentialRegistry.authorizeIssuer"] = reg.authorize_issuer(issuer).gas_used
        gas["peer: CredentialRegistry.deauthorizeIssuer"] = reg.deauthorize_issuer(issuer).gas_used

        acc.accredit(did, "Example University", reg.address)
        chain = ChainReader(reg.rpc_url)
        reader = AccreditationReader(chain, acc.address)
        revocations = chain.registry(reg.address)
        fingerprint = os.urandom(32)
        reads = {
            "AccreditationReader.judge (one eth_call)": lambda: reader.judge(did, reg.chain_id, reg.address, 1),
            "peer: RegistryView.revocation_of (one eth_call)": lambda: revocations.revocation_of(fingerprint),
        }
        timings = {}
        for label, read in reads.items():
            read()  # warm: code check, connection
            t0 = time.perf_counter()
            for _ in range(args.reads):
                read()
            timings[label] = (time.perf_counter() - t0) / args.reads
        assert reader.judge(did, reg.chain_id, reg.address, 1).trusted
    width = max(len(k) for k in [*gas, *timings])
    lines = [f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
             f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"]
    lines += [f"{k.ljust(width)}  {v:>9,} gas" for k, v in gas.items()]
    lines += [f"{k.ljust(width)}  {v * 1e6:>9,.0f} us, one thread, uncached" for k, v in timings.items()]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).resolve().parent / "results" / "bench_accreditation.txt"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
