"""A fleet of bridges: webhook wake-up and the shared request budget.

Session leases and the PostgreSQL journal live in `bridge.journal` (they share its database and schema); this layer
holds what a fleet needs beyond storage: `WebhookReceiver` (signed `session.requires_action` notifications instead
of one open stream per idle session) and the request budget that keeps N processes within one organisation's rate
limit (`LocalBudget`, `PostgresBudget`), and `fleet_http_client`, the SDK client that takes every request from the
budget and refuses to post for a session this process does not hold.
"""

from ._budget import Budget, BudgetStats, LocalBudget, PostgresBudget, retry_after
from ._http import Fenced, fleet_http_client
from ._webhooks import SESSION_WAKE, WebhookEvent, WebhookReceiver, WebhookStats

__all__ = [
    "SESSION_WAKE",
    "Budget",
    "BudgetStats",
    "Fenced",
    "LocalBudget",
    "PostgresBudget",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookStats",
    "fleet_http_client",
    "retry_after",
]
