"""What an assessment finds: one `Finding` per violation or warning, gathered in an `Assessment`
with what each resource costs (tierzero.freetier.cost fills it; tierzero.freetier.vault adds to it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from tierzero.freetier.limits import Limits, Prices

_EPSILON = 1e-9
# Limits whose resource has a list price (possibly $0): the line shows it, as a charge does.
PRICED_LIMITS = frozenset({"network_load_balancers"})

Kind = Literal["charge", "limit", "warning"]


@dataclass(frozen=True)
class Finding:
    """One violation or warning: what, by how much, what it costs a month, and a change that fits."""

    code: str
    kind: Kind
    what: str
    over_by: float
    unit: str
    usd_month: float | None  # None: charged, but no public list price is known
    fix: str
    ids: tuple[str, ...] = ()

    def line(self) -> str:
        if self.kind == "warning":
            return f"{self.what}. {self.fix[:1].upper()}{self.fix[1:]}"
        if self.kind == "limit" and self.usd_month is not None and self.usd_month > 0:
            cost = f"{usd(self.usd_month)}/month, and not allowed by Always Free"
        elif self.kind == "limit" and self.usd_month is not None and self.code in PRICED_LIMITS:
            cost = f"{usd(self.usd_month)}/month, but not allowed by Always Free (an Always-Free-only tenancy refuses it)"
        elif self.kind == "limit":
            cost = "not allowed by Always Free (no charge, but apply fails or leaves the free tier)"
        elif self.usd_month is None:
            cost = "charged, price unknown"
        else:
            cost = f"{usd(self.usd_month)}/month"
        return f"{self.what}: {cost}. Fix: {self.fix}"

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "kind": self.kind,
            "what": self.what,
            "over_by": round(self.over_by, 4),
            "unit": self.unit,
            "usd_month": None if self.usd_month is None else round(self.usd_month, 4),
            "fix": self.fix,
            "ids": list(self.ids),
        }


@dataclass
class Assessment:
    limits: Limits
    prices: Prices
    findings: list[Finding] = field(default_factory=list)
    usd_by_id: dict[str, float] = field(default_factory=dict)
    unpriced_ids: set[str] = field(default_factory=set)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.kind != "warning"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "warning"]

    @property
    def total_usd_month(self) -> float:
        return sum(f.usd_month or 0.0 for f in self.findings if f.kind == "charge")

    @property
    def charged(self) -> bool:
        return any(f.kind == "charge" for f in self.findings)

    @property
    def refused(self) -> bool:
        return bool(self.violations)

    def charge(self, item_id: str, amount: float | None) -> None:
        if amount is None:
            self.unpriced_ids.add(item_id)
        elif amount > _EPSILON:
            self.usd_by_id[item_id] = self.usd_by_id.get(item_id, 0.0) + amount

    def over_count(self, code: str, kind: Kind, what: str, items: list[str], each: float | None, unit: str, fix: str) -> None:
        """Items beyond a count allowance, each charged `each` (USD a month, None: no list price):
        every item is charged and one finding names them all."""
        for item in items:
            self.charge(item, each)
        self.findings.append(Finding(code, kind, what, float(len(items)), unit,
                                     None if each is None else each * len(items), fix, tuple(items)))


def usd(value: float) -> str:
    """Dollars to the cent, half up: $1.275 shows as $1.28 (binary floats would show $1.27)."""
    cents = Decimal(repr(round(value, 9))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${cents:,.2f}"
