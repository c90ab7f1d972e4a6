"""Generate sandbox/bot_api_schema.json from the official machine-readable Bot API schema.

Usage: python scripts/gen_bot_api_schema.py [path-to-reference-json]

The reference file is large because of its prose; the sandbox only needs names, types and
whether a field is required, so descriptions, hrefs and the changelog are dropped. The output
is deterministic (sorted keys, fixed indent) so a regenerated table diffs cleanly and the test
suite can compare it byte for byte with the checked-in copy.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "telegram-bot-api-10.1.json"
OUTPUT = REPO_ROOT / "sandbox" / "bot_api_schema.json"

# Union members (ChatMember*, BotCommandScope*, InputMedia*, ...) are told apart by a
# discriminator whose value only appears in prose: 'always "creator"', 'must be chat'. It is
# the one piece of a description worth keeping, as "const", so the sandbox can pick the member.
_CONST_RE = re.compile(r"(?:always|must be) [\"“]?([a-z_0-9]+)[\"”]?\.?$")


def _field(raw: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": raw["name"],
        "types": list(raw["types"]),
        "required": bool(raw["required"]),
    }
    if entry["required"] and entry["types"] == ["String"]:
        match = _CONST_RE.search(raw.get("description", ""))
        if match:
            entry["const"] = match.group(1)
    return entry


def _fields(raw: dict[str, Any]) -> list[dict[str, Any]]:
    # Field order is kept: it is the documentation order, handy when reading the table.
    return [_field(f) for f in raw.get("fields", [])]


def build_table(reference: dict[str, Any]) -> dict[str, Any]:
    """Reduce the reference document to the compact table the sandbox loads."""
    methods = {
        name: {"name": m["name"], "returns": list(m["returns"]), "fields": _fields(m)}
        for name, m in reference["methods"].items()
    }
    types: dict[str, Any] = {}
    for name, t in reference["types"].items():
        entry: dict[str, Any] = {"name": t["name"], "fields": _fields(t)}
        if "subtypes" in t:
            entry["subtypes"] = list(t["subtypes"])
        types[name] = entry
    return {"version": reference["version"], "methods": methods, "types": types}


def render(table: dict[str, Any]) -> str:
    # ensure_ascii=False keeps any non-ASCII names readable; trailing newline for POSIX tools.
    return json.dumps(table, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def generate(reference_path: Path) -> str:
    reference = json.loads(reference_path.read_text(encoding="utf-8"))
    return render(build_table(reference))


def main(argv: list[str]) -> int:
    reference_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_REFERENCE
    OUTPUT.write_text(generate(reference_path), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO_ROOT)} from {reference_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
