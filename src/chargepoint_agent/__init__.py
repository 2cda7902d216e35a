"""Charge-point agent: a light client of the ADS ledger that verifies and executes commands.

It may import ads_ledger's pure layers (codec, crypto, merkle, light); never the node runtime.
"""
