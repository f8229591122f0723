"""The arrows point down: the domain imports no AWS SDK, nothing below the CLI imports the CLI, and the
package never imports the tests. Read from the source (the imports a module makes), not from a run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "pushdeploy" / "pushdeploy"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.glob("*.py"))


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in paths
        for module in sorted(imported_modules(path))
        if module.split(".")[0] in forbidden
        or any(module.startswith(f"{f}.") or module == f for f in forbidden)
    ]


def test_the_domain_imports_no_aws_sdk() -> None:
    assert offenders(modules_under("domain"), ("boto3", "botocore")) == []


@pytest.mark.parametrize("folder", ["", "domain", "adapters", "sources", "local"])
def test_nothing_below_the_cli_imports_it(folder: str) -> None:
    assert offenders(modules_under(folder), ("pushdeploy.cli",)) == []


def test_the_package_never_imports_the_tests() -> None:
    assert offenders(sorted(PACKAGE.rglob("*.py")), ("tests",)) == []
