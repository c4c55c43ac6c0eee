"""`tierzero guard`: refuse an OpenTofu plan that would cost money or replace an A1 instance.
Also `add_fit_to_check`, which `tierzero check` calls to print the spec's free-tier fit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tierzero.freetier.guard import GuardReport, GuardRow
    from tierzero.freetier.spec_check import FitCheck
    from tierzero.spec.models import Platform


MAX_TABLE_ROWS = 200  # a larger plan gets the summary (every refusal and billable line); --verbose gets the table


def register(app: typer.Typer) -> None:
    app.command("guard")(guard)


def guard(
    plan_json: Path = typer.Argument(..., help="Output of `tofu show -json plan.out`."),
    allow_replace: list[str] = typer.Option(
        [], "--allow-replace", help="Allow deleting or replacing the A1 instance at this address (repeatable)."
    ),
    limits_date: str = typer.Option(None, "--limits-date", help="Judge against the free tier of YYYY-MM-DD (default today)."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=f"The full table of every resource, also for plans of more than {MAX_TABLE_ROWS}."),
) -> None:
    """Judge a plan against OCI Always Free: per-resource cost, totals and a verdict (exit 1 when refused)."""
    from tierzero.cli import output
    from tierzero.errors import RefusedError
    from tierzero.freetier.guard import guard_plan
    from tierzero.freetier.limits import parse_day

    from tierzero.freetier.plan_values import read_plan_file

    day = parse_day(limits_date)
    plan = read_plan_file(plan_json)
    report = guard_plan(plan, on=day, allow_replace=set(allow_replace))
    if json_out:
        output.print_json(report.as_dict())
    elif verbose or len(report.rows) <= MAX_TABLE_ROWS:
        _print_report(report)
    else:
        _print_summary(report)
    if report.refused:
        raise RefusedError(f"refused: {len(report.reasons)} reason(s); the plan would {_consequence(report)}")


def _consequence(report: GuardReport) -> str:
    parts = []
    if report.unknowns:
        parts.append("set prices that are unknown at plan time")
    if report.charged:
        unpriced = " plus charges with no known list price" if report.totals.unpriced else ""
        parts.append(f"cost about {_usd(report.totals.usd_month)}/month{unpriced}")
    elif any(f.kind == "limit" for f in report.findings):
        parts.append("break an Always Free limit")
    if report.replace_refusals:
        parts.append("delete or replace an A1 instance")
    return " and ".join(parts)


def _usd(value: float | None) -> str:
    from tierzero.freetier.cost import usd

    return "?" if value is None else usd(value)


def _q(value: float) -> str:
    return "" if not value else f"{value:g}"


def billable(report: GuardReport) -> list[GuardRow]:
    """Rows held after the apply that cost money, or whose price is unknown (None)."""
    return [r for r in report.rows if r.held and (r.usd_month is None or r.usd_month > 0)]


def _print_report(report: GuardReport) -> None:
    from rich.table import Table

    from tierzero.cli import output

    con = output.console()
    table = Table(title=f"Free-tier guard (limits of {report.limits_date.isoformat()})", title_justify="left")
    for name, justify in (("address", "left"), ("action", "left"), ("shape", "left"), ("OCPU", "right"),
                          ("GB", "right"), ("storage GB", "right"), ("$/month", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]  # rich wants a Literal
    for row in report.rows:
        table.add_row(row.address, row.action, row.shape, _q(row.ocpus), _q(row.memory_gb), _q(row.storage_gb),
                      _usd(row.usd_month) if row.held else "-")
    t = report.totals
    table.add_section()
    table.add_row(f"total ({t.resources_held} held after apply)", report.verdict, "A1", _q(t.a1_ocpus),
                  _q(t.a1_memory_gb), _q(t.storage_gb), _usd(t.usd_month) + (" + ?" if t.unpriced else ""))
    con.print(table)
    _print_verdict(report)


def _print_summary(report: GuardReport) -> None:
    """A large plan as plain lines: the totals, every billable line, how many free resources were
    left out, then every refusal. A table of 10,000 rows took seconds to lay out and buried what
    matters; `--verbose` still prints it."""
    from tierzero.cli import output

    t = report.totals
    lines = [f"Free-tier guard (limits of {report.limits_date.isoformat()}): {len(report.rows)} resources in the plan, "
             f"{t.resources_held} held after apply",
             f"total: A1 {t.a1_ocpus:g} OCPU / {t.a1_memory_gb:g} GB, {t.micro_instances} micro, {t.storage_gb:g} GB storage: "
             f"{_usd(t.usd_month)}/month" + (f" + {t.unpriced} without a list price" if t.unpriced else "")]
    charged = billable(report)
    if charged:
        lines.append(f"billable ({len(charged)}):")
        width, act = max(len(r.address) for r in charged), max(len(r.action) for r in charged)
        for r in charged:
            size = " ".join(p for p in (f"{r.ocpus:g} OCPU" if r.ocpus else "", f"{r.memory_gb:g} GB" if r.memory_gb else "",
                                        f"{r.storage_gb:g} GB storage" if r.storage_gb else "") if p)
            lines.append(f"  {r.address:<{width}}  {r.action:<{act}}  {_usd(r.usd_month):>12}/month  {r.shape} {size}".rstrip())
    lines.append(f"{len(report.rows) - len(charged)} more free resources: --verbose")
    con = output.console()
    con.file.write("\n".join(lines) + "\n")  # plain text: no markup to parse, no layout to measure
    _print_verdict(report)


def _print_verdict(report: GuardReport) -> None:
    from tierzero.cli import output

    con = output.console()
    for reason in report.reasons:
        con.print(f"✗ {reason}", markup=False)
    for finding in report.findings:
        if finding.kind == "warning":
            con.print(f"! {finding.line()}", markup=False)
    for note in report.notes:
        con.print(f"note: {note}", markup=False)
    con.print(f"verdict: {report.verdict}" + (f", the plan would {_consequence(report)}" if report.refused else ""), markup=False)


def add_fit_to_check(platform: Platform, limits_date: str | None = None) -> FitCheck:
    """The free-tier fit of a validated spec on `limits_date` (YYYY-MM-DD, default today): one line per violation
    (what, by how much, $/month, a fix that fits), warnings, and the capacity report.
    `check` exits 1 when `.charged`; `.refused` adds hard-limit breaches that cost nothing (e.g. a third VCN)."""
    from tierzero.freetier.limits import parse_day
    from tierzero.freetier.spec_check import check_spec, fit_check

    return fit_check(check_spec(platform, on=parse_day(limits_date)))
