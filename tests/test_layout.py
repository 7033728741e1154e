"""The tree reads as the flow: stages import only from earlier stages (the SDK's and the
research package's), the runtime never imports the export stage, the SDK never imports the
research package, neither imports the experiments, there are no import cycles (imports inside
functions included, and modules named in strings such as "pkg.module:attr" for importlib),
no function is longer than 60 lines, and docs/layout.md lists the modules that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SDK, RESEARCH, EXPERIMENTS = "lgcnet_deploy", "lgcnet_research", "experiments"
OURS = (SDK, RESEARCH, EXPERIMENTS)
# facts -> genotype/network -> what a model file is -> making one -> running one ->
# measurement/apps -> command line
STAGES = {"core": 0, "model": 1, "artifact": 2, "export": 3, "runtime": 4, "measure": 5,
          "apps": 5, "cli": 6}
# stages that must not import one another although the order would allow it: the runtime
# runs files (model + artifact), it never makes them
APART = {("runtime", "export")}
# the research package's folders: what every part shares -> latency tables -> training ->
# search -> commands
RESEARCH_STAGES = {"base": 0, "latency": 1, "train": 2, "search": 3, "commands": 4}
MAX_FUNCTION_LINES = 60
# a string that names one of our modules ("pkg.module" or "pkg.module:attr"): an import
# by importlib, which the import statements do not show
STRING_LINK = re.compile(r"(?:lgcnet_deploy|lgcnet_research|experiments)(?:\.[A-Za-z_]\w*)+"
                         r"(?::\w+)?")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(packages: tuple[str, ...] = OURS) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def string_links(path: Path) -> set[str]:
    """Modules named by a whole string constant of `path` ("pkg.module[:attr]")."""
    return {node.value.partition(":")[0] for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and STRING_LINK.fullmatch(node.value)}


def imports(path: Path, name: str | None = None) -> set[str]:
    """Every module `path` imports, wherever the import stands (module level, inside a
    function, under TYPE_CHECKING), relative imports resolved, and every module it names in
    a string (see `string_links`)."""
    nodes = list(ast.walk(ast.parse(path.read_text())))
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in found | string_links(path) if m.split(".")[0] in OURS}


def stage_of(module: str, package: str = SDK,
             stages: dict[str, int] = STAGES) -> int | None:
    parts = module.split(".")
    if parts[0] != package or len(parts) < 2 or parts[1] not in stages:
        return None  # the package front door (its __init__.py)
    return stages[parts[1]]


def existing(module: str) -> bool:
    path = ROOT / Path(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_sdk_module_belongs_to_a_stage():
    loose = [module_name(p) for p in (ROOT / SDK).glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside the stage packages {sorted(STAGES)}: {loose}"


def test_every_research_module_belongs_to_a_stage():
    loose = sorted({module_name(p).split(".")[1] for p in source_files((RESEARCH,))
                    if module_name(p) != RESEARCH} - set(RESEARCH_STAGES))
    assert loose == [], f"give {loose} a stage in RESEARCH_STAGES (tests/test_layout.py)"


def assert_flows_forward(path: Path, package: str, stages: dict[str, int],
                         never: tuple[str, ...], name: str | None = None) -> None:
    """`path` (module `name`, by default its name in the tree) imports only its own or an
    earlier stage, never a stage kept APART from its own, never a package in `never`."""
    name = name or module_name(path)
    own = stage_of(name, package, stages)
    for imported in imports(path, name):
        assert not imported.startswith(never), f"{path}: {package} imports {imported}"
        pair = tuple(m.split(".")[1] if m.startswith(f"{package}.") else None
                     for m in (name, imported))
        assert pair not in APART, f"{name} imports {imported}: {pair} stay apart"
        theirs = stage_of(imported, package, stages)
        if own is not None and theirs is not None and existing(imported):
            assert theirs <= own, (f"{name} (stage {own}) imports {imported} "
                                   f"(stage {theirs}, later)")


@pytest.mark.parametrize("path", source_files((SDK,)), ids=lambda p: module_name(p))
def test_sdk_imports_only_earlier_stages_and_never_research(path):
    assert_flows_forward(path, SDK, STAGES, (RESEARCH, EXPERIMENTS))


@pytest.mark.parametrize("path", source_files((RESEARCH,)), ids=lambda p: module_name(p))
def test_research_imports_only_earlier_stages_and_never_experiments(path):
    assert_flows_forward(path, RESEARCH, RESEARCH_STAGES, (EXPERIMENTS,))


def test_imports_inside_functions_are_seen():
    lazy = ROOT / RESEARCH / "commands" / "search.py"  # entry points import inside functions
    assert "lgcnet_research.search.config" in imports(lazy)


def test_string_links_are_seen_and_name_modules_that_exist():
    entry = ROOT / RESEARCH / "commands" / "search.py"  # "lgcnet_research.search.run:run"
    assert "lgcnet_research.search.run" in imports(entry)
    stale = sorted(f"{path.relative_to(ROOT)}: {link}" for path in source_files()
                   for link in string_links(path) if not existing(link))
    assert stale == [], f"strings name modules that do not exist: {stale}"


@pytest.mark.parametrize("module, text, message", [
    ("lgcnet_deploy.core.probe",
     'BACKEND = "lgcnet_deploy.runtime.backends.pytorch:TorchBackend"\n', "later"),
    ("lgcnet_deploy.runtime.probe", "from lgcnet_deploy.export import pipeline\n", "apart"),
])
def test_upward_and_apart_links_are_caught(tmp_path, module, text, message):
    probe = tmp_path / "probe.py"
    probe.write_text(text)
    with pytest.raises(AssertionError, match=message):
        assert_flows_forward(probe, SDK, STAGES, (RESEARCH, EXPERIMENTS), module)


def test_no_import_cycles():
    graph = {module_name(p): {m for m in imports(p) if existing(m) and m != module_name(p)}
             for p in source_files()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph.get(module, ())):
            if nxt in path[:-1] or state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*path, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_function_longer_than_60_lines():
    long = []
    for path in [*source_files(), *(ROOT / "samples").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert long == []


def test_layout_doc_names_every_package_and_module():
    doc = (ROOT / "docs" / "layout.md").read_text()
    layout = doc[doc.index("## Layout"):].split("\n## ", 1)[0]
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout))
    missing = []
    for path in source_files((SDK, RESEARCH)):
        name = path.parent.name if path.name == "__init__.py" else path.stem
        if name not in words and path.name != "__main__.py":
            missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"docs/layout.md's layout section does not name {missing}"
