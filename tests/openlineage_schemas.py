"""The official OpenLineage JSON schemas (tests/openlineage_spec, vendored with their licence) and our own facet's
(docs/openlineage), and one check of an event against them all.

The RunEvent schema types every facet only as a generic `RunFacet`/`JobFacet`/`DatasetFacet` (`_producer` and
`_schemaURL`), so it cannot tell a facet's own fields wrong: each facet is validated again against the schema its
`_schemaURL` names, which must be one of the schemas held here (a URL nobody can resolve is a problem too).
Formats (`uuid`, `date-time`, `date`) are asserted.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
SPEC = Path(__file__).resolve().parent / "openlineage_spec"
OWN = ROOT / "docs" / "openlineage"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def schema_files() -> list[Path]:
    return sorted([*SPEC.rglob("*.json"), *OWN.rglob("*.json")])


@functools.cache
def registry() -> Registry:
    documents = [json.loads(path.read_text()) for path in schema_files()]
    return Registry().with_resources((document["$id"], Resource.from_contents(document)) for document in documents)


def known(url: str) -> bool:
    return url.partition("#")[0] in {uri for uri in registry()}


@functools.cache
def _validator(url: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": url}, registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(url: str, document: Any, where: str) -> list[str]:
    return [
        f"{where}{'.' + '.'.join(str(p) for p in error.absolute_path) if error.absolute_path else ''}: {error.message}"
        for error in _validator(url).iter_errors(document)
    ]


def facets_of(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every facet of the event with where it sits (`run.parent`, `outputs[1].facets.schema`, ...)."""
    found = [(f"run.{k}", v) for k, v in event["run"].get("facets", {}).items()]
    found += [(f"job.{k}", v) for k, v in event["job"].get("facets", {}).items()]
    for side in ("inputs", "outputs"):
        for n, dataset in enumerate(event.get(side, [])):
            for group in ("facets", "inputFacets", "outputFacets"):
                found += [(f"{side}[{n}].{group}.{k}", v) for k, v in dataset.get(group, {}).items()]
    return found


def event_problems(event: dict[str, Any]) -> list[str]:
    """What the RunEvent schema and each facet's own schema find wrong with the event (empty: nothing)."""
    problems = _errors(RUN_EVENT, event, "event")
    for where, facet in facets_of(event):
        url = facet.get("_schemaURL", "")
        if not known(url):
            problems.append(f"{where}: _schemaURL {url!r} is none of the schemas the tests hold")
            continue
        problems += _errors(url, facet, where)
    return problems
