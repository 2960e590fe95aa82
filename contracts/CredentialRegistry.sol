// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title CredentialRegistry
/// @notice Anchors Merkle roots of credential batches and records revocations.
/// The chain holds hashes only: roots of batches and fingerprints of revoked
/// credentials. No personal data is ever written here.
contract CredentialRegistry {
    /// @dev One authorisation window of an issuer address, in block numbers.
    /// `until` is 0 while the window is open; the address is authorised for
    /// blocks `since <= b < until`.
    struct Window {
        uint64 since;
        uint64 until;
    }

    /// @dev One anchored batch. Packed into a single storage slot so that
    /// anchoring costs one SSTORE whatever the size of the batch.
    struct Anchor {
        address issuer;
        uint32 timestamp;
        uint32 blockNumber;
        uint32 count;
    }

    struct Revocation {
        address revoker;
        uint64 timestamp;
        string reason;
    }

    /// @notice The institution: the only account that authorises issuers.
    address public owner;

    /// @notice Issuer address => its authorisation windows, oldest first.
    mapping(address => Window[]) private _windows;

    /// @notice Merkle root => the batch that anchored it.
    mapping(bytes32 => Anchor) private _anchors;

    /// @notice Credential fingerprint => its revocation.
    mapping(bytes32 => Revocation) private _revocations;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event IssuerAuthorized(address indexed issuer, uint256 sinceBlock);
    event IssuerDeauthorized(address indexed issuer, uint256 untilBlock);
    event RootAnchored(bytes32 indexed root, address indexed issuer, uint256 count);
    event CredentialRevoked(bytes32 indexed fingerprint, address indexed revoker, string reason);

    modifier onlyOwner() {
        require(msg.sender == owner, "CredentialRegistry: caller is not the owner");
        _;
    }

    modifier onlyIssuer() {
        require(isAuthorized(msg.sender), "CredentialRegistry: caller is not an authorised issuer");
        _;
    }

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "CredentialRegistry: new owner is the zero address");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    // ----- issuers -------------------------------------------------------

    function authorizeIssuer(address issuer) external onlyOwner {
        require(issuer != address(0), "CredentialRegistry: issuer is the zero address");
        require(!isAuthorized(issuer), "CredentialRegistry: issuer is already authorised");
        _windows[issuer].push(Window(uint64(block.number), 0));
        emit IssuerAuthorized(issuer, block.number);
    }

    function deauthorizeIssuer(address issuer) external onlyOwner {
        require(isAuthorized(issuer), "CredentialRegistry: issuer is not authorised");
        Window[] storage w = _windows[issuer];
        // A window opened and closed in the same block never authorised anything.
        w[w.length - 1].until = uint64(block.number);
        emit IssuerDeauthorized(issuer, block.number);
    }

    /// @notice Is `issuer` authorised now?
    function isAuthorized(address issuer) public view returns (bool) {
        Window[] storage w = _windows[issuer];
        return w.length > 0 && w[w.length - 1].until == 0;
    }

    /// @notice Was `issuer` authorised in block `blockNumber`?
    function wasAuthorizedAt(address issuer, uint256 blockNumber) public view returns (bool) {
        Window[] storage w = _windows[issuer];
        for (uint256 i = w.length; i > 0; i--) {
            Window storage win = w[i - 1];
            if (blockNumber >= win.since && (win.until == 0 || blockNumber < win.until)) {
                return true;
            }
        }
        return false;
    }

    /// @notice Every authorisation window of `issuer`, as (since, until) block pairs.
    function authorizationWindows(address issuer) external view returns (Window[] memory) {
        return _windows[issuer];
    }

    // ----- batches -------------------------------------------------------

    /// @notice Anchor the Merkle root of a batch of `count` credentials.
    function anchor(bytes32 root, uint32 count) external onlyIssuer {
        require(root != bytes32(0), "CredentialRegistry: root is zero");
        require(count > 0, "CredentialRegistry: count must be positive");
        require(_anchors[root].issuer == address(0), "CredentialRegistry: root is already anchored");
        require(block.number <= type(uint32).max, "CredentialRegistry: block number overflows the record");
        _anchors[root] = Anchor(msg.sender, uint32(block.timestamp), uint32(block.number), count);
        emit RootAnchored(root, msg.sender, count);
    }

    /// @notice Who anchored `root`, when and how many credentials it holds;
    /// issuer is the zero address when the root was never anchored.
    function anchorOf(bytes32 root)
        external
        view
        returns (address issuer, uint256 timestamp, uint256 blockNumber, uint256 count)
    {
        Anchor storage a = _anchors[root];
        return (a.issuer, a.timestamp, a.blockNumber, a.count);
    }

    // ----- revocation ----------------------------------------------------

    /// @notice Revoke the credential whose fingerprint is `fingerprint`.
    /// The reason is public and permanent: write no personal data in it.
    function revoke(bytes32 fingerprint, string calldata reason) external onlyIssuer {
        require(fingerprint != bytes32(0), "CredentialRegistry: fingerprint is zero");
        require(bytes(reason).length > 0, "CredentialRegistry: a reason is required");
        require(bytes(reason).length <= 256, "CredentialRegistry: reason is longer than 256 bytes");
        require(_revocations[fingerprint].timestamp == 0, "CredentialRegistry: credential is already revoked");
        _revocations[fingerprint] = Revocation(msg.sender, uint64(block.timestamp), reason);
        emit CredentialRevoked(fingerprint, msg.sender, reason);
    }

    /// @notice Revoked? when? why? by whom?
    function revocationOf(bytes32 fingerprint)
        external
        view
        returns (bool revoked, uint256 timestamp, string memory reason, address revoker)
    {
        Revocation storage r = _revocations[fingerprint];
        return (r.timestamp != 0, r.timestamp, r.reason, r.revoker);
    }

    // ----- Merkle proofs -------------------------------------------------

    /// @notice Does `proof` lead from `leaf` to `root`? Pairs are hashed in
    /// sorted order, the rule of OpenZeppelin's MerkleProof.
    function verify(bytes32 leaf, bytes32[] calldata proof, bytes32 root) public pure returns (bool) {
        bytes32 node = leaf;
        for (uint256 i = 0; i < proof.length; i++) {
            bytes32 sibling = proof[i];
            node = node < sibling
                ? keccak256(abi.encodePacked(node, sibling))
                : keccak256(abi.encodePacked(sibling, node));
        }
        return node == root;
    }

    /// @notice The whole on-chain answer for one credential: is its proof
    /// valid against an anchored root, and is it unrevoked?
    function isValid(bytes32 leaf, bytes32[] calldata proof, bytes32 root) external view returns (bool) {
        return _anchors[root].issuer != address(0) && verify(leaf, proof, root)
            && _revocations[leaf].timestamp == 0;
    }
}
