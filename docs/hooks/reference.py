"""MkDocs hook: the reference pages written from the code at build time, so nothing is written twice.

* ``reference/cli.md`` — every ``sigdl`` command and option, from the typer app itself
  (typer's own Markdown generator, ``typer.cli.get_docs_for_click``, the code behind
  ``typer sigdl_core.cli utils docs``).
* ``reference/recipe.md`` — every recipe key with its type, default and help, from the
  recipe's JSON Schema (``sigdl_core.recipe.json_schema``, what ``sigdl run --schema``
  prints); a core without the schema gets its commented example recipe instead.
* the ``<!-- installed-emulators -->`` mark in ``explanation/emulators.md`` becomes one
  section per installed emulator: its plugin, targets, declared options and the module
  docstring that says how it gets its numbers (rendered by mkdocstrings).

The hook reference (``reference/hooks.md``) and the API pages are mkdocstrings directives
on the modules themselves.
"""

from __future__ import annotations

import json
from typing import Any

from mkdocs.structure.files import File, Files

EMULATORS_MARK = "<!-- installed-emulators -->"


def cli_reference() -> str:
    """The ``sigdl`` commands as Markdown, from the typer app."""
    import click
    import typer
    from typer.cli import get_docs_for_click

    from sigdl_core.cli import app

    command = typer.main.get_command(app)
    ctx = click.Context(command, info_name="sigdl")
    body = get_docs_for_click(obj=command, ctx=ctx, name="sigdl", title="The sigdl command")
    intro = ("Generated from the typer app (`sigdl_core.cli`) when the site is built. Exit codes: 0 the budget "
             "was met (or the command did its job), 1 it was missed, 2 bad input, answered with one line.\n\n")
    head, _, rest = body.partition("\n")
    return f"{head}\n\n{intro}{rest}"


def _type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"[{schema['$ref'].rsplit('/', 1)[-1]}](#{schema['$ref'].rsplit('/', 1)[-1].lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s, defs) for s in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"mapping of {_type(schema['additionalProperties'], defs)}"
    bounds = [f"{op} {schema[k]}" for k, op in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                                                  ("exclusiveMaximum", "<")) if k in schema]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _table(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key, prop in schema.get("properties", {}).items():
        default = json.dumps(prop["default"]) if "default" in prop else "required" if key in schema.get(
            "required", ()) else ""
        text = (prop.get("description") or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{key}` | {_type(prop, defs)} | `{default}` | {text} |" if default else
                    f"| `{key}` | {_type(prop, defs)} | | {text} |")
    return "\n".join(rows)


def recipe_reference() -> str:
    """The recipe's keys as Markdown tables, from its JSON Schema."""
    from sigdl_core import recipe

    lines = ["# Recipe reference", ""]
    if not hasattr(recipe, "json_schema"):
        return "\n".join(lines + ["This core has no recipe schema; its commented example recipe:", "",
                                  "```yaml", recipe.EXAMPLE.rstrip(), "```", ""])
    schema = recipe.json_schema()
    defs = schema.get("$defs", {})
    lines += ["Generated from the recipe's JSON Schema (`sigdl_core.recipe.json_schema`) when the site is built; "
              "`sigdl run --schema > recipe.schema.json` writes the same schema for an editor. A recipe is YAML "
              "or TOML; an unknown key or a bad value is refused before any work, in one line naming its path.",
              "", "## The recipe", "", schema.get("description", ""), "", _table(schema, defs), ""]
    for name, sub in defs.items():
        if sub.get("type") == "object" or "properties" in sub:
            lines += [f"## {name}", "", sub.get("description", ""), "", _table(sub, defs), ""]
        else:
            lines += [f"## {name}", "", sub.get("description", ""), "", f"Type: {_type(sub, defs)}", ""]
    lines += ["## An example", "", "```yaml", recipe.EXAMPLE.rstrip(), "```", ""]
    return "\n".join(lines)


def emulators_section() -> str:
    """One section per installed emulator: plugin, targets, options, and its module's account."""
    from sigdl_core.plugins import load_plugins

    registry = load_plugins().registry
    out = []
    for spec in registry.specs("emulator"):
        module = type(registry.emulator(spec.name)).__module__
        targets = ", ".join(f"`{t.name}`" for t in registry.specs("target") if t.emulator == spec.name)
        out += [f"### `{spec.name}` ({spec.source})", "", spec.description + ".", "",
                f"Targets: {targets or 'none registered'}.", ""]
        if spec.options:
            out += ["| option | type | default | meaning |", "| --- | --- | --- | --- |"]
            out += [f"| `{o.name}` | {getattr(o.type, '__name__', str(o.type))} | `{o.default!r}` | "
                    f"{o.help.replace('|', '/')} |" for o in spec.options]
            out.append("")
        out += [f"::: {module}", "    options:", "      members: false", "      show_root_heading: false",
                "      show_root_toc_entry: false", ""]
    return "\n".join(out)


def on_files(files: Files, config: Any) -> Files:
    for src_uri, content in (("reference/cli.md", cli_reference()), ("reference/recipe.md", recipe_reference())):
        files.append(File.generated(config, src_uri, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if EMULATORS_MARK in markdown:
        markdown = markdown.replace(EMULATORS_MARK, emulators_section())
    return markdown
