"""One query's way through the cascade: the engine and its LangGraph workflow.

`engine` (`Cascade`: the Python API, sync and async), `graph` (route → generate → verify →
decide), `tiers` (calling one tier: requests, samples, answers), `ensemble` (members and votes),
`tier_verifiers` (which verifier judges which tier), `budget_plan` (token caps and stops from
what the budget has left), `approval` (tiers a person must approve), `trace` (the rich terminal
trace) and `telemetry` (OpenTelemetry spans).
"""
