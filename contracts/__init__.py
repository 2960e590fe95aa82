"""The contracts: CredentialRegistry (an institution's anchors, issuers and
revocations) and AccreditationRegistry (an accreditor's list of institutions),
their Solidity sources, the committed compiled artifacts, and the compile step
(py-solc-x driving solc-js).

`load_artifact(name)` is what the rest of the code uses; it never compiles.
"""

from contracts.artifact import ARTIFACT_PATH, CONTRACT_NAMES, SOURCE_PATH, artifact_path, load_artifact

__all__ = ["ARTIFACT_PATH", "CONTRACT_NAMES", "SOURCE_PATH", "artifact_path", "load_artifact"]
