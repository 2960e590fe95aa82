"""The credentials domain, scripted: `flask --app app chain|credentials|institution|trust|accreditation`.

    groups         the `chain` group (status, deploy, up) and the `credentials` group
    issue          credentials issue, revoke, resume, export, list, batches
    verify         credentials verify, validate
    trust          institution show|set, trust list|add|remove|export
    accreditation  accreditation deploy|accredit|withdraw|rename|list|show

Each module parses its options, calls one domain function and prints JSON.
"""

from credentials.cli import issue, verify  # noqa: F401 - they attach their commands to credentials_cli
from credentials.cli.accreditation import accreditation_cli
from credentials.cli.groups import chain_cli, credentials_cli
from credentials.cli.trust import institution_cli, trust_cli

__all__ = ["accreditation_cli", "chain_cli", "credentials_cli", "institution_cli", "trust_cli"]
