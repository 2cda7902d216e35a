"""Light-client verification (DESIGN §6, §5): a signed header against a validator set, a
state proof against a header's state root; typed errors. For charge-point agents, wallets and
providers' software.

May import `ads_ledger.core` only; never the node, trio or lmdb.
"""
