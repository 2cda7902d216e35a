"""Transactions (DESIGN §4): the envelope, and one module per family with its rules and effects.

May import codec, crypto, merkle, identity; never the store, consensus or the runtime.
"""
