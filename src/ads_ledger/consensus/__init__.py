"""The sans-IO Tendermint consensus (DESIGN §6).

Pure data and rules, no sockets, clocks or threads:
  ports      contracts with what surrounds the core (WAL, Signer, Application)
  messages   proposal/vote/commit messages and WAL record bytes
  proposer   CometBFT's weighted round-robin proposer selection
  votes      per-round vote tallies
  height_log the message log of one height: intake checks, proposals, tallies, evidence
  timeouts   timeout and clock-precision parameters
  core       Algorithm 1 as a state machine: `Core`
  wal, privval, evidence   the local safety duties (WAL, double-sign guard, evidence)
May import `types`, `crypto`, `codec`, `errors`; never the runtime (node, p2p, api).
"""
