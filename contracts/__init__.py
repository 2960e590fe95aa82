"""The CredentialRegistry contract: its Solidity source, the committed compiled
artifact, and the compile step (py-solc-x driving solc-js).

`load_artifact()` is what the rest of the code uses; it never compiles.
"""

from contracts.artifact import ARTIFACT_PATH, SOURCE_PATH, load_artifact

__all__ = ["ARTIFACT_PATH", "SOURCE_PATH", "load_artifact"]
