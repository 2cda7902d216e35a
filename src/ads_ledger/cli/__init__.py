"""The `ads` command (click): node, testnet, devnet, sim, status.

  main     the command groups; `ads = ads_ledger.cli.main:main`
  output   human and `--json` output, typed failures
  sim      `ads sim`

The top of the stack: may import every layer.
"""
