"""The validator daemon: the top layer, and the only one that does IO for a validator.

  storage/   schema (every LMDB table), JMT nodes, the JMT on LMDB, the versioned store, block parts
  ledger     the chain on disk driven by the state machine (consensus's Application)
  mempool    pending transactions in per-signer nonce order
  p2p/       authenticated encrypted links and the peer manager (trio)
  api/       the HTTP API server (trio + h11)
  config     a node's home and config.toml
  logs       structured logging
  block_sync block sync's peer-height bookkeeping, sans-IO (`BlockSync`, given `now`)
  intake     transaction intake: verify and admit to the mempool, gossip (`TxIntake`)
  backend    the node as the HTTP API sees it (`NodeApi`, an api.backend.NodeBackend)
  signer     the double-sign guard, for heights where our key validates (`MemberSigner`)
  hooks      the no-op fault hooks a TEST-ONLY Byzantine kit overrides
  testhooks  TEST-ONLY partitions, loaded only under ADS_TEST_HOOKS=1
  daemon     the trio shell that wires them: `Node`, `run_node`

May import every lower layer (core, state, consensus, light, client); nothing imports node/
except cli/, testing/ and the simulator-free harnesses.
"""
