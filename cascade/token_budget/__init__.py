"""Token budgets that follow the question: a learned per-query allocation of a tier's tokens.

A budget policy (`budget_policy:` on a tier) sets, before each call, the tier's `max_tokens`, a
budget sentence in the prompt for models that take one, and the provider's reasoning knob
(`reasoning_effort`, `thinking`) where litellm passes one. `fixed` gives every query the same
budget; `learned` predicts the tokens a correct answer needs from the query and the lower tiers'
attempts (`TokenBudgetModel`, trained with scikit-learn by `cascade.token_budget.train` or
`cascade token-budget train`), calibrated as a quantile so a chosen share of answers fit.
"""

from cascade.token_budget.features import FEATURES, budget_features
from cascade.token_budget.model import TokenBudgetModel

__all__ = ["FEATURES", "TokenBudgetModel", "budget_features"]
