"""Budgets that hold: accounts, reservations before every call and settlement after it.

`metering` (accounts, the ledger, the completer that reserves and settles) and `prompt_bound`
(a prompt-token count that is never too low). The workflow's planning on top of them lives in
`cascade.run.budget_plan`; budgets kept in a store in `cascade.store.budgets`.
"""
