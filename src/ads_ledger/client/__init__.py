"""A node API client (DESIGN §8): plain HTTP on `http.client`, no server code.

  jsonenc  ledger values as JSON (bytes as lowercase hex) and the inverse parsers
  http     `NodeClient`: blocking requests with typed errors

For the wallet, the charge-point agent and providers' software. May import `ads_ledger.core`
and `ads_ledger.light`; never the node, trio, h11 or lmdb.
"""

from ads_ledger.client.http import ApiResponseError, NodeClient, NotFound, TransportError

__all__ = ["ApiResponseError", "NodeClient", "NotFound", "TransportError"]
