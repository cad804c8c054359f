"""The core service, declared once: what `propstream up`, the Helm chart and the docs run.

Factories are imported lazily (`Lazy`): reading the manifest costs no runtime import.
"""

from __future__ import annotations

from core.config import CoreSettings
from kernel.manifest import Api, Lazy, ServiceManifest, Worker, projection
from schemas import account, assessment, book, identity, instrument, payment, platform, tier

_BOOT = "core.bootstrap"


def _decider(family: str, description: str) -> Worker:
    return Worker(kind="decider", name=family, factory=Lazy(_BOOT, f"{family}_decider"),
                  description=description)


def _read_model(name: str, cls: str, description: str) -> Worker:
    return projection(name, Lazy(f"core.adapters.{name}_projection", cls), description)


MANIFEST = ServiceManifest(
    name="core",
    settings=CoreSettings,
    families=(instrument.FAMILY, identity.FAMILY, tier.FAMILY, payment.FAMILY,
              assessment.FAMILY, account.FAMILY, book.FAMILY, platform.FAMILY),
    api=Api(process="api", argv=("api",), factory=Lazy(_BOOT, "api"), port_setting="api_port",
            description="the core HTTP API: auth, users, instruments, tiers, purchases, "
                        "assessments, commands"),
    deciders=(
        _decider("instrument", "decides instrument.commands"),
        _decider("tier", "decides tier.commands"),
        _decider("payment", "decides payment.commands (purchases)"),
        _decider("user", "decides user.commands"),
        _decider("assessment", "decides assessment.commands"),
        _decider("account", "the account engine: decides account.commands (open, close, "
                            "orders) and fills resting orders on market.ticks"),
        _decider("platform", "decides platform.commands: the platform-wide trading switch "
                             "the account engine obeys"),
        _decider("book", "the book engine: one price-time order book per instrument that "
                         "executes in a book (book.commands), market makers quoting on "
                         "market.ticks"),
    ),
    projections=(
        _read_model("instruments", "InstrumentsProjection", "`instruments` from instrument.events"),
        _read_model("tiers", "TiersProjection", "`tiers` from tier.events"),
        _read_model("purchases", "PurchasesProjection", "`purchases` from payment.events"),
        _read_model("users", "UsersProjection", "`users` and API keys from user.events"),
        _read_model("assessments", "AssessmentsProjection",
                    "`assessments` from assessment.events"),
        # Six tables, one consumer and one write per batch (kernel.projection_group).
        projection("accounts", Lazy("core.adapters.account_read_models", "AccountReadModels"),
                   "`accounts` (balance, equity, margin, halt), `trading_orders`, "
                   "`trading_fills`, `trading_positions`, `account_equity` (one point per "
                   "account per minute) and `rule_status` (each rule's value, limit, "
                   "headroom) from account.events"),
        projection("account-history",
                   Lazy("core.adapters.account_history_projection", "AccountHistoryProjection"),
                   "`account_history` and `account_snapshots` (time travel) from "
                   "account.events"),
    ),
    processors=(
        Worker(kind="policy", name="assessment", factory=Lazy(_BOOT, "assessment_policy"),
               description="purchase -> assessment -> account commands"),
    ),
)
