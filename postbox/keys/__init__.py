"""Key directory and key-transparency log: Merkle tree, tree heads, proofs, auditor."""
