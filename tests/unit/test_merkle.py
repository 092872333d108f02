"""services.audit.merkle against an independent RFC 9162 reference, on every tree n <= 64.

The reference (the `rfc_*` functions) is transcribed from RFC 9162 section 2.1 and uses
only hashlib: MTH (2.1.1), PATH (2.1.3.1), PROOF/SUBPROOF (2.1.4.1) and the verification
algorithms of 2.1.3.2 and 2.1.4.2. It imports nothing from the module under test.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from services.audit import merkle

# --- RFC 9162 reference ------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc_leaf(d: bytes) -> bytes:
    return sha256(b"\x00" + d)


def rfc_node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def rfc_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]), 2.1.1."""
    if not d:
        return sha256(b"")
    if len(d) == 1:
        return rfc_leaf(d[0])
    k = rfc_k(len(d))
    return rfc_node(rfc_mth(d[:k]), rfc_mth(d[k:]))


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), 2.1.3.1."""
    if len(d) == 1:
        return []
    k = rfc_k(len(d))
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), 2.1.4.1."""
    if m == len(d):
        return [] if b else [rfc_mth(d)]
    k = rfc_k(len(d))
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def rfc_proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true), defined for 0 < m < n."""
    return rfc_subproof(m, d, True)


def rfc_verify_inclusion(
    leaf_hash: bytes, leaf_index: int, tree_size: int, path: list[bytes], root: bytes
) -> bool:
    """2.1.3.2. Indices are uint64 in the RFC; a negative one is outside its domain."""
    if leaf_index < 0 or leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = rfc_node(p, r)
            while not (fn & 1 or fn == 0):
                fn, sn = fn >> 1, sn >> 1
        else:
            r = rfc_node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def rfc_verify_consistency(
    first_size: int, second_size: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> bool:
    """2.1.4.2. PROOF exists only for 0 < first_size < second_size (2.1.4.1)."""
    if not 0 < first_size < second_size or not path:
        return False
    if first_size & (first_size - 1) == 0:
        path = [first_hash, *path]
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = rfc_node(c, fr), rfc_node(c, sr)
            while not (fn & 1 or fn == 0):
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = rfc_node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_hash and sr == second_hash and sn == 0


# --- The tree under test, grown through merkle.Frontier ----------------------------------

MAX_N = 64
LEAVES = [bytes([i]) * i for i in range(MAX_N + 1)]  # leaf 0 is b""; one spare for size n+1
ROOTS = [rfc_mth(LEAVES[:n]) for n in range(MAX_N + 2)]
CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243")] + [
    bytes.fromhex("5051525354555657"),
    bytes.fromhex("606162636465666768696a6b6c6d6e6f"),
]
CT_ROOTS = [  # RFC 6962 test vectors (transparency-dev/merkle testonly), sizes 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.fixture(scope="module")
def source() -> merkle.NodeSource:
    """(level, index) -> stored perfect-subtree hash, filled only from Frontier.append."""
    stored: dict[tuple[int, int], bytes] = {}
    frontier = merkle.Frontier()
    for i, leaf in enumerate(LEAVES[:MAX_N]):
        stored[0, i] = rfc_leaf(leaf)
        stored.update(((level, index), h) for level, index, h in frontier.append(rfc_leaf(leaf)))
    return lambda level, index: stored[level, index]


def flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8 % len(out)] ^= 1 << bit % 8
    return bytes(out)


def both_verifiers_inclusion(*args: Any) -> tuple[bool, bool]:
    return rfc_verify_inclusion(*args), merkle.verify_inclusion(*args)


def both_verifiers_consistency(*args: Any) -> tuple[bool, bool]:
    return rfc_verify_consistency(*args), merkle.verify_consistency(*args)


# --- Tests -------------------------------------------------------------------------------


def test_hashes_follow_the_rfc_definitions_and_published_vectors() -> None:
    left, right = sha256(b"l"), sha256(b"r")
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert merkle.EMPTY_ROOT == merkle.Frontier().root() == hashlib.sha256(b"").digest()
    frontier = merkle.Frontier()
    for n, leaf in enumerate(CT_LEAVES, start=1):
        list(frontier.append(merkle.leaf_hash(leaf)))
        assert frontier.root().hex() == rfc_mth(CT_LEAVES[:n]).hex() == CT_ROOTS[n]
    assert rfc_mth([]).hex() == CT_ROOTS[0]


def test_frontier_yields_each_completed_subtree_and_tracks_the_root(
    source: merkle.NodeSource,
) -> None:
    frontier = merkle.Frontier()
    for size in range(1, MAX_N + 1):
        completed = list(frontier.append(rfc_leaf(LEAVES[size - 1])))
        levels = [lv for lv in range(1, size.bit_length()) if size % (1 << lv) == 0]
        expected = [(lv, (size >> lv) - 1) for lv in levels]
        assert [(lv, i) for lv, i, _ in completed] == expected, size
        for level, index, h in completed:
            assert h == rfc_mth(LEAVES[index << level : (index + 1) << level]), (level, index)
        assert frontier.root() == ROOTS[size], size
        assert merkle.Frontier.load(size, source).root() == ROOTS[size], size
        assert merkle.Frontier.load(size, source) == frontier, size
        assert merkle.root(size, source) == ROOTS[size], size


def test_inclusion_proofs_equal_rfc_path_and_verify_both_ways(source: merkle.NodeSource) -> None:
    for n in range(1, MAX_N + 1):
        for m in range(n):
            expected = rfc_path(m, LEAVES[:n])
            assert merkle.inclusion_proof(m, n, source) == expected, (m, n)
            assert both_verifiers_inclusion(rfc_leaf(LEAVES[m]), m, n, expected, ROOTS[n]) == (
                True,
                True,
            ), (m, n)


def test_consistency_proofs_equal_rfc_proof_and_verify_both_ways(
    source: merkle.NodeSource,
) -> None:
    for n in range(2, MAX_N + 1):
        for m in range(1, n):
            expected = rfc_proof(m, LEAVES[:n])
            assert merkle.consistency_proof(m, n, source) == expected, (m, n)
            assert both_verifiers_consistency(m, n, ROOTS[m], ROOTS[n], expected) == (
                True,
                True,
            ), (m, n)


def tampered_proofs(proof: list[bytes], seed: int) -> list[tuple[str, list[bytes]]]:
    """One bit flipped in each element, each element dropped, one extra element appended."""
    bad = [
        (f"bit flipped in [{i}]", [*proof[:i], flip(p, seed + 37 * i), *proof[i + 1 :]])
        for i, p in enumerate(proof)
    ]
    bad += [(f"[{i}] dropped", proof[:i] + proof[i + 1 :]) for i in range(len(proof))]
    return [*bad, ("extra element", [*proof, sha256(b"extra")])]


def test_tampered_inclusion_claims_are_rejected() -> None:
    accepted = []
    for n in range(1, MAX_N + 1):
        for m in range(n):
            leaf, path, root = rfc_leaf(LEAVES[m]), rfc_path(m, LEAVES[:n]), ROOTS[n]
            claims = [(why, (leaf, m, n, bad, root)) for why, bad in tampered_proofs(path, m + n)]
            claims += [(f"index {j}", (leaf, j, n, path, root)) for j in range(n + 1) if j != m]
            # The RFC binds the size through the root only (same path shape, same root), so
            # a wrong size is checked against the root a tree of that size has.
            claims += [(f"size {s}", (leaf, m, s, path, ROOTS[s])) for s in (n - 1, n + 1)]
            claims += [("wrong root", (leaf, m, n, path, flip(root, m)))]
            claims += [("wrong leaf", (rfc_leaf(LEAVES[m] + b"!"), m, n, path, root))]
            accepted += [(m, n, why) for why, c in claims if any(both_verifiers_inclusion(*c))]
    assert accepted == []


def test_negative_leaf_index_is_rejected() -> None:
    """RFC indices are uint64; Python's >> on a negative index mimics a real one's path."""
    accepted = []
    for n in range(1, MAX_N + 1):
        for m in range(n):
            leaf, path = rfc_leaf(LEAVES[m]), rfc_path(m, LEAVES[:n])
            for j in range(-n, 0):
                assert not rfc_verify_inclusion(leaf, j, n, path, ROOTS[n])
                if merkle.verify_inclusion(leaf, j, n, path, ROOTS[n]):
                    accepted.append((m, n, j))
    assert not accepted, f"{len(accepted)} (leaf, size, claimed index) accepted: {accepted[:6]}"


def test_tampered_consistency_claims_are_rejected() -> None:
    accepted = []
    for n in range(2, MAX_N + 1):
        for m in range(1, n):
            proof, old, new = rfc_proof(m, LEAVES[:n]), ROOTS[m], ROOTS[n]
            claims = [(why, (m, n, old, new, bad)) for why, bad in tampered_proofs(proof, m + n)]
            claims += [
                ("swapped sizes", (n, m, old, new, proof)),
                ("swapped sizes and roots", (n, m, new, old, proof)),
                ("old size > new size", (n + 1, n, ROOTS[n + 1], new, proof)),
                ("old size 0", (0, n, ROOTS[0], new, proof)),
                ("wrong old root", (m, n, flip(old, n), new, proof)),
                ("wrong new root", (m, n, old, flip(new, m), proof)),
            ]
            accepted += [(m, n, why) for why, c in claims if any(both_verifiers_consistency(*c))]
    assert accepted == []


def test_equal_sizes_are_consistent_only_with_an_empty_proof_and_equal_roots(
    source: merkle.NodeSource,
) -> None:
    """Beyond the RFC (PROOF needs m < n): the module treats m == n as trivially consistent."""
    assert merkle.consistency_proof(5, 5, source) == []
    assert merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert not merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[4], [])
    assert not merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])


@pytest.mark.parametrize(
    ("index", "size"), [(-1, 4), (4, 4), (5, 4), (0, 0)], ids=["negative", "n", "n+1", "empty"]
)
def test_inclusion_proof_outside_the_tree_raises_value_error(
    source: merkle.NodeSource, index: int, size: int
) -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_proof(index, size, source)


@pytest.mark.parametrize(
    ("old", "new"), [(0, 4), (-1, 4), (5, 4), (0, 0)], ids=["zero", "negative", "m>n", "empty"]
)
def test_consistency_proof_outside_the_trees_raises_value_error(
    source: merkle.NodeSource, old: int, new: int
) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(old, new, source)
