"""Rules of the code base that a linter cannot check, read from gkbroad's source (ast).

- Only gkbroad.kafka.client.* imports kafka-python; confluent-kafka only lazily, there.
- Each room keeps to its layer (FORBIDDEN below), and the package root holds the public API only.
- Inside gkbroad/, gkbroad's own modules are imported relatively.
- No import cycle between gkbroad's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gkbroad

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

PACKAGE_DIR = Path(gkbroad.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the module, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((target, node.lineno))
            # `from . import x` / `from .pkg import mod` may name modules.
            found += [
                (f"{target}.{alias.name}", node.lineno) for alias in node.names if f"{target}.{alias.name}" in MODULES
            ]
    return found


def _absolute_gkbroad_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(name.split(".")[0] == "gkbroad" for name in names):
            lines.append(node.lineno)
    return lines


def test_only_the_client_package_imports_kafka_python():
    offenders = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        if not (name == "gkbroad.kafka.client" or name.startswith("gkbroad.kafka.client."))
        for target, line in _imports(name, path)
        if target.split(".")[0] == "kafka"
    ]
    assert offenders == []


def test_confluent_kafka_is_imported_lazily_by_the_client_package_only():
    """The librdkafka extra is optional: no module imports confluent_kafka when it is imported, and only
    rdkafka_settings.import_confluent_kafka() imports it at all (the others get the module from it)."""
    statements = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        for target, line in _imports(name, path)
        if target.split(".")[0] == "confluent_kafka"
    ]
    named = [
        f"{name}:{node.lineno}"
        for name, path in MODULES.items()
        if name != "gkbroad.kafka.client.rdkafka_settings"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("confluent_kafka")
    ]
    assert statements == [] and named == []


def test_gkbroad_imports_itself_relatively():
    offenders = [f"{name}:{line}" for name, path in MODULES.items() for line in _absolute_gkbroad_imports(path)]
    assert offenders == []


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for target, _ in _imports(name, path):
            # The innermost gkbroad module the import names.
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ importing its own modules (re-exports) is not a
    cycle of their code: edges from a package to its own submodules and back
    are ignored."""
    pruned = {}
    for name, targets in graph.items():
        pruned[name] = {
            t for t in targets if not (t.startswith(name + ".") or (name.startswith(t + ".") and t in _packages()))
        }
    return pruned


def _packages() -> set[str]:
    return {name for name, path in MODULES.items() if path.name == "__init__.py"}


def test_no_import_cycle_between_gkbroad_modules():
    assert _cycles(_without_packages(_graph())) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# -- layering ------------------------------------------------------------------
# Which rooms each room may not reach, by absolute module prefix. The engine is the
# core: it must run with any producer, so it knows nothing of Kafka, configuration
# files, the command line or WSGI; the consumer group is below the stages (they
# call it, never the other way); observability and wsgi are imported by a gunicorn
# master before its workers patch gevent, so they never reach kafka. The supervisor
# of `gkbroad run --processes` runs no pipeline: it manages processes and reads their
# status pages, so it knows neither the engine nor Kafka nor how a file is read (the
# command line hands it what it needs), and nothing below it knows it.
FORBIDDEN = {
    "gkbroad.engine": ("gkbroad.kafka", "gkbroad.config.toml", "gkbroad.cli", "gkbroad.wsgi", "gkbroad.testing"),
    "gkbroad.kafka.group": ("gkbroad.engine.stages", "gkbroad.engine.topology", "gkbroad.cli", "gkbroad.wsgi"),
    "gkbroad.observability": ("gkbroad.kafka", "gkbroad.cli", "gkbroad.wsgi", "gkbroad.supervisor"),
    "gkbroad.wsgi": ("gkbroad.kafka", "gkbroad.cli", "gkbroad.supervisor"),
    "gkbroad.config": ("gkbroad.cli", "gkbroad.wsgi", "gkbroad.supervisor"),
    "gkbroad.supervisor": ("gkbroad.kafka", "gkbroad.engine", "gkbroad.config", "gkbroad.cli", "gkbroad.testing"),
}

# What may sit at the root of the package: the public API only.
ROOT_MODULES = {"__init__", "__main__", "errors", "message", "pipeline", "producer"}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} imports {target} (forbidden for {room})"
        for room, banned in FORBIDDEN.items()
        for name, targets in graph.items()
        if _within(name, room)
        for target in targets
        if any(_within(target, prefix) for prefix in banned)
    )


def test_each_room_keeps_to_its_layer():
    # Lazy imports inside functions count too: ast.walk sees them.
    assert _layer_violations(_graph()) == []


def test_the_layer_check_finds_a_violation():
    graph = {"gkbroad.engine.topology": {"gkbroad.kafka.group.state"}, "gkbroad.kafka.group.state": set()}
    assert _layer_violations(graph) == [
        "gkbroad.engine.topology imports gkbroad.kafka.group.state (forbidden for gkbroad.engine)"
    ]


def test_the_package_root_holds_only_the_public_modules():
    root = {path.stem for path in PACKAGE_DIR.glob("*.py")}
    assert root <= ROOT_MODULES, f"modules at the root of gkbroad/ beyond the public API: {sorted(root - ROOT_MODULES)}"


def test_no_module_reaches_kafka_python_through_sys_modules():
    """Reading kafka-python's modules out of sys.modules is importing it by another name."""
    offenders = []
    for name, path in MODULES.items():
        if _within(name, "gkbroad.kafka.client"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("kafka."):
                offenders.append(f"{name}:{node.lineno} names {node.value!r}")
    assert offenders == []


# Built-in exceptions gkbroad may raise itself, and why each never reaches a user as a
# stray non-GkbroadError: errors.py promises that catching GkbroadError catches them all.
BUILTIN_RAISES_ALLOWED = {
    ("gkbroad.pipeline", "NotImplementedError"): "a handler the subclass must define; Python's own convention",
    ("gkbroad.producer", "NotImplementedError"): "receive() the producer class must define",
    (
        "gkbroad.config.fields",
        "ImportError",
    ): "import_object; import_or_error and the TOML loader turn it into config problems",
    ("gkbroad.config.docgen", "KeyError"): "a docs page names an unknown option table: a build-time error of the docs",
    ("gkbroad.testing.broker", "ConnectionError"): "caught by the readiness loop as OSError, then BrokerError",
}


def _builtin_raises() -> set[tuple[str, str]]:
    import builtins

    found = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                exc_name = node.exc.func.id
                if isinstance(getattr(builtins, exc_name, None), type):
                    found.add((name, exc_name))
    return found


def test_gkbroad_raises_its_own_errors():
    unexpected = sorted(_builtin_raises() - set(BUILTIN_RAISES_ALLOWED))
    assert unexpected == [], f"raise a GkbroadError subclass instead (or allow it here, with the reason): {unexpected}"
