"""The wallet (DESIGN §8): keystore, transaction builders, governance multi-sig, the provider
command API. Not built yet (its own issue).

May import `ads_ledger.core`, `.state`, `.light` and `.client`; never the node.
"""
