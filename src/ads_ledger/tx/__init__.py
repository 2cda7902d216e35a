"""Transactions (DESIGN §4): the envelope, and one module per family with its rules and effects.

  envelope.py    parse / id / sign / verify the envelope (normative bytes)
  reasons.py     TxRejected and its subclasses: the stable refusal codes
  records.py     state keys, record shapes, scopes, chain parameters (§5, §7)
  bodies.py      stateless shape checks of each body
  context.py     StateView, the block Overlay, the rule context Ctx
  account.py     nonces, `attest`, the identity requirement
  ownership.py   cp.propose / cp.accept / cp.claim / cp.transfer
  delegation.py  grant (sub-grants, exclusivity) / revoke (cascade)
  governance.py  gov: validators.set, anchors.add/remove, members.set, params.set

May import codec, crypto, errors, types, identity; never the store, consensus or the runtime.
state.py drives these rules; nothing here does IO.
"""
