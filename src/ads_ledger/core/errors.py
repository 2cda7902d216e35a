"""Error classes shared across the ledger, split by who is at fault (as h11 does).

`RemoteError` subclasses mean the input was bad: a peer, client or file sent something we refuse.
They never crash a node. Anything else raised out of a core is a bug of ours.
"""


class AdsError(Exception):
    """Base of every error the ledger raises on purpose."""


class RemoteError(AdsError):
    """The input (bytes, transaction, message) is at fault, not us."""


class DecodeError(RemoteError, ValueError):
    """Bytes are malformed, oversized or not in canonical form (DESIGN §3)."""


class SignatureError(RemoteError):
    """A signature does not verify under the claimed key."""
