"""A fleet of bridges: webhook wake-up and the shared request budget.

Session leases and the PostgreSQL journal live in `bridge.journal` (they share its database and schema); this layer
holds what a fleet needs beyond storage: `WebhookReceiver` (signed `session.requires_action` notifications instead
of one open stream per idle session) and the request budget that keeps N processes within one organisation's rate
limit (`LocalBudget`, `PostgresBudget`, and `BudgetTransport`, which applies a budget to every SDK request).
"""

from ._budget import Budget, BudgetStats, LocalBudget, PostgresBudget, budgeted_http_client, retry_after
from ._webhooks import SESSION_WAKE, WebhookEvent, WebhookReceiver, WebhookStats

__all__ = [
    "SESSION_WAKE",
    "Budget",
    "BudgetStats",
    "LocalBudget",
    "PostgresBudget",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookStats",
    "budgeted_http_client",
    "retry_after",
]
