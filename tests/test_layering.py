"""The layers import one way: data -> core -> checkpoint -> evaluation -> training. Every import statement
of the package (top-level or inside a function) is read with ast and resolved to its module."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "eqlens"

# a layer may not import these
FORBIDDEN = {
    "core": ("eqlens.checkpoint", "eqlens.evaluation", "eqlens.training"),
    "checkpoint": ("eqlens.evaluation", "eqlens.training"),
    "evaluation": ("eqlens.training",),
}


def imported_modules(path: Path) -> set[str]:
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer):
    offending = []
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no eqlens/{layer}"
    for path in files:
        for module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[layer]):
                offending.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not offending, offending


def test_the_check_sees_a_relative_import_inside_a_function(tmp_path):
    layer = PACKAGE / "checkpoint" / "card.py"
    assert "eqlens.core.run_config" in imported_modules(layer)  # ModelCard.train_config imports it lazily


def test_training_reexports_only_its_own_names():
    import eqlens.training as training

    assert set(training.__all__) == {"train", "TrainResult", "Progress"}
    with pytest.raises(AttributeError):
        training.load_checkpoint  # noqa: B018  one import path: eqlens.checkpoint
