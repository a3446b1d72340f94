"""The grafana role's vendor install path, for real, against a signed apt repository on the controller.

The vendor repository (apt.grafana.com) is not reachable here, so the controller serves, on its lab
address, a repository signed with a throw-away key that carries a FAKE `grafana` package in two
versions. This checks what can be checked without the real package: the key is refused with the
wrong fingerprint, apt accepts the repository through the signed-by keyring alone, the pinned
version is installed even though a newer one is offered, the package is held, and a second run
changes nothing. (Starting and configuring Grafana itself needs the real package.)
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from monitoring_lab import (
    MONITORING_HOSTS,
    REPO,
    RUNNER,
    SCENARIO,
    ansible_playbook,
    gpg,
    recap,
    serve_directory,
    throwaway_signing_key,
)

# The host without Grafana (not in the monitoring group) gets the fake package.
testinfra_hosts = [name for name in RUNNER.get_hosts("all") if name not in MONITORING_HOSTS][:1]

PINNED = yaml.safe_load((REPO / "roles" / "grafana" / "defaults" / "main.yml").read_text())["grafana_version"]
NEWER = re.sub(r"(\d+)$", lambda m: str(int(m.group(1)) + 1), PINNED)
FAKE_NOTE = "TEST FAKE of the grafana package (molecule/monitoring): not Grafana\n"


def build_fake_deb(workdir, version):
    root = workdir / f"grafana_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    doc = root / "usr" / "share" / "doc" / "grafana-test-fake"
    doc.mkdir(parents=True)
    (doc / "README").write_text(FAKE_NOTE)
    # the role's restart handler needs the unit the real package ships
    unit = root / "lib" / "systemd" / "system"
    unit.mkdir(parents=True)
    (unit / "grafana-server.service").write_text(
        "[Unit]\nDescription=TEST FAKE grafana-server (not Grafana)\n\n"
        "[Service]\nExecStart=/bin/sleep infinity\nDynamicUser=yes\n"
    )
    (root / "DEBIAN" / "control").write_text(
        "Package: grafana\n"
        f"Version: {version}\n"
        "Architecture: all\n"
        "Maintainer: AutoDealGenie tests <tests@test.invalid>\n"
        "Description: TEST FAKE of the grafana package (not Grafana)\n"
    )
    deb = workdir / f"grafana_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True, capture_output=True
    )
    return deb


def package_stanza(deb, filename):
    control = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True
    ).stdout.strip()
    data = deb.read_bytes()
    return f"{control}\nFilename: {filename}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"


@pytest.fixture(scope="module")
def signed_repo():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home, fingerprint = throwaway_signing_key(tmp)
        www = tmp / "www"
        pool = www / "pool"
        pool.mkdir(parents=True)
        (www / "gpg.key").write_bytes(gpg(home, "--armor", "--export").stdout)
        stanzas = []
        for version in (PINNED, NEWER):
            deb = build_fake_deb(tmp, version)
            target = pool / deb.name
            target.write_bytes(deb.read_bytes())
            stanzas.append(package_stanza(target, f"pool/{deb.name}"))
        packages = "\n".join(stanzas).encode()
        binary = www / "dists" / "stable" / "main" / "binary-amd64"
        binary.mkdir(parents=True)
        (binary / "Packages").write_bytes(packages)
        release = (
            "Origin: ADG test\nLabel: ADG test\nSuite: stable\nCodename: stable\n"
            f"Date: {datetime.now(UTC).strftime('%a, %d %b %Y %H:%M:%S UTC')}\n"
            "Architectures: amd64\nComponents: main\nSHA256:\n"
            f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-amd64/Packages\n"
        )
        release_file = www / "dists" / "stable" / "Release"
        release_file.write_text(release)
        gpg(home, "--clearsign", "--output", str(www / "dists" / "stable" / "InRelease"), str(release_file))
        with serve_directory(www) as url:
            yield {"url": url, "fingerprint": fingerprint}


def install(repo, fingerprint):
    extra = {"grafana_apt_repo_url": repo["url"], "grafana_apt_key_fingerprint": fingerprint}
    return ansible_playbook(
        str(SCENARIO / "fresh_host_check.yml"),
        "--tags",
        "grafana_install",
        "--limit",
        testinfra_hosts[0],
        "--extra-vars",
        json.dumps(extra),
    )


def changed(output):
    return recap(output, testinfra_hosts[0])["changed"]


def test_wrong_fingerprint_changes_nothing(host, signed_repo):
    result = install(signed_repo, "B53AE77BADB630A683046005963FA27710458545")
    assert result.returncode != 0
    assert "expected only" in result.stdout
    assert not host.file("/etc/apt/keyrings/grafana.asc").exists
    assert not host.file("/etc/apt/sources.list.d/grafana.sources").exists


def test_install_from_signed_repository_pinned_and_held(host, signed_repo):
    try:
        first = install(signed_repo, signed_repo["fingerprint"])
        assert first.returncode == 0, first.stdout[-4000:]
        assert changed(first.stdout) >= 3
        assert host.package("grafana").version == PINNED, f"pin {PINNED} not honoured (repo also has {NEWER})"
        assert "grafana" in host.check_output("apt-mark showhold").split()
        sources = host.file("/etc/apt/sources.list.d/grafana.sources").content_string
        assert "Signed-By: /etc/apt/keyrings/grafana.asc" in sources
        assert FAKE_NOTE.strip() in host.file("/usr/share/doc/grafana-test-fake/README").content_string
        second = install(signed_repo, signed_repo["fingerprint"])
        assert second.returncode == 0, second.stdout[-4000:]
        assert changed(second.stdout) == 0, second.stdout[-4000:]
    finally:
        host.run(
            "systemctl stop grafana-server; apt-mark unhold grafana; apt-get -y -qq purge grafana; "
            "rm -f /etc/apt/sources.list.d/grafana.sources /etc/apt/keyrings/grafana.asc; "
            "systemctl daemon-reload"
        )
