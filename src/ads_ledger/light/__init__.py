"""Light-client verification (DESIGN §6, §5), sans-IO: headers, commits and the clock come in
as arguments; typed errors go out. For charge-point agents, wallets and providers' software.

  errors     LightError and one subclass per failed rule, each saying what to do
  trust      LightBlock (untrusted), TrustedState (persistable), TrustOptions
  verifier   adjacent and skipping rules, trusting period, clock drift (CometBFT light/verifier.go)
  bisection  the skipping/bisection driver: names heights to fetch, is fed light blocks
  detector   primary vs witness cross-check; Divergence evidence
  client     LightClient: trust roots, the trusted state moving forward, (de)serialisation
  verify     clock-free checks of a signed header and of a state proof

May import `ads_ledger.core` only; never the node, trio or lmdb.
"""
