"""Import every module under the given packages (default: ``tastelens``), recursively.

Prints where ``tastelens`` was imported from, then one imported module name per line; exits
1 after printing the traceback of every module that failed. ``tests/core/test_packaging.py``
runs it in the test environment (editable install: the package-dir roots are passed, since
they are not folders of ``tastelens/``) and in a fresh virtual environment holding only a
wheel built from this checkout (where every module lives under ``tastelens/``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback


def walk(name: str, seen: set[str], failed: list[str]) -> None:
    if name in seen:
        return
    seen.add(name)
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - report every failure, not just the first
        failed.append(f"{name}:\n{traceback.format_exc()}")
        return
    for info in pkgutil.iter_modules(getattr(module, "__path__", None) or []):
        walk(f"{name}.{info.name}", seen, failed)


def main(roots: list[str]) -> int:
    import tastelens

    print(f"from {tastelens.__file__}")
    seen: set[str] = set()
    failed: list[str] = []
    for root in roots:
        walk(root, seen, failed)
    for name in sorted(seen):
        print(name)
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["tastelens"]))
