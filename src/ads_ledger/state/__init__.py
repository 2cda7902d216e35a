"""The ADS state machine (DESIGN §4, §5): the envelope, typed refusals, records, and one module
per transaction family with its rules and effects. Pure: no IO, no clock, no store.

  envelope.py    parse / id / sign / verify the envelope (normative bytes)
  reasons.py     TxRejected and its subclasses: the stable refusal codes
  records.py     state keys, record shapes, scopes, chain parameters (§5, §6, §7)
  bodies.py      stateless shape checks of each body
  context.py     the StateView protocol, DictView, the block Overlay, the rule context Ctx
  identity.py    X.509 path validation of eID attestations against anchors in state
  account.py     nonces, `attest`, the identity requirement
  ownership.py   cp.propose / cp.accept / cp.claim / cp.transfer
  delegation.py  grant (sub-grants, exclusivity) / revoke (cascade)
  governance.py  gov: validators.set, anchors.add/remove, members.set, params.set
  genesis.py     the genesis document and the initial state
  machine.py     check_tx (mempool) and execute_block (blocks)

May import `ads_ledger.core` (and `cryptography` for X.509); never consensus, node or trio.
"""
