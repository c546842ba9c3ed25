"""The package's shape: imports run one way (no cycle among lab's modules, counting imports inside
functions too), no lab module is imported inside a function except by the command line (which
imports a command's modules only when that command runs, so `python -m lab config` starts fast),
and only the store (the package lab/store/) writes SQL."""
import ast
import re
from pathlib import Path

LAB = Path(__file__).resolve().parent.parent / "lab"
STORE = LAB / "store"
LAZY_IMPORTS_ALLOWED = {"lab.__main__"}
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
                 r"|CREATE\s+(TABLE|VIEW|INDEX))\b", re.IGNORECASE | re.DOTALL)


def module_name(path: Path) -> str:
    parts = path.relative_to(LAB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lab_imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(imported lab module, inside a function?) for every import in the tree."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names if a.name.split(".")[0] == "lab")
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "lab":
                if child.module == "lab":
                    found.extend((f"lab.{a.name}", in_function) for a in child.names)
                else:
                    found.append((child.module, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def graph() -> dict[str, list[tuple[str, bool]]]:
    modules = {module_name(p): p for p in LAB.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = [(target, lazy) for target, lazy in lab_imports(ast.parse(path.read_text()))
                       if target in modules and target != name]
    return edges


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in edges.get(node, []):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None


def test_no_import_cycle_among_lab_modules():
    edges = {name: [target for target, _ in targets] for name, targets in graph().items()}
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_no_lab_module_is_imported_inside_a_function():
    lazy = sorted(f"{name} imports {target}" for name, targets in graph().items() if name not in LAZY_IMPORTS_ALLOWED
                  for target, inside in targets if inside)
    assert lazy == []


def test_only_the_store_writes_sql():
    offenders = []
    for path in LAB.rglob("*.py"):
        if STORE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                offenders.append(f"{path.relative_to(LAB)}:{node.lineno}")
    assert offenders == []
