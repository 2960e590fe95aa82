"""Merkle trees over credential fingerprints, with the rule the registry's
`verify` view checks (OpenZeppelin's MerkleProof): a parent is keccak256 of its
two children in sorted order, so a path is just the list of siblings.

An odd node at the end of a level is carried up unchanged. The leaves are the
credentials' fingerprints themselves, in batch order.
"""

from __future__ import annotations

from credentials.canonical import keccak256


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b) if a < b else keccak256(b + a)


class MerkleTree:
    """All levels kept, so every path is read off without re-hashing."""

    def __init__(self, leaves: list[bytes]):
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        for leaf in leaves:
            if len(leaf) != 32:
                raise ValueError("every leaf must be 32 bytes")
        self.levels: list[list[bytes]] = [list(leaves)]
        level = self.levels[0]
        while len(level) > 1:
            nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def __len__(self) -> int:
        return len(self.levels[0])

    def _siblings(self, levels: list[list], index: int) -> list:
        """The sibling of `index`'s node on each level below the root (an odd
        node carried up has none on that level)."""
        if not 0 <= index < len(self):
            raise IndexError(f"leaf {index} is not in a tree of {len(self)}")
        path = []
        for level in levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path

    def path(self, index: int) -> list[bytes]:
        """The siblings from leaf `index` up to the root."""
        return self._siblings(self.levels, index)

    def _hex(self) -> list[list[str]]:
        """Every node as 0x-hex, converted once per tree, not once per path it appears in."""
        if not hasattr(self, "_hex_levels"):
            self._hex_levels = [["0x" + node.hex() for node in level] for level in self.levels]
        return self._hex_levels

    def path_hex(self, index: int) -> list[str]:
        """`path(index)` as 0x-hex strings, as proofs carry it."""
        return self._siblings(self._hex(), index)

    def path_texts(self) -> list[str]:
        """Every leaf's path as the inside of a JSON array of 0x-hex strings
        (`"0x..","0x.."`, empty for a lone leaf), all at once: the text is
        built from the root down, so leaves under one node share the text
        above it instead of joining it again. Equal to joining `path_hex(i)`."""
        hex_levels = self._hex()
        above = [""]  # the text for each node of the level above: its path to the root
        for depth in range(len(self.levels) - 2, -1, -1):
            level = hex_levels[depth]
            texts = []
            for index in range(len(level)):
                rest = above[index >> 1]
                sibling = index ^ 1
                if sibling < len(level):
                    mine = f'"{level[sibling]}"'
                    texts.append(f"{mine},{rest}" if rest else mine)
                else:  # an odd node carried up unchanged: no sibling on this level
                    texts.append(rest)
            above = texts
        return above


class MerkleBuilder:
    """The same tree, built as leaves arrive (a batch streams in from its
    worker processes): each complete pair is hashed as soon as both children
    exist, so little is left when the last leaf comes. `tree()` finishes the
    odd ends exactly as MerkleTree does and returns an equal MerkleTree."""

    def __init__(self):
        self.levels: list[list[bytes]] = [[]]

    def add(self, leaf: bytes) -> None:
        if len(leaf) != 32:
            raise ValueError("every leaf must be 32 bytes")
        self.levels[0].append(leaf)
        depth = 0
        # A node at an odd position completes a pair: hash it into the level above.
        while len(self.levels[depth]) % 2 == 0:
            level = self.levels[depth]
            if depth + 1 == len(self.levels):
                self.levels.append([])
            self.levels[depth + 1].append(hash_pair(level[-2], level[-1]))
            depth += 1

    def tree(self) -> MerkleTree:
        if not self.levels[0]:
            raise ValueError("a Merkle tree needs at least one leaf")
        levels = [list(level) for level in self.levels]
        depth = 0
        while len(levels[depth]) > 1:
            level = levels[depth]
            if depth + 1 == len(levels):
                levels.append([])
            above = levels[depth + 1]
            # Pairs hashed while adding stay; pairs made of carried nodes are hashed
            # now, and an odd last node is carried up unchanged.
            for i in range(len(above), len(level) // 2):
                above.append(hash_pair(level[2 * i], level[2 * i + 1]))
            if len(level) % 2:
                above.append(level[-1])
            depth += 1
        tree = MerkleTree.__new__(MerkleTree)
        tree.levels = levels
        return tree


def root_from_path(leaf: bytes, path: list[bytes]) -> bytes:
    node = leaf
    for sibling in path:
        node = hash_pair(node, sibling)
    return node


def verify_path(leaf: bytes, path: list[bytes], root: bytes) -> bool:
    return root_from_path(leaf, path) == root
