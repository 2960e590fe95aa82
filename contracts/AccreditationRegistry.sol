// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title AccreditationRegistry
/// @notice An accreditor (a national agency, say) lists the institutions it
/// accredits: each institution's DID and name, and the CredentialRegistry
/// contracts (chain id + address) it anchors its credentials in. Every
/// accreditation is a window of block numbers, as CredentialRegistry keeps for
/// issuers, so a verifier can ask "is it accredited now?" and "was it accredited
/// when this root was anchored?" with nothing but an RPC URL.
/// @dev A contract of its own, not an extension of CredentialRegistry: the
/// accreditor is a different party from the institutions, and one accreditor
/// lists many institutions' registries. No personal data is ever written here.
contract AccreditationRegistry {
    /// @dev One accreditation window, in block numbers. `until` is 0 while the
    /// window is open; the registry is accredited for blocks `since <= b < until`.
    struct Window {
        uint64 since;
        uint64 until;
    }

    /// @dev One CredentialRegistry an institution anchors in, and its windows,
    /// oldest first. The chain id and address share one storage slot.
    struct RegistryAccreditation {
        uint64 chainId;
        address registry;
        Window[] windows;
    }

    /// @dev An institution as the accreditor lists it. `did` is empty for a DID
    /// never accredited; an entry, once made, is never deleted (history stays).
    struct Institution {
        string did;
        string name;
        RegistryAccreditation[] registries;
    }

    /// @notice The accreditor: the only account that changes anything here.
    address public owner;

    /// @notice keccak256(bytes(did)) => the institution, its registries and windows.
    mapping(bytes32 => Institution) private _institutions;

    /// @notice keccak256 of every DID ever accredited, in order of first
    /// accreditation: a verifier lists them with eth_call alone, no log scan.
    bytes32[] private _didHashes;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    /// @notice A window opened: `did`, under `name`, is accredited with `registry`
    /// on chain `chainId` from block `sinceBlock` on.
    event Accredited(
        bytes32 indexed didHash, string did, string name, uint64 chainId, address indexed registry, uint256 sinceBlock
    );
    /// @notice A window closed: from block `untilBlock` on, `did` is no longer
    /// accredited with `registry` on chain `chainId`.
    event AccreditationWithdrawn(
        bytes32 indexed didHash, string did, uint64 chainId, address indexed registry, uint256 untilBlock
    );
    event InstitutionRenamed(bytes32 indexed didHash, string did, string name);

    modifier onlyOwner() {
        require(msg.sender == owner, "AccreditationRegistry: caller is not the accreditor");
        _;
    }

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "AccreditationRegistry: new accreditor is the zero address");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    // ----- changes ---------------------------------------------------------

    /// @notice Accredit `did`, under `name`, with the CredentialRegistry at
    /// `registry` on chain `chainId`: opens a window from this block. An
    /// institution may have several registries; `name` replaces its name.
    function accredit(string calldata did, string calldata name, uint64 chainId, address registry)
        external
        onlyOwner
    {
        _checkDid(did);
        _checkName(name);
        require(chainId != 0, "AccreditationRegistry: chain id is zero");
        require(registry != address(0), "AccreditationRegistry: registry is the zero address");
        // Only a registry on this chain can be looked at; one elsewhere is taken on trust.
        require(
            chainId != block.chainid || registry.code.length > 0,
            "AccreditationRegistry: there is no contract at the registry address on this chain"
        );
        bytes32 key = keccak256(bytes(did));
        Institution storage inst = _institutions[key];
        if (bytes(inst.did).length == 0) {
            inst.did = did;
            _didHashes.push(key);
        }
        if (keccak256(bytes(inst.name)) != keccak256(bytes(name))) {
            inst.name = name;
        }
        (bool found, uint256 i) = _find(inst, chainId, registry);
        RegistryAccreditation storage ra;
        if (found) {
            ra = inst.registries[i];
            require(!_isOpen(ra), "AccreditationRegistry: already accredited with this registry");
        } else {
            ra = inst.registries.push();
            ra.chainId = chainId;
            ra.registry = registry;
        }
        ra.windows.push(Window(uint64(block.number), 0));
        emit Accredited(key, did, name, chainId, registry, block.number);
    }

    /// @notice De-accredit `did`: close the open window of every registry it has.
    function withdraw(string calldata did) external onlyOwner {
        bytes32 key = keccak256(bytes(did));
        Institution storage inst = _institutions[key];
        uint256 closed = 0;
        for (uint256 i = 0; i < inst.registries.length; i++) {
            RegistryAccreditation storage ra = inst.registries[i];
            if (_isOpen(ra)) {
                _close(key, inst, ra);
                closed++;
            }
        }
        require(closed > 0, "AccreditationRegistry: institution is not accredited");
    }

    /// @notice Close the window of one registry of `did` (a retired or
    /// compromised registry), leaving its other registries accredited.
    function withdrawRegistry(string calldata did, uint64 chainId, address registry) external onlyOwner {
        bytes32 key = keccak256(bytes(did));
        Institution storage inst = _institutions[key];
        (bool found, uint256 i) = _find(inst, chainId, registry);
        require(found && _isOpen(inst.registries[i]), "AccreditationRegistry: not accredited with this registry");
        _close(key, inst, inst.registries[i]);
    }

    /// @notice Change the name under which `did` is listed; windows are untouched.
    function rename(string calldata did, string calldata name) external onlyOwner {
        _checkName(name);
        bytes32 key = keccak256(bytes(did));
        Institution storage inst = _institutions[key];
        require(bytes(inst.did).length > 0, "AccreditationRegistry: institution is not listed");
        require(keccak256(bytes(inst.name)) != keccak256(bytes(name)), "AccreditationRegistry: name is unchanged");
        inst.name = name;
        emit InstitutionRenamed(key, did, name);
    }

    // ----- reads -----------------------------------------------------------

    /// @notice Is `did` accredited now with `registry` on chain `chainId`?
    function isAccredited(string calldata did, uint64 chainId, address registry) external view returns (bool) {
        Institution storage inst = _institutions[keccak256(bytes(did))];
        (bool found, uint256 i) = _find(inst, chainId, registry);
        return found && _isOpen(inst.registries[i]);
    }

    /// @notice Was `did` accredited with `registry` on chain `chainId` in block `blockNumber`?
    function wasAccreditedAt(string calldata did, uint64 chainId, address registry, uint256 blockNumber)
        external
        view
        returns (bool)
    {
        Institution storage inst = _institutions[keccak256(bytes(did))];
        (bool found, uint256 i) = _find(inst, chainId, registry);
        if (!found) {
            return false;
        }
        Window[] storage w = inst.registries[i].windows;
        for (uint256 j = w.length; j > 0; j--) {
            Window storage win = w[j - 1];
            if (blockNumber >= win.since && (win.until == 0 || blockNumber < win.until)) {
                return true;
            }
        }
        return false;
    }

    /// @notice Everything listed for `did`: its DID, name, registries and their
    /// windows. The DID comes back empty when it was never accredited.
    function accreditationOf(string calldata did) external view returns (Institution memory) {
        return _institutions[keccak256(bytes(did))];
    }

    /// @notice How many institutions were ever accredited (withdrawn ones included).
    function institutionCount() external view returns (uint256) {
        return _didHashes.length;
    }

    /// @notice The DID of the `index`-th institution, in order of first accreditation.
    function institutionAt(uint256 index) external view returns (string memory) {
        require(index < _didHashes.length, "AccreditationRegistry: index is out of range");
        return _institutions[_didHashes[index]].did;
    }

    // ----- helpers ---------------------------------------------------------

    function _find(Institution storage inst, uint64 chainId, address registry)
        private
        view
        returns (bool found, uint256 index)
    {
        // An institution has a handful of registries at most, and only the
        // accreditor can add one: a linear scan is bounded by its own choices.
        for (uint256 i = 0; i < inst.registries.length; i++) {
            if (inst.registries[i].registry == registry && inst.registries[i].chainId == chainId) {
                return (true, i);
            }
        }
        return (false, 0);
    }

    function _isOpen(RegistryAccreditation storage ra) private view returns (bool) {
        return ra.windows.length > 0 && ra.windows[ra.windows.length - 1].until == 0;
    }

    function _close(bytes32 key, Institution storage inst, RegistryAccreditation storage ra) private {
        // A window opened and closed in the same block never accredited anything.
        ra.windows[ra.windows.length - 1].until = uint64(block.number);
        emit AccreditationWithdrawn(key, inst.did, ra.chainId, ra.registry, block.number);
    }

    function _checkDid(string calldata did) private pure {
        bytes calldata b = bytes(did);
        require(
            b.length > 4 && b[0] == "d" && b[1] == "i" && b[2] == "d" && b[3] == ":",
            "AccreditationRegistry: a DID starts with did:"
        );
        require(b.length <= 256, "AccreditationRegistry: DID is longer than 256 bytes");
    }

    function _checkName(string calldata name) private pure {
        require(bytes(name).length > 0, "AccreditationRegistry: a name is required");
        require(bytes(name).length <= 256, "AccreditationRegistry: name is longer than 256 bytes");
    }
}
