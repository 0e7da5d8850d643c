"""The table of conformance scenarios that docs/scenarios.md carries (a test keeps the two
equal, so the document cannot fall behind the code)."""

from __future__ import annotations

from .collection import SCENARIOS


def markdown_list() -> str:
    """One row per scenario: number, name, vCPUs, steps and what it covers."""
    rows = ["| # | scenario | vCPUs | steps | covers |", "|---|---|---|---|---|"]
    for i, c in enumerate(SCENARIOS):
        rows.append(f"| {i + 1:02d} | `{c.name}` | {c.scenario['vcpus']} | "
                    f"{len(c.scenario['steps'])} | {c.doc} |")
    return "\n".join(rows) + "\n"
