"""The node's LMDB storage: `schema` lists every table and key format, `jmt_node`/`jmt` the
Jellyfish-compatible sparse Merkle tree, `store` one write transaction per version,
`blockparts` a block and its commit as stored (nothing twice) and rebuilt byte for byte.

May import `ads_ledger.core` and lmdb; nothing of the state machine or the runtime.
"""
