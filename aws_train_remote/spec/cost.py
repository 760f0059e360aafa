"""Cost and notice: the budget a launch must keep to, and the tag that makes its end heard. Pure."""
from __future__ import annotations

import math
import re

from .checks import need

KEYS = ("budget", "budget_unknown_ok", "notify")

# The tag `aws-train-remote notify setup`'s EventBridge rule matches (executors/notify.py).
NOTIFY_TAG = "aws-train-remote:notify"
_USD = re.compile(r"^\s*(?:US)?\$?\s*([0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)\s*(?:USD)?\s*$", re.IGNORECASE)


def parse_usd(raw):
    """50, 50.5, $50, 1,000, 50 USD -> a float; None for nothing; ValueError otherwise."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ValueError("expected an amount in US dollars")
    if isinstance(raw, (int, float)):
        return float(raw)
    match = _USD.match(str(raw))
    if not match:
        raise ValueError("expected an amount in US dollars")
    return float(match.group(1).replace(",", ""))


def cost_fields(v) -> dict:
    """The JobSpec fields of cost and notice, or UsageError for the first flag that is wrong."""
    raw = v.get("budget")
    try:
        budget = parse_usd(raw)
    except ValueError:
        budget = math.nan
    need(budget is None or (math.isfinite(budget) and budget > 0), "--sagemaker-budget", raw,
         "not an amount of US dollars above zero", "e.g. --sagemaker-budget 50 (the most a launch may cost)")
    unknown_ok = bool(v.get("budget_unknown_ok"))
    need(budget is not None or not unknown_ok, "--sagemaker-budget-unknown-ok", "yes",
         "says what a budget does when the price is unknown, but no budget was given",
         "add --sagemaker-budget USD, or drop it")
    return dict(budget=budget, budget_unknown_ok=unknown_ok, notify=bool(v.get("notify")))
