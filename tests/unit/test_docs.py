"""The documentation is tested (Datasette's habit): a permission action, CLI command or setting that the
docs do not mention fails here, and so does a broken image or link."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
from fastapi import FastAPI

from zhengshu.bootstrap import load_features
from zhengshu.security.actor import Role

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
ALL_ROLES_WORD = "all"

_IMAGE_MD = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMAGE_HTML = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)
_LINK_MD = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _registered_actions() -> dict[str, object]:
    """Every action: the features' own modules, then the routers (some register beside their API)."""
    load_features()
    from zhengshu.web.routes import mount_all

    mount_all(FastAPI())
    from zhengshu.security.authz import ACTIONS

    return dict(ACTIONS)


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.fullmatch(r"\|[\s|:-]+\|", line):
            continue
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _permission_rows() -> dict[str, list[str]]:
    """Rows of docs/permissions.md keyed by the action name in their first cell (`name`)."""
    rows: dict[str, list[str]] = {}
    for cells in _table_rows(_read(DOCS / "permissions.md")):
        m = re.fullmatch(r"`([a-z_]+\.[a-z_]+)`", cells[0])
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} is listed twice in docs/permissions.md"
            rows[m.group(1)] = cells
    return rows


def _documented_roles(cell: str) -> frozenset[Role]:
    if cell == ALL_ROLES_WORD:
        return frozenset(Role)
    return frozenset(Role(word.strip()) for word in cell.split(","))


def test_every_permission_action_is_documented_with_its_label_roles_and_resource() -> None:
    actions = _registered_actions()
    rows = _permission_rows()
    assert actions, "no permission action is registered"
    missing = sorted(set(actions) - set(rows))
    assert not missing, f"actions missing from docs/permissions.md: {missing}"
    for name, action in actions.items():
        cells = rows[name]
        assert len(cells) >= 4, f"row of {name} needs name, label, roles, resource"
        assert cells[1] == action.label, f"{name}: label in docs {cells[1]!r} != registered {action.label!r}"
        assert _documented_roles(cells[2]) == action.roles, f"{name}: roles {cells[2]!r} are stale"
        resource = action.resource or "—"
        assert cells[3] == resource, f"{name}: resource {cells[3]!r} in docs != registered {resource!r}"


def test_permissions_doc_lists_no_action_that_is_not_registered() -> None:
    stale = sorted(set(_permission_rows()) - set(_registered_actions()))
    assert not stale, f"docs/permissions.md lists actions that no longer exist: {stale}"


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Command paths under a group (duck-typed: recent Typer ships its own copy of Click)."""
    paths: list[tuple[str, ...]] = []
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):
        for name, sub in subcommands.items():
            if getattr(sub, "hidden", False):
                continue
            paths.append((*prefix, name))
            paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


def test_every_cli_command_is_documented() -> None:
    from zhengshu.cli.main import app

    paths = _command_paths(typer.main.get_command(app))
    assert any(len(p) == 2 for p in paths), "expected groups with sub-commands (zhengshu db upgrade …)"
    text = _read(DOCS / "operator-guide.md") + "\n" + _read(README)
    missing = [
        " ".join(("zhengshu", *p))
        for p in paths
        if not re.search(r"\bzhengshu " + r"\s+".join(map(re.escape, p)) + r"(?![\w-])", text)
    ]
    assert not missing, f"commands missing from docs/operator-guide.md and README.md: {missing}"


def test_every_setting_is_documented_in_the_operator_guide() -> None:
    from zhengshu.core.config import Settings

    text = _read(DOCS / "operator-guide.md")
    names = [f"ZHENGSHU_{field.upper()}" for field in Settings.model_fields]
    assert names
    missing = [name for name in names if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"settings missing from docs/operator-guide.md: {missing}"


def _image_refs(path: Path) -> list[str]:
    text = _read(path)
    return _IMAGE_MD.findall(text) + _IMAGE_HTML.findall(text)


def test_every_image_referenced_from_the_docs_exists() -> None:
    refs = [(doc, ref) for doc in [*_doc_files(), README] for ref in _image_refs(doc)]
    assert refs, "the docs reference no image at all"
    missing = [
        f"{doc.name}: {ref}"
        for doc, ref in refs
        if not _EXTERNAL.match(ref) and not (doc.parent / ref.split("#")[0]).is_file()
    ]
    assert not missing, f"images referenced but missing: {missing}"


def test_every_screenshot_is_used_in_the_docs() -> None:
    used = {(doc.parent / ref).resolve() for doc in [*_doc_files(), README] for ref in _image_refs(doc)}
    shots = sorted((DOCS / "images").glob("*.png"))
    unused = [p.name for p in shots if p.resolve() not in used]
    assert not unused, f"screenshots in docs/images that no page shows: {unused}"


def test_relative_links_in_the_docs_resolve() -> None:
    broken = []
    for doc in _doc_files():
        for ref in _LINK_MD.findall(_read(doc)):
            if _EXTERNAL.match(ref):
                continue
            if not (doc.parent / ref.split("#")[0]).exists():
                broken.append(f"{doc.name}: {ref}")
    assert not broken, f"broken links: {broken}"


def test_user_guide_lists_the_demo_accounts_and_has_a_section_per_role() -> None:
    from zhengshu.demo.builder import DEMO_PASSWORD, PRINTED_USERS

    text = _read(DOCS / "user-guide.md")
    assert DEMO_PASSWORD in text
    missing = [u for u in PRINTED_USERS if f"`{u}`" not in text]
    assert not missing, f"demo accounts missing from docs/user-guide.md: {missing}"
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    for role in ("部门数据专员", "审核员", "部门用户", "平台管理员"):
        assert any(role in h for h in headings), f"docs/user-guide.md has no section for {role}"


@pytest.mark.parametrize("name", ["architecture.md", "operator-guide.md", "user-guide.md", "permissions.md"])
def test_readme_documents_exist(name: str) -> None:
    assert (DOCS / name).is_file()
