"""The pki role on a fresh test host (lab `pkitest`, 172.30.21.0/24): keys made on the host,
certificates from the private CA on the controller, renewal, rotation, a replaced CA, and
bring-your-own certificates checked before anything changes. A TLS server on the host, serving with
what the role installed, proves the material works: our CA's clients connect, a client trusting
another CA refuses the server, and the server refuses a client certificate from another CA.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
TESTHOSTS = REPO / "tests/tools/testhosts/testhosts.py"
LAB, SUBNET, HOST = "pkitest", "172.30.21.0/24", "pki1"
TLS_DIR = "/etc/autodealgenie/tls"
PROBE_PORT = 8443
CERTIFICATES = [
    {"name": "web", "owner": "www-data"},
    {"name": "client", "owner": "root", "extended_key_usage": ["clientAuth"]},
]

if os.geteuid() != 0:  # test hosts are systemd-nspawn machines
    pytest.skip("needs root for the test hosts", allow_module_level=True)

PLAYBOOK = """\
- name: Certificates for the services of the host
  hosts: all
  become: true
  roles:
    - role: autodealgenie.ops.pki
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("pki")
    inventory = work / "hosts.yml"
    create = subprocess.run(
        [
            *(sys.executable, str(TESTHOSTS), "create", "--lab", LAB, "--subnet", SUBNET),
            *("--host", f"{HOST}:standalone", "--inventory", str(inventory)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert create.returncode == 0, create.stdout + create.stderr
    (work / "site.yml").write_text(PLAYBOOK)
    address = yaml.safe_load(inventory.read_text())["all"]["hosts"][HOST]["ansible_host"]
    yield {"work": work, "inventory": inventory, "address": address}
    subprocess.run([sys.executable, str(TESTHOSTS), "destroy", "--lab", LAB], cwd=REPO, timeout=600)


def converge(lab, **variables) -> subprocess.CompletedProcess:
    settings = {"pki_ca_dir": str(lab["work"] / "ca"), "pki_certificates": CERTIFICATES, **variables}
    extra = lab["work"] / "vars.yml"
    extra.write_text(yaml.safe_dump(settings))
    extra.chmod(0o600)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        # host names repeat across labs: facts of this lab only
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(lab["work"] / "facts"),
    )
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(lab["inventory"]),
            f"-e@{extra}",
            str(lab["work"] / "site.yml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )


def changed(run: subprocess.CompletedProcess) -> int:
    found = re.search(rf"^{HOST}\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", run.stdout, re.M)
    assert found, run.stdout[-5000:] + run.stderr[-2000:]
    return int(found.group(1))


def on_host(lab, command: str) -> str:
    done = subprocess.run(
        [sys.executable, str(TESTHOSTS), "ssh", "--lab", LAB, HOST, command],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout


def serial(lab, name: str) -> str:
    return on_host(lab, f"openssl x509 -noout -serial -in {TLS_DIR}/{name}.crt").strip()


def digests(lab) -> str:
    return on_host(lab, f"cd {TLS_DIR} && stat -c '%n %a %U %G' * && sha256sum *")


def fetch(lab, name: str, to: Path) -> Path:
    to.write_text(on_host(lab, f"cat {TLS_DIR}/{name}"))
    to.chmod(0o600)
    return to


# --- certificate material made here: another CA, and certificates for bring-your-own -------------


def new_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca, host: str, address: str, days: int = 200, client: bool = True):
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def pem(item) -> str:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM).decode()
    return item.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_pair(directory: Path, stem: str, cert, key) -> tuple[Path, Path]:
    directory.mkdir(exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_text(pem(cert))
    key_path.write_text(pem(key))
    key_path.chmod(0o600)
    return cert_path, key_path


# --- a TLS server on the host, serving with what the role installed ---------------------------


@pytest.fixture()
def tls_server(lab):
    # -Verify 1: a client certificate is required and must chain to the host's ca.crt
    on_host(
        lab,
        "systemd-run --unit=pki-probe --property=Type=exec "
        f"openssl s_server -quiet -www -accept {PROBE_PORT} -cert {TLS_DIR}/web.crt -key {TLS_DIR}/web.key "
        f"-CAfile {TLS_DIR}/ca.crt -Verify 1 -verify_return_error",
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((lab["address"], PROBE_PORT), timeout=2).close()
            break
        except OSError:
            time.sleep(0.3)
    yield lab["address"]
    on_host(lab, "systemctl stop pki-probe.service || true")


def get(address: str, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection((address, PROBE_PORT), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return tls.recv(200).decode(errors="replace")


def client_context(ca_file: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return context


# --- the tests, in order (each builds on the host the previous one left) -------------------------


def test_first_run_makes_keys_on_the_host_and_certificates_from_the_private_ca(lab):
    run = converge(lab)
    assert changed(run) > 0
    listing = on_host(lab, f"stat -c '%n %a %U %G' {TLS_DIR}/*").split("\n")
    modes = {Path(line.split()[0]).name: line.split()[1:] for line in listing if line}
    assert modes == {
        "ca.crt": ["644", "root", "root"],
        "web.crt": ["644", "root", "root"],
        "web.key": ["600", "www-data", "www-data"],
        "client.crt": ["644", "root", "root"],
        "client.key": ["600", "root", "root"],
    }  # and no CA key: it stays on the controller
    ca_dir = lab["work"] / "ca"
    assert oct(ca_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((ca_dir / "ca.key").stat().st_mode & 0o777) == "0o600"
    for name in ("web", "client"):
        assert "OK" in on_host(lab, f"openssl verify -CAfile {TLS_DIR}/ca.crt {TLS_DIR}/{name}.crt")
    names = on_host(lab, f"openssl x509 -noout -ext subjectAltName,extendedKeyUsage -in {TLS_DIR}/web.crt")
    assert f"DNS:{HOST}" in names and f"IP Address:{lab['address']}" in names
    assert "TLS Web Server Authentication" in names and "TLS Web Client Authentication" in names
    assert "TLS Web Server Authentication" not in on_host(
        lab, f"openssl x509 -noout -ext extendedKeyUsage -in {TLS_DIR}/client.crt"
    )


def test_a_second_run_changes_nothing(lab):
    before = digests(lab)
    assert changed(converge(lab)) == 0
    assert digests(lab) == before


def test_the_certificates_serve_tls_and_refuse_strangers(lab, tls_server, tmp_path):
    ca = fetch(lab, "ca.crt", tmp_path / "ca.crt")
    cert, key = (
        fetch(lab, "client.crt", tmp_path / "client.crt"),
        fetch(lab, "client.key", tmp_path / "c.key"),
    )
    # our CA, our client certificate: served
    assert get(tls_server, client_context(ca, cert, key)).startswith("HTTP/1.0 200")
    # a client that trusts another CA refuses the server
    other_ca_file, _ = write_pair(tmp_path / "other", "ca", *new_ca("Another CA"))
    with pytest.raises(ssl.SSLCertVerificationError):
        get(tls_server, client_context(other_ca_file, cert, key))
    # a client certificate from another CA, or none, is refused by the server
    other = new_ca("Another CA")
    stranger_cert, stranger_key = write_pair(
        tmp_path / "stranger", "client", *issue(other, HOST, lab["address"])
    )
    for context in (client_context(ca, stranger_cert, stranger_key), client_context(ca)):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            answer = get(tls_server, context)
            # TLS 1.3 sends the refusal after the handshake: an empty read is a refusal too
            if not answer:
                raise ConnectionError("closed without an answer")
    # and plain text is not spoken on a TLS port
    with socket.create_connection((tls_server, PROBE_PORT), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert not raw.recv(200).startswith(b"HTTP/")


def test_renewal_only_inside_the_window(lab):
    before = serial(lab, "web")
    # issued for 90 days: still valid 89 days from now, so nothing to renew
    assert changed(converge(lab, pki_renew_before_days=89, pki_certificate_valid_days=120)) == 0
    assert serial(lab, "web") == before
    # not valid 91 days from now: reissued (for 120 days), then left alone
    assert changed(converge(lab, pki_renew_before_days=91, pki_certificate_valid_days=120)) > 0
    assert serial(lab, "web") != before
    assert "OK" in on_host(lab, f"openssl verify -CAfile {TLS_DIR}/ca.crt {TLS_DIR}/web.crt")
    assert changed(converge(lab, pki_renew_before_days=91, pki_certificate_valid_days=120)) == 0


def test_rotation_reissues_every_certificate_and_keeps_the_keys(lab):
    serials = {name: serial(lab, name) for name in ("web", "client")}
    keys = on_host(lab, f"sha256sum {TLS_DIR}/web.key {TLS_DIR}/client.key")
    assert changed(converge(lab, pki_rotate=True)) > 0
    assert all(serial(lab, name) != old for name, old in serials.items())
    assert on_host(lab, f"sha256sum {TLS_DIR}/web.key {TLS_DIR}/client.key") == keys


def test_a_replaced_ca_reissues_every_certificate(lab):
    old_ca = on_host(lab, f"sha256sum < {TLS_DIR}/ca.crt")
    assert changed(converge(lab, pki_ca_dir=str(lab["work"] / "ca2"))) > 0
    assert on_host(lab, f"sha256sum < {TLS_DIR}/ca.crt") != old_ca
    assert (lab["work"] / "ca2" / "ca.crt").read_text() == on_host(lab, f"cat {TLS_DIR}/ca.crt")
    for name in ("web", "client"):
        assert "OK" in on_host(lab, f"openssl verify -CAfile {TLS_DIR}/ca.crt {TLS_DIR}/{name}.crt")


def test_a_missing_key_owner_is_refused_before_anything_changes(lab):
    before = digests(lab)
    run = converge(lab, pki_certificates=[*CERTIFICATES, {"name": "db", "owner": "postgres"}])
    assert run.returncode != 0
    assert "these key owners do not exist on pki1: ['postgres']" in " ".join(run.stdout.split())
    assert digests(lab) == before


def provided(lab, ca, certificates: dict) -> dict:
    return {
        "pki_mode": "provided",
        "pki_provided_ca_certificate": pem(ca[0]),
        "pki_provided_certificates": {
            name: {"certificate": pem(cert), "private_key": pem(key)}
            for name, (cert, key) in certificates.items()
        },
    }


def test_provided_certificates_are_checked_on_the_controller_before_anything_changes(lab):
    byo, stranger = new_ca("Our own CA"), new_ca("A CA nobody trusts here")
    good = {name: issue(byo, HOST, lab["address"]) for name in ("web", "client")}
    before = digests(lab)
    cases = {
        "another CA": (
            {**good, "web": issue(stranger, HOST, lab["address"])},
            "do not chain to pki_provided_ca_certificate",
        ),
        "another key": (
            {**good, "web": (good["web"][0], good["client"][1])},
            "its private key does not match it",
        ),
        "expiring": (
            {**good, "web": issue(byo, HOST, lab["address"], days=10)},
            "within pki_renew_before_days",
        ),
        "another host": ({**good, "web": issue(byo, "elsewhere", "10.9.9.9")}, "it does not name"),
    }
    for case, (certificates, message) in cases.items():
        run = converge(lab, **provided(lab, byo, certificates))
        said = " ".join(run.stdout.split())
        assert run.returncode != 0, f"{case}: accepted"
        assert message in said, f"{case}: {said[-3000:]}"
        # no private key in the output, ever
        for _cert, key in certificates.values():
            assert pem(key).splitlines()[1] not in run.stdout + run.stderr, f"{case}: a key was printed"
        assert digests(lab) == before, f"{case}: the host changed"

    run = converge(lab, **provided(lab, byo, good))
    assert changed(run) > 0
    for _cert, key in good.values():
        assert pem(key).splitlines()[1] not in run.stdout + run.stderr
    assert on_host(lab, f"cat {TLS_DIR}/ca.crt") == pem(byo[0])
    assert on_host(lab, f"cat {TLS_DIR}/web.key") == pem(good["web"][1])
    assert "OK" in on_host(lab, f"openssl verify -CAfile {TLS_DIR}/ca.crt {TLS_DIR}/web.crt")
    assert on_host(lab, f"stat -c '%a %U' {TLS_DIR}/web.key").split() == ["600", "www-data"]
    assert changed(converge(lab, **provided(lab, byo, good))) == 0
    digest = hashlib.sha256(pem(good["web"][0]).encode()).hexdigest()
    assert digest in on_host(lab, f"sha256sum {TLS_DIR}/web.crt")
