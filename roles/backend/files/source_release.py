#!/usr/bin/env python3
"""Print the release identity of a Python project directory as JSON.

Runs on the controller. The release id combines the project's version with a digest of its
source files, so a rebuilt tree with an unchanged version still gets its own wheelhouse and
release directory, and an unchanged tree maps to the same ones (idempotent deploys).
"""

import hashlib
import json
import sys
import tomllib
from pathlib import Path

# Build output and caches that building or testing writes into the tree; not part of the source.
IGNORED_PARTS = {"build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv"}
# Top-level entries that never go into the wheel: editing tests or benchmarks is not a new release.
IGNORED_TOP = {"tests", "bench", "docs", ".github"}


def source_files(root: Path):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in IGNORED_TOP:
            continue
        if not path.is_file() or path.is_symlink():
            continue
        if IGNORED_PARTS.intersection(rel.parts) or any(p.endswith(".egg-info") for p in rel.parts):
            continue
        if path.suffix in {".pyc", ".pyo"}:
            continue
        yield rel, path


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        print(json.dumps({"error": f"{pyproject} not found"}))
        return 1
    project = tomllib.loads(pyproject.read_text())["project"]
    digest = hashlib.sha256()
    for rel, path in source_files(root):
        digest.update(str(rel).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    version = project.get("version")
    if version is None:
        print(json.dumps({"error": "project.version must be static in pyproject.toml"}))
        return 1
    short = digest.hexdigest()[:12]
    print(
        json.dumps(
            {
                "name": project["name"],
                "version": version,
                "digest": short,
                "release_id": f"{version}-{short}",
                # environment markers compare the full version (e.g. python_full_version < "3.11.3")
                "python": "{}.{}.{}".format(*sys.version_info[:3]),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
