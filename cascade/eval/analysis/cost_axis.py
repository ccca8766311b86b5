"""The cost axis of a report: USD, or tokens when a model that used tokens has no price.

A model priced at $0 (a `.gguf` file of one's own without `prices:`, a hosted model litellm does
not price) made every cost figure meaningless: the cost metrics came out "—" and the plot drew
the tiers on a vertical line at 0. When any model used tokens and cost nothing, every model is
measured in tokens instead (one axis for all, so the curves still compare), and the report says
which models lacked a price and how to give one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cascade.eval.data.logs import LogTable

USD = "USD"
TOKENS = "tokens"


def unpriced(log: LogTable) -> list[str]:
    """The models that used tokens and cost nothing on every item."""
    return [m for m in log.models if float(log.cost(m).sum()) == 0.0 and float(np.nansum(log.tokens(m))) > 0]


def cost_axis(log: LogTable) -> tuple[LogTable, str]:
    """The log with each cell's cost in the report's unit, and that unit (`USD` or `tokens`)."""
    missing = unpriced(log)
    if not missing:
        return log, USD
    why = (
        f"no cost for {', '.join(missing)}: priced at $0 (a local .gguf file without `prices:`, or a model "
        "litellm does not price); costs in this report are tokens. Give those tiers `prices:` to compare in USD."
    )
    if any(np.isnan(log.tokens(m)).any() for m in log.models):
        return replace(log, notes=[*log.notes, why.replace("costs in this report are tokens", "tokens unknown")]), USD
    items = [
        replace(item, tiers={m: replace(t, cost_usd=float(t.tokens or 0)) for m, t in item.tiers.items()})
        for item in log.items
    ]
    return replace(log, items=items, notes=[*log.notes, why]), TOKENS
