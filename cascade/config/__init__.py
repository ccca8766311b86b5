"""What a cascade is, as written in YAML: the typed config and how it is read.

`schema` (the pydantic models: tiers, prices, budget, plugins' specs; `load_config` with errors
that name file, line and field), `safe_yaml` (YAML without alias bombs or custom tags),
`experiment` (an A/B experiment's variants) and `variants` (loading them and assigning units).
"""
