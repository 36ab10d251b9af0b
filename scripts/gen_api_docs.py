"""Render the HTTP API reference in docs/api.md from the service's OpenAPI document.

The hand-written part of docs/api.md (authentication, errors, limits, flows) stays as it is; the
part between the ``BEGIN GENERATED`` and ``END GENERATED`` markers is rewritten from
``create_app().openapi()``: every route with its summary, parameters, request body, responses and
the schemas they use. ``--check`` exits 1 when the file is stale (a test runs it), so the reference
can never drift from the code.

Run: ``.venv/bin/python scripts/gen_api_docs.py [--check]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ledger_api.api.app import create_app  # noqa: E402

API_MD = REPO / "docs" / "api.md"
BEGIN = "<!-- BEGIN GENERATED: scripts/gen_api_docs.py renders this part from /openapi.json; do not edit -->"
END = "<!-- END GENERATED -->"
METHODS = ("get", "post", "put", "patch", "delete")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#schema-{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength", "maxLength", "pattern") if k in schema]
    return f"`{kind}`" + (f" ({', '.join(bounds)})" if bounds else "")


def render(spec: dict[str, Any]) -> str:
    """The generated Markdown for ``spec`` (an OpenAPI 3 document)."""
    out = [BEGIN, "", "## Reference (generated from `/openapi.json`)", ""]
    out.append(f"{spec['info']['title']} {spec['info']['version']} — every route the service serves. Errors are")
    out.append("problem+json documents (table above); each route's own codes are listed in its section above.")
    out.append("")
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                by_tag.setdefault((operation.get("tags") or ["other"])[0], []).append((method, path, operation))
    for tag in sorted(by_tag):
        out += [f"### {tag}", ""]
        for method, path, operation in by_tag[tag]:
            out.append(f"#### `{method.upper()} {path}`")
            out.append("")
            out.append(_cell(operation.get("summary", "")) + ".")
            if operation.get("description"):
                out += ["", _cell(operation["description"])]
            params = operation.get("parameters", [])
            if params:
                out += ["", "| parameter | in | type | required | description |", "|---|---|---|---|---|"]
                for p in params:
                    required = "yes" if p.get("required") else "no"
                    out.append(f"| `{p['name']}` | {p['in']} | {_cell(_type(p.get('schema', {})))} | {required} | "
                               f"{_cell(p.get('description', ''))} |")  # fmt: skip
            body = operation.get("requestBody", {}).get("content", {})
            if body:
                out += ["", "Request body: " + "; ".join(f"`{media}` {_type(c.get('schema', {}))}"
                                                          for media, c in body.items())]  # fmt: skip
            responses = operation.get("responses", {})
            codes = [
                f"`{code}` {_type(next(iter(r.get('content', {}).values()), {}).get('schema', {}))}"
                if r.get("content") and code != "default" and next(iter(r["content"].values())).get("schema")
                else f"`{code}` {_cell(r.get('description', ''))}"
                for code, r in responses.items()
            ]
            out += ["", "Responses: " + "; ".join(codes), ""]
    schemas = spec.get("components", {}).get("schemas", {})
    out += ["### Schemas", ""]
    for name in sorted(schemas):
        if name in ("HTTPValidationError", "ValidationError"):
            continue
        schema = schemas[name]
        out += [f'<a id="schema-{name.lower()}"></a>', f"#### `{name}`", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        if properties:
            out += ["| field | type | required | description |", "|---|---|---|---|"]
            for field, prop in properties.items():
                out.append(f"| `{field}` | {_cell(_type(prop))} | {'yes' if field in required else 'no'} | "
                           f"{_cell(prop.get('description', ''))} |")  # fmt: skip
            out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def updated(text: str, generated: str) -> str:
    """``text`` with its generated part replaced by ``generated`` (appended when absent)."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + generated + (("\n" + tail) if tail else "")
    return text.rstrip("\n") + "\n\n" + generated


def main() -> int:
    """Rewrite docs/api.md (or with --check: exit 1 if it is stale)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/api.md is not up to date")
    args = parser.parse_args()
    text = API_MD.read_text(encoding="utf-8")
    new = updated(text, render(create_app().openapi()))
    if args.check:
        if new != text:
            print("docs/api.md is stale: run scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    API_MD.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
