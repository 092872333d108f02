"""RFC 9162 Merkle tree hashing: incremental root, inclusion and consistency proofs.

The tree is never recomputed. Appending keeps the right edge ("frontier") of perfect
subtrees and yields each interior node it completes; a proof asks a `NodeSource` for
O(log n) perfect-subtree hashes, which the ledger stores as it appends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of the perfect subtree over leaves [index * 2**level, (index+1) * 2**level)
NodeSource = Callable[[int, int], bytes]


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class Frontier:
    """The perfect subtrees on the right edge of a tree of `size` leaves, largest first."""

    size: int = 0
    nodes: list[tuple[int, bytes]] = field(default_factory=list)  # (level, hash)

    def append(self, leaf_hash_: bytes) -> Iterator[tuple[int, int, bytes]]:
        """Add one leaf; yield (level, index, hash) of every interior node it completes."""
        self.nodes.append((0, leaf_hash_))
        index = self.size
        self.size += 1
        while len(self.nodes) >= 2 and self.nodes[-1][0] == self.nodes[-2][0]:
            level, right = self.nodes.pop()
            _, left = self.nodes.pop()
            merged = node_hash(left, right)
            index >>= 1
            self.nodes.append((level + 1, merged))
            yield level + 1, index, merged

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1][1]
        for _, h in reversed(self.nodes[:-1]):
            acc = node_hash(h, acc)
        return acc

    @classmethod
    def load(cls, size: int, source: NodeSource) -> Frontier:
        """Rebuild the frontier of a stored tree from its perfect subtrees (O(log n) reads)."""
        nodes = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size & (1 << level):
                nodes.append((level, source(level, start >> level)))
                start += 1 << level
        return cls(size, nodes)


def subtree_hash(lo: int, hi: int, source: NodeSource) -> bytes:
    """MTH(D[lo:hi]) for a range the RFC's recursion produces (lo aligned to the split)."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and lo % n == 0:
        return source(n.bit_length() - 1, lo // n)
    k = _split(n)
    return node_hash(subtree_hash(lo, lo + k, source), subtree_hash(lo + k, hi, source))


def root(size: int, source: NodeSource) -> bytes:
    return subtree_hash(0, size, source)


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree_hash(lo + k, hi, source))
            hi = lo + k
        else:
            path.append(subtree_hash(lo, lo + k, source))
            lo += k
    path.reverse()
    return path


def consistency_proof(old: int, new: int, source: NodeSource) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from size {old} to {new}")
    proof: list[bytes] = []
    lo, hi, m, complete = 0, new, old, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(subtree_hash(lo + k, hi, source))
            hi = lo + k
        else:
            proof.append(subtree_hash(lo, lo + k, source))
            lo += k
            m -= k
            complete = False
    if not complete:
        proof.append(subtree_hash(lo, hi, source))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf_hash_: bytes, index: int, size: int, proof: list[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash_
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if old == new:
        return old >= 0 and not proof and old_root == new_root
    if not 0 < old < new or not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
