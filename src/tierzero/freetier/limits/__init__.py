"""Always Free limits, list prices and capacity overheads, loaded from the YAML files beside this module.

Limits and prices are dated: `limits_on(day)` returns the values in force that day, so a plan can be judged
against the allowance before or after a change (Oracle halved the A1 allowance on 2026-06-15).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tierzero.errors import InputError

DATA_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Limit:
    key: str
    value: float
    unit: str
    effective_from: dt.date
    effective_until: dt.date | None
    source: str

    def in_force(self, day: dt.date) -> bool:
        return self.effective_from <= day and (self.effective_until is None or day <= self.effective_until)


@dataclass(frozen=True)
class Limits:
    """The Always Free limits in force on `on`. `limits["vcns"]` is the value; `.limit(key)` the whole record."""

    on: dt.date
    items: Mapping[str, Limit]

    def __getitem__(self, key: str) -> float:
        return self.items[key].value

    def limit(self, key: str) -> Limit:
        return self.items[key]

    def a1_equivalent(self, hours_per_month: float) -> tuple[float, float]:
        """The A1 allowance as steady OCPUs and GB over a month of `hours_per_month` hours."""
        return self["a1_ocpu_hours_month"] / hours_per_month, self["a1_gb_hours_month"] / hours_per_month

    def as_dict(self) -> dict[str, Any]:
        return {
            "on": self.on.isoformat(),
            "limits": {
                k: {
                    "value": v.value,
                    "unit": v.unit,
                    "effective_from": v.effective_from.isoformat(),
                    "effective_until": v.effective_until.isoformat() if v.effective_until else None,
                    "source": v.source,
                }
                for k, v in self.items.items()
            },
        }


@dataclass(frozen=True)
class ShapePrice:
    shape: str
    ocpu_hour: float
    gb_hour: float
    source: str


@dataclass(frozen=True)
class MicroSubstitute:
    shape: str
    ocpus: float
    memory_gb: float
    source: str


@dataclass(frozen=True)
class Prices:
    """List prices in USD. A value of None means no public price is known (the charge is still refused)."""

    on: dt.date
    hours_per_month: int
    items: Mapping[str, float | None]
    sources: Mapping[str, str]
    shapes: Mapping[str, ShapePrice]
    micro_substitute: MicroSubstitute

    def __getitem__(self, key: str) -> float | None:
        return self.items[key]

    def micro_substitute_month(self) -> float | None:
        sub = self.micro_substitute
        shape = self.shapes.get(sub.shape)
        if shape is None:
            return None
        return (sub.ocpus * shape.ocpu_hour + sub.memory_gb * shape.gb_hour) * self.hours_per_month


@dataclass(frozen=True)
class Overhead:
    key: str
    value: float
    source: str


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{where}: {value!r} is not a date like 2026-06-15") from None


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    import yaml

    with (DATA_DIR / name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@lru_cache(maxsize=None)
def limit_eras(key: str) -> tuple[Limit, ...]:
    """Every era of one limit, oldest first."""
    raw = _load("always_free.yaml")["limits"][key]
    eras = [
        Limit(
            key=key,
            value=float(era["value"]),
            unit=str(era["unit"]),
            effective_from=_date(era["effective_from"], f"always_free.yaml: {key}"),
            effective_until=_date(era["effective_until"], f"always_free.yaml: {key}") if era.get("effective_until") else None,
            source=str(era["source"]),
        )
        for era in raw
    ]
    return tuple(sorted(eras, key=lambda e: e.effective_from))


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def limits_on(day: dt.date | None = None) -> Limits:
    """The Always Free limits in force on `day` (default: today, UTC)."""
    return _limits_for(day or _today())


@lru_cache(maxsize=64)
def _limits_for(day: dt.date) -> Limits:
    items: dict[str, Limit] = {}
    for key in _load("always_free.yaml")["limits"]:
        era = next((e for e in limit_eras(key) if e.in_force(day)), None)
        if era is None:
            first = limit_eras(key)[0].effective_from
            raise InputError(
                f"no Always Free limit '{key}' is known for {day.isoformat()}",
                hint=f"the data starts on {first.isoformat()}; pass a later --limits-date",
            )
        items[key] = era
    return Limits(on=day, items=MappingProxyType(items))


def _pick_era(eras: list[dict[str, Any]], day: dt.date, where: str) -> dict[str, Any]:
    dated = sorted(eras, key=lambda e: _date(e["effective_from"], where))
    chosen = dated[0]  # before the first known price, the earliest known price is the estimate
    for era in dated:
        if _date(era["effective_from"], where) <= day:
            chosen = era
    return chosen


def prices_on(day: dt.date | None = None) -> Prices:
    """List prices in force on `day` (default: today, UTC)."""
    return _prices_for(day or _today())


@lru_cache(maxsize=64)
def _prices_for(day: dt.date) -> Prices:
    raw = _load("prices.yaml")
    items: dict[str, float | None] = {}
    sources: dict[str, str] = {}
    for key, eras in raw["prices"].items():
        era = _pick_era(eras, day, f"prices.yaml: {key}")
        items[key] = None if era["value"] is None else float(era["value"])
        sources[key] = str(era["source"])
    shapes = {}
    for shape, eras in raw["shapes"].items():
        era = _pick_era(eras, day, f"prices.yaml: {shape}")
        shapes[shape] = ShapePrice(shape, float(era["ocpu_hour"]), float(era["gb_hour"]), str(era["source"]))
    sub = _pick_era(raw["micro_substitute"], day, "prices.yaml: micro_substitute")
    micro = MicroSubstitute(str(sub["shape"]), float(sub["ocpus"]), float(sub["memory_gb"]), str(sub["source"]))
    return Prices(
        on=day,
        hours_per_month=int(raw["hours_per_month"]),
        items=MappingProxyType(items),
        sources=MappingProxyType(sources),
        shapes=MappingProxyType(shapes),
        micro_substitute=micro,
    )


@lru_cache(maxsize=1)
def overheads() -> Mapping[str, Overhead]:
    """Capacity assumptions (Proxmox VE, Ceph, Talos) with the source of each."""
    raw = _load("overheads.yaml")["overheads"]
    return MappingProxyType({k: Overhead(k, float(v["value"]), str(v["source"])) for k, v in raw.items()})


def parse_day(text: str | None) -> dt.date | None:
    """A --limits-date value (YYYY-MM-DD) as a date; InputError otherwise."""
    if text is None or text == "":
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--limits-date {text!r} is not a date", hint="use YYYY-MM-DD, like 2026-06-15") from None
