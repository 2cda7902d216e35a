"""The bytes everything agrees on (DESIGN §3, §5 proofs, §6 headers): the bottom layer.

  codec    canonical msgpack (typed DecodeError for anything off)
  crypto   H, sign_bytes, strict Ed25519
  merkle   RFC 6962 list roots, JMT proof verification
  types    Header, Vote, Proposal, Commit, Block, ValidatorSet, evidence
  errors   the error hierarchy (AdsError, RemoteError, DecodeError, …)

Imports nothing of ads_ledger outside core/; no IO, no trio, no lmdb.
"""
