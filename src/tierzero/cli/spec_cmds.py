"""`init`, `check` and `schema`: writing and validating the spec."""

from __future__ import annotations

from pathlib import Path

import typer

from tierzero.blueprints import blueprint_names, blueprint_text

BLUEPRINTS = tuple(blueprint_names())  # the package data: tierzero/spec/blueprints/*.yaml
SPEC_OPTION = typer.Option(Path("tierzero.yaml"), "--file", "-f", help="The spec file.")
JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("check")(check)
    app.command("schema")(schema)


def init(
    directory: Path = typer.Argument(Path("."), help="Where to write tierzero.yaml and .tierzero/."),
    blueprint: str = typer.Option("oci-free-tier", "--blueprint", "-b", help=f"One of: {', '.join(BLUEPRINTS)}."),
    force: bool = typer.Option(False, "--force", help="Replace an existing tierzero.yaml with the blueprint (keys are never replaced)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Write a commented, valid starter spec and a workspace with fresh keys.

    Over an existing workspace it keeps what is there (the spec unless --force, every key always) and creates
    only what is missing: the keys, the spec's JSON Schema and the workspace .gitignore."""
    from tierzero.cli import output
    from tierzero.errors import InputError
    from tierzero.workspace import Workspace
    from tierzero.workspace.keys import init_workspace
    from tierzero.workspace.layout import write_public

    if blueprint not in BLUEPRINTS:
        raise InputError(f"--blueprint: unknown blueprint {blueprint!r}", hint=f"use one of: {', '.join(BLUEPRINTS)}")
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a directory", hint="choose another DIR")
    spec_path = directory / "tierzero.yaml"
    schema_path = directory / "tierzero.schema.json"
    text = blueprint_text(blueprint)
    directory.mkdir(parents=True, exist_ok=True)
    ws = Workspace.beside(spec_path)
    created: list[str] = []
    kept: list[str] = []
    keys = init_workspace(ws, created=created, kept=kept)
    schema = _schema_text()
    if not schema_path.exists():
        write_public(schema_path, schema)
        created.append(str(schema_path))
    elif schema_path.read_text() != schema:
        write_public(schema_path, schema)  # generated from this tierzero's models, never edited by hand
        created.append(f"{schema_path} (updated to this tierzero's schema)")
    else:
        kept.append(str(schema_path))
    if spec_path.exists() and not force:
        kept.append(f"{spec_path} (pass --force to replace it with the {blueprint} blueprint)")
    else:
        replaced = spec_path.exists()
        write_public(spec_path, text)
        created.append(f"{spec_path} (blueprint {blueprint}{', replacing the previous spec' if replaced else ''})")
    result = {"spec": str(spec_path), "workspace": str(ws.root), "blueprint": blueprint, "created": created, "kept": kept, **keys}
    if json_out:
        output.print_json(result)
        return
    con = output.console()
    for item in created:
        con.print(f"wrote {item}", markup=False)
    for item in kept:
        con.print(f"kept {item}", markup=False)
    con.print(f"workspace {ws.root}: private files 0600, kept out of Git", markup=False)
    con.print(f"age recipient: {keys['age_recipient']}", markup=False)
    con.print(f"next: edit the spec, then `tierzero check -f {spec_path}`", markup=False)


def check(
    file: Path = SPEC_OPTION,
    limits_date: str = typer.Option(None, "--limits-date", help="Evaluate the free tier as of YYYY-MM-DD (default today)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Validate the spec and its free-tier fit; print a summary or every problem."""
    from tierzero.cli import output
    from tierzero.cli.summary import fit_section, spec_summary
    from tierzero.spec import SpecError, load_spec

    try:
        loaded = load_spec(file)
    except SpecError as exc:
        if json_out:
            output.print_json({"valid": False, "problems": [p.as_dict(exc.filename) for p in exc.problems]})
            raise typer.Exit(exc.exit_code) from None
        raise
    fit = fit_section(loaded, limits_date)
    if json_out:
        output.print_json({
            "valid": True,
            "warnings": [w.as_dict(str(file)) for w in loaded.warnings],
            "summary": spec_summary(loaded),
            **fit.as_json(),
        })
    else:
        con = output.console()
        from tierzero.cli.summary import print_summary

        print_summary(con, loaded)
        fit.print(con)
    if fit.charged:
        raise typer.Exit(1)


def schema(
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the spec's JSON Schema (for editors: yaml-language-server)."""
    text = _schema_text()
    if out:
        from tierzero.workspace.layout import write_public

        write_public(out, text)
    else:
        typer.echo(text, nl=False)


def _schema_text() -> str:
    import json

    from tierzero.spec.models import Platform

    schema = Platform.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://tierzero.dev/schemas/platform-v1.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
