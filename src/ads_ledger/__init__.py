"""ADS ledger: the Authentication and Delegation Service for EV charge points.

Layers (DESIGN §2), bottom up; a layer imports only layers below it (tests/test_layering.py):
  core/        canonical bytes, hashes and signatures, proofs, blocks and votes (§3, §5, §6)
  state/       the ADS state machine: envelope, reasons, records, one module per tx family,
               identity, genesis, check_tx / execute_block (§4, §5)
  consensus/   sans-IO Tendermint: core, proposer, WAL, double-sign guard, evidence (§6)
  light/       light-client verification of headers and state proofs
  client/      the node API client (plain HTTP)
  wallet/      keystore, tx builders, governance multi-sig (its own issue)
  node/        the validator daemon: storage/, ledger, mempool, p2p/, api/, config, logs
  sim/         the deterministic consensus simulator (core, consensus)
  testing/     TEST-ONLY trust lists, testnets, devnet processes, the Byzantine kit
  cli/         the `ads` command
"""

__version__ = "0.1.0"
