"""docs/api.md's reference part is generated from the service's OpenAPI document and never stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from ledger_api.api.app import create_app

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "gen_api_docs.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_in_docs_api_md_matches_the_openapi_document() -> None:
    gen = _generator()
    text = gen.API_MD.read_text(encoding="utf-8")
    assert gen.updated(text, gen.render(create_app().openapi())) == text, "run scripts/gen_api_docs.py"


def test_every_route_and_schema_is_in_the_reference() -> None:
    gen = _generator()
    spec = create_app().openapi()
    rendered = gen.render(spec)
    for path, item in spec["paths"].items():
        for method in gen.METHODS:
            if method in item:
                assert f"#### `{method.upper()} {path}`" in rendered
    for name in spec["components"]["schemas"]:
        if name not in ("HTTPValidationError", "ValidationError"):
            assert f"#### `{name}`" in rendered
    # the hand-written part around it is kept
    assert gen.updated("# API\n\nintro\n", rendered).startswith("# API\n\nintro\n")
    twice = gen.updated(gen.updated("# API\n", rendered), rendered)
    assert twice.count(gen.BEGIN) == 1 and twice.count(gen.END) == 1
