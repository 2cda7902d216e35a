"""The validator daemon: the top layer, and the only one that does IO for a validator.

  storage/   schema (every LMDB table), JMT nodes, the JMT on LMDB, the versioned store
  ledger     the chain on disk driven by the state machine (consensus's Application)
  mempool    pending transactions in per-signer nonce order
  p2p/       authenticated encrypted links and the peer manager (trio)
  api/       the HTTP API server (trio + h11)
  config     a node's home and config.toml
  logs       structured logging
  daemon     the trio shell that wires them: `Node`, `run_node`

May import every lower layer (core, state, consensus, light, client); nothing imports node/
except cli/, testing/ and the simulator-free harnesses.
"""
