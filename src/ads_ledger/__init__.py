"""ADS ledger: the Authentication and Delegation Service for EV charge points.

Layering (lower layers never import higher ones):
  codec, crypto          canonical bytes and signatures (DESIGN §3)
  merkle, jmt, store     authenticated state and its LMDB layout (§5)
  tx/, state, identity   transactions and the state machine (§4, §5)
  types, consensus/      blocks, votes and the sans-IO Tendermint core (§6)
  node, p2p, api, cli    the trio runtime and user-facing commands
"""

__version__ = "0.1.0"
