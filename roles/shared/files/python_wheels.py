#!/usr/bin/env python3
"""Make one tar archive of wheels for a target interpreter, on the controller.

Used by the `python_wheels` entry point of autodealgenie.ops.shared, so target hosts install from
wheels only and never need a package index. Two modes:

  download  `pip download --only-binary=:all:` for the target's Python version and CPU, whatever
            the controller's own interpreter is (pinned requirements with binary wheels).
  build     `pip wheel` in a build venv made from --build-python, which must have exactly the
            target's Python version (sdists, local project directories and environment markers
            such as python_full_version are resolved with it).

pip reads the controller's own configuration (pip.conf, PIP_* variables: index, mirror, proxy).
The archive holds the wheels plus a marker file (--marker) and appears atomically (temporary file,
then rename), so an interrupted run never leaves an archive that looks complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# Build output a local project directory may hold; building from a copy without it keeps the
# source tree untouched (an in-tree setuptools build writes build/ and *.egg-info there).
_BUILD_LEFTOVERS = ("build", "dist")


def _copy_project(src: Path, dest: Path) -> None:
    def ignore(directory: str, names: list[str]) -> list[str]:
        top = Path(directory) == src
        return [
            n
            for n in names
            if (top and n in _BUILD_LEFTOVERS) or n.endswith(".egg-info") or n == "__pycache__"
        ]

    shutil.copytree(src, dest, ignore=ignore, symlinks=True)


def _pip_download(args: argparse.Namespace, wheel_dir: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        args.python_version,
    ]
    for platform in args.platform:
        cmd += ["--platform", platform]
    return [*cmd, "--dest", str(wheel_dir), *args.requirements]


def _pip_wheel(args: argparse.Namespace, wheel_dir: Path, work: Path) -> list[str]:
    venv = Path(args.build_venv)
    if not (venv / "bin" / "pip").exists():
        # A venv of the build interpreter brings its own pip (ensurepip), whatever the system has.
        subprocess.run([args.build_python, "-m", "venv", str(venv)], check=True)
    requirements = []
    for number, requirement in enumerate(args.requirements):
        path = Path(requirement)
        if path.is_dir():
            copy = work / f"src{number}"
            _copy_project(path.resolve(), copy)
            requirement = str(copy)
        requirements.append(requirement)
    return [
        str(venv / "bin" / "pip"),
        "wheel",
        "--disable-pip-version-check",
        "--quiet",
        "--wheel-dir",
        str(wheel_dir),
        *requirements,
    ]


def _python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["download", "build"])
    parser.add_argument("--archive", required=True, help="tar file to create")
    parser.add_argument("--marker", required=True, help="name of the marker file inside the archive")
    parser.add_argument("--python-version", required=True, help="target Python (X.Y or X.Y.Z)")
    parser.add_argument("--platform", action="append", default=[], help="download: wheel platform tag")
    parser.add_argument("--build-python", help="build: controller interpreter of the target's version")
    parser.add_argument("--build-venv", help="build: venv made from --build-python (reused)")
    parser.add_argument("requirements", nargs="+")
    args = parser.parse_args(argv)

    if args.mode == "build":
        if not args.build_python or not args.build_venv:
            parser.error("build needs --build-python and --build-venv")
        found = _python_version(args.build_python)
        if found != args.python_version:
            print(
                json.dumps(
                    {
                        "error": f"{args.build_python} is Python {found}, the target runs "
                        f"{args.python_version}: wheels and markers would not match"
                    }
                )
            )
            return 2

    archive = Path(args.archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build.", dir=archive.parent) as tmp:
        work = Path(tmp)
        wheel_dir = work / "wheels"
        wheel_dir.mkdir()
        cmd = _pip_download(args, wheel_dir) if args.mode == "download" else _pip_wheel(args, wheel_dir, work)
        subprocess.run(cmd, check=True)
        wheels = sorted(p.name for p in wheel_dir.glob("*.whl"))
        if not wheels:
            print(json.dumps({"error": "pip produced no wheel"}))
            return 1
        (wheel_dir / args.marker).write_text("\n".join(args.requirements) + "\n")
        partial = work / "wheels.tar"
        with tarfile.open(partial, "w") as tar:
            for name in [*wheels, args.marker]:
                tar.add(wheel_dir / name, arcname=name)
        partial.chmod(0o644)
        os.replace(partial, archive)
    print(json.dumps({"archive": str(archive), "wheels": wheels}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
