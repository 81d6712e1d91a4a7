"""The house's layering, read from every import statement of the source (imports inside
functions and under TYPE_CHECKING included):

- the core (``tastelens/``, except ``cli/`` and ``api/``, which are the top) imports none of
  the root folders: agent, eval, finetune, prompts, vectorstore;
- ``prompts/`` and ``vectorstore/`` import neither ``agent/``, ``eval/`` nor ``finetune/``;
- ``agent/`` imports neither ``eval/`` nor ``finetune/``; ``finetune/`` does not import ``eval/``;
- the pipeline's stages: profile imports neither retrieve, rank, explain nor chat; retrieve
  neither rank, explain nor chat; rank neither explain nor chat; explain no other stage; no
  stage imports the jobs (``agent/jobs/``), which run the stages for many users;
- the helpers the stages share (``agent/history.py``) import no stage, job nor the pipeline;
- no two modules import each other, directly or through others.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTER = ("tastelens.agent", "tastelens.eval", "tastelens.finetune", "tastelens.prompts",
         "tastelens.vectorstore")
TOP = ("tastelens.cli", "tastelens.api")
RULES: dict[str, tuple[str, ...]] = {
    "tastelens": OUTER,
    "tastelens.prompts": ("tastelens.agent", "tastelens.eval", "tastelens.finetune"),
    "tastelens.vectorstore": ("tastelens.agent", "tastelens.eval", "tastelens.finetune"),
    "tastelens.agent": ("tastelens.eval", "tastelens.finetune"),
    "tastelens.finetune": ("tastelens.eval",),
    "tastelens.eval": (),  # may use the agent and the fine-tuning code
}
AGENT_OUT = ("tastelens.eval", "tastelens.finetune")
STAGES = ("tastelens.agent.profile", "tastelens.agent.retrieve", "tastelens.agent.rank",
          "tastelens.agent.explain", "tastelens.agent.chat")
JOBS = "tastelens.agent.jobs"
RULES.update({  # the pipeline's stages, in their order: none reaches a later one, nor a job
    "tastelens.agent.profile": (*AGENT_OUT, *(s for s in STAGES if s != "tastelens.agent.profile"),
                                JOBS),
    "tastelens.agent.retrieve": (*AGENT_OUT, "tastelens.agent.rank", "tastelens.agent.explain",
                                 "tastelens.agent.chat", JOBS),
    "tastelens.agent.rank": (*AGENT_OUT, "tastelens.agent.explain", "tastelens.agent.chat", JOBS),
    "tastelens.agent.explain": (*AGENT_OUT, *(s for s in STAGES if s != "tastelens.agent.explain"),
                                JOBS),
    # what the stages share: below every stage
    "tastelens.agent.history": (*AGENT_OUT, *STAGES, JOBS, "tastelens.agent.pipeline"),
})


def source_modules() -> dict[str, Path]:
    """Every module of the distribution by name, from pyproject.toml's package-dir roots."""
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    modules: dict[str, Path] = {}
    for package, rel in sorted(roots.items(), key=lambda kv: len(kv[1])):
        for path in (ROOT / rel).rglob("*.py"):
            parts = list(path.relative_to(ROOT / rel).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path  # longer roots win (eval/baselines)
    return modules


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, wherever it stands, and every
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_for(module: str) -> tuple[str, tuple[str, ...]] | None:
    """The most specific layer ``module`` belongs to and what it must not import."""
    if any(within(module, top) for top in TOP):
        return None
    layer = max((layer for layer in RULES if within(module, layer)), key=len)
    return (layer, RULES[layer]) if RULES[layer] else None


def test_the_import_reader_sees_local_relative_and_dynamic_imports() -> None:
    source = ("import os\n"
              "def f():\n"
              "    from tastelens.agent.pipeline import RecommendPipeline\n"
              "if True:\n"
              "    import tastelens.eval.harness\n"
              "from . import sibling\n"
              "importlib.import_module('tastelens.finetune.train')\n")
    found = [name for _, name in imports_of(source, "tastelens.llm.base")]
    assert "tastelens.agent.pipeline.RecommendPipeline" in found
    assert "tastelens.eval.harness" in found and "tastelens.finetune.train" in found
    assert "tastelens.llm.sibling" in found


@pytest.mark.parametrize(("module", "layer"), [
    ("tastelens.llm.base", "tastelens"), ("tastelens.cli.chat", None),
    ("tastelens.agent.chat.session", "tastelens.agent"), ("tastelens.eval.harness", None),
    ("tastelens.prompts.renderer", "tastelens.prompts"),
    ("tastelens.agent.retrieve.retriever", "tastelens.agent.retrieve"),
    ("tastelens.agent.explain.support", "tastelens.agent.explain"),
    ("tastelens.config.settings", "tastelens"), ("tastelens.agent.jobs.batch", "tastelens.agent"),
    ("tastelens.agent.history", "tastelens.agent.history"),
    ("tastelens.agent.profile.facts", "tastelens.agent.profile"),
    ("tastelens.vectorstore.collaborative.sasrec", "tastelens.vectorstore"),
])
def test_each_module_gets_its_layers_rule(module: str, layer: str | None) -> None:
    rule = rule_for(module)
    assert (rule[0] if rule else None) == layer


def test_no_module_imports_a_layer_above_it() -> None:
    modules = source_modules()
    assert "tastelens.agent.pipeline" in modules and "tastelens.llm.base" in modules
    broken = []
    for module, path in sorted(modules.items()):
        rule = rule_for(module)
        if rule is None:
            continue
        layer, forbidden = rule
        for line, name in imports_of(path.read_text(encoding="utf-8"), module,
                                     path.name == "__init__.py"):
            if any(within(name, outer) for outer in forbidden):
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {name} "
                              f"({layer} must not import {', '.join(forbidden)})")
    assert not broken, "\n".join(broken)


def test_no_import_cycles() -> None:
    modules = source_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        names = {name for _, name in imports_of(path.read_text(encoding="utf-8"), module,
                                                path.name == "__init__.py")}
        # "from a.b import c": the module a.b.c when it is one, else a.b.
        graph[module] = {name if name in modules else name.rpartition(".")[0]
                         for name in names} & set(modules) - {module}
    cycles, done = [], set()

    def visit(module: str, stack: list[str]) -> None:
        if module in stack:
            cycles.append(" -> ".join(stack[stack.index(module):] + [module]))
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*stack, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
