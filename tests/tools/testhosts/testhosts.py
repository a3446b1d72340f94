#!/usr/bin/env python3
"""VM-like local test hosts: systemd-nspawn machines on a per-lab bridge, reached over SSH.

A *lab* is a named set of hosts with its own bridge ``adg-<lab>``, subnet (gateway .1 on the
bridge) and nftables table ``ip adg_<lab>`` (NAT towards the package mirror). Each host is a copy
of a cached debootstrap image booted with systemd as PID 1, so roles see a real systemd machine.

    testhosts.py create --lab common --subnet 172.30.11.0/24 --host node1:monitoring \\
        --host node2:app --inventory /tmp/inv.yml
    testhosts.py status [--lab common] [--json]
    testhosts.py ssh --lab common node1 -- systemctl is-system-running
    testhosts.py destroy --lab common        # or: destroy --all

Python 3.11 standard library only (PyYAML is used for YAML spec files when importable).
State lives under $ADG_TESTHOSTS_DIR (default /var/lib/adg-testhosts).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/adg-testhosts"
# Seconds a just-started host may go without a visible systemd-nspawn process.
NSPAWN_START_GRACE_S = 10.0
DEFAULT_SUITE = "bookworm"
SUPPORTED_SUITES = ("bookworm", "trixie")
# Bump when the image customisation below changes, so cached images are rebuilt.
IMAGE_FORMAT = 3
IMAGE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",  # ansible.builtin.apt needs it; baking it in saves an install per host
    "openssh-server",
    "sudo",
    "iproute2",
    "procps",
    "ca-certificates",
)
FIRST_HOST_OFFSET = 11  # hosts get .11, .12, ...; .1 is the controller's bridge address
IFNAMSIZ_MAX = 15
NSPAWN_MACHINE_MAX = 12  # nspawn names the host-side veth "vb-<machine>" (15 chars max)
# Sorts before 80-container-host0.network shipped by systemd, which would run DHCP on host0.
NETWORKD_FILE = "10-adg-host0.network"
BOOT_TIMEOUT = 180
# A destroyed lab keeps nothing, so a clean shutdown is only a courtesy: a host still stopping
# services after this long is killed (a restored PostgreSQL took over 60 s).
STOP_TIMEOUT = 15
SSH_OPTIONS = (
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
)  # fmt: skip
LAB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
HOST_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
GROUP_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TesthostsError(Exception):
    """An error the user can act on; printed without a traceback."""


# --------------------------------------------------------------------------------------------
# Pure parts: spec parsing, naming, addressing, collisions, recipe, inventory (unit-tested)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HostSpec:
    name: str
    groups: tuple[str, ...] = ()
    address: str | None = None


@dataclasses.dataclass(frozen=True)
class LabSpec:
    lab: str
    subnet: str
    suite: str
    hosts: tuple[HostSpec, ...]

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def bridge(self) -> str:
        return bridge_name(self.lab)

    def to_json(self) -> dict:
        return {
            "lab": self.lab,
            "subnet": self.subnet,
            "suite": self.suite,
            "hosts": [dataclasses.asdict(h) | {"groups": list(h.groups)} for h in self.hosts],
        }

    @classmethod
    def from_json(cls, data: dict) -> LabSpec:
        hosts = tuple(
            HostSpec(h["name"], tuple(h.get("groups", ())), h.get("address")) for h in data["hosts"]
        )
        return cls(data["lab"], data["subnet"], data["suite"], hosts)


def bridge_name(lab: str) -> str:
    name = f"adg-{lab}"
    if len(name) > IFNAMSIZ_MAX:
        raise TesthostsError(
            f"bridge name {name!r} is {len(name)} characters; Linux allows {IFNAMSIZ_MAX}. "
            f"Use a lab name of at most {IFNAMSIZ_MAX - 4} characters."
        )
    return name


def nft_table_name(lab: str) -> str:
    return "adg_" + lab.replace("-", "_")


def machine_name(lab: str, host: str) -> str:
    """Unique nspawn machine name, short enough for the "vb-<machine>" veth name."""
    name = f"{lab}-{host}"
    if len(name) <= NSPAWN_MACHINE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    return f"{name[: NSPAWN_MACHINE_MAX - 5].rstrip('-')}-{digest}"


def parse_host_arg(text: str) -> HostSpec:
    """Parse ``name[:group1,group2[:address]]`` from the command line."""
    parts = text.split(":")
    if not parts[0] or len(parts) > 3:
        raise TesthostsError(f"--host {text!r}: expected name[:group,group[:address]]")
    groups = tuple(g for g in parts[1].split(",") if g) if len(parts) > 1 else ()
    address = parts[2] if len(parts) > 2 and parts[2] else None
    return HostSpec(parts[0], groups, address)


def parse_spec_text(text: str, source: str = "spec") -> dict:
    """Parse a JSON or YAML spec document: {lab, subnet, suite, hosts: [{name, groups, address}]}."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml  # optional: present wherever ansible is installed
        except ImportError as exc:
            raise TesthostsError(f"{source}: not JSON, and PyYAML is not available for YAML") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TesthostsError(f"{source}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TesthostsError(f"{source}: expected a mapping with keys lab, subnet, hosts")
    unknown = set(data) - {"lab", "subnet", "suite", "hosts"}
    if unknown:
        raise TesthostsError(f"{source}: unknown keys {sorted(unknown)}")
    hosts = []
    for i, entry in enumerate(data.get("hosts") or []):
        if isinstance(entry, str):
            hosts.append(parse_host_arg(entry))
            continue
        if not isinstance(entry, dict) or "name" not in entry:
            raise TesthostsError(f"{source}: hosts[{i}] needs a name")
        extra = set(entry) - {"name", "groups", "address"}
        if extra:
            raise TesthostsError(f"{source}: hosts[{i}] has unknown keys {sorted(extra)}")
        groups = entry.get("groups") or []
        if isinstance(groups, str):
            groups = [groups]
        hosts.append(HostSpec(str(entry["name"]), tuple(str(g) for g in groups), entry.get("address")))
    data["hosts"] = hosts
    return data


def build_lab_spec(
    lab: str | None, subnet: str | None, suite: str | None, hosts: Iterable[HostSpec]
) -> LabSpec:
    """Validate names and addresses and assign missing addresses (.11, .12, ... in order)."""
    if not lab:
        raise TesthostsError("a lab name is required (--lab or 'lab:' in the spec)")
    if not LAB_NAME_RE.match(lab):
        raise TesthostsError(f"lab name {lab!r}: use lowercase letters, digits and '-'")
    bridge_name(lab)
    if not subnet:
        raise TesthostsError("a subnet is required (--subnet, e.g. 172.30.11.0/24)")
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise TesthostsError(f"subnet {subnet!r}: {exc}") from exc
    if network.prefixlen > 28:
        raise TesthostsError(f"subnet {subnet}: too small, use /28 or larger")
    suite = suite or DEFAULT_SUITE
    if suite not in SUPPORTED_SUITES:
        raise TesthostsError(f"suite {suite!r}: supported suites are {', '.join(SUPPORTED_SUITES)}")
    hosts = list(hosts)
    if not hosts:
        raise TesthostsError("no hosts given (--host name:groups or 'hosts:' in the spec)")
    gateway = network.network_address + 1
    reserved = {network.network_address, gateway, network.broadcast_address}
    taken: dict[ipaddress.IPv4Address, str] = {}
    names: set[str] = set()
    for host in hosts:
        if not HOST_NAME_RE.match(host.name):
            raise TesthostsError(f"host name {host.name!r}: use lowercase letters, digits and '-'")
        if host.name in names:
            raise TesthostsError(f"host {host.name!r} is listed twice")
        names.add(host.name)
        for group in host.groups:
            if not GROUP_NAME_RE.match(group) or group in ("all", "ungrouped"):
                raise TesthostsError(f"host {host.name}: invalid inventory group name {group!r}")
        if host.address:
            try:
                addr = ipaddress.IPv4Address(host.address)
            except ValueError as exc:
                raise TesthostsError(f"host {host.name}: {exc}") from exc
            if addr not in network or addr in reserved:
                raise TesthostsError(
                    f"host {host.name}: address {addr} is not a usable host address of {network}"
                )
            if addr in taken:
                raise TesthostsError(f"hosts {taken[addr]} and {host.name} both use {addr}")
            taken[addr] = host.name
    result = []
    candidates = (network.network_address + FIRST_HOST_OFFSET + i for i in range(network.num_addresses))
    for host in hosts:
        if host.address:
            result.append(HostSpec(host.name, host.groups, str(ipaddress.IPv4Address(host.address))))
            continue
        for addr in candidates:
            if addr in network and addr not in reserved and addr not in taken:
                taken[addr] = host.name
                result.append(HostSpec(host.name, host.groups, str(addr)))
                break
        else:
            raise TesthostsError(f"subnet {network} has no free address for host {host.name}")
    return LabSpec(lab, str(network), suite, tuple(result))


def route_collisions(subnet: str, routes: Iterable[dict], own_bridge: str) -> list[str]:
    """Routes (``ip -j route show table all`` entries) overlapping ``subnet``, except our bridge's own."""
    network = ipaddress.IPv4Network(subnet)
    found = []
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("dev") == own_bridge:
            continue
        if route.get("type") in ("broadcast", "local", "multicast") and route.get("table") == "local":
            continue
        try:
            other = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if other.version == 4 and other.overlaps(network) and other.prefixlen > 0:
            desc = " ".join(
                str(route[k]) if k == "dst" else f"{k} {route[k]}"
                for k in ("dst", "dev", "via")
                if k in route
            )
            found.append(desc)
    return found


def recipe(suite: str, mirror: str, packages: Iterable[str], controller_config_digest: str) -> dict:
    return {
        "format": IMAGE_FORMAT,
        "suite": suite,
        "mirror": mirror,
        "packages": sorted(packages),
        "controller_config": controller_config_digest,
    }


def recipe_hash(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Stanzas of a deb822 .sources file (comments dropped, continuation lines joined)."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_one_line_sources(text: str) -> list[dict[str, str]]:
    """``deb [opts] uri suite comp...`` lines as deb822-like stanzas."""
    stanzas = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        kind = fields.pop(0)
        options = {}
        if fields and fields[0].startswith("["):
            opt = []
            while fields:
                opt.append(fields.pop(0))
                if opt[-1].endswith("]"):
                    break
            for item in " ".join(opt).strip("[]").split():
                name, _, value = item.partition("=")
                options[name] = value
        if len(fields) < 2:
            continue
        stanza = {"Types": kind, "URIs": fields[0], "Suites": fields[1], "Components": " ".join(fields[2:])}
        if "signed-by" in options:
            stanza["Signed-By"] = options["signed-by"]
        stanzas.append(stanza)
    return stanzas


def debian_sources_for_suite(
    stanzas: Iterable[dict[str, str]], controller_suite: str, suite: str
) -> list[dict[str, str]]:
    """The controller's Debian entries (those naming its own suite) re-targeted at ``suite``.

    Third-party repositories (suites not derived from the controller's codename) are left out.
    """
    result = []
    for stanza in stanzas:
        if stanza.get("Enabled", "yes").lower() == "no" or "deb" not in stanza.get("Types", "").split():
            continue
        suites = stanza.get("Suites", "").split()
        mapped = [
            suite + s[len(controller_suite) :]
            for s in suites
            if s == controller_suite
            or s.startswith(controller_suite + "-")
            or s.startswith(controller_suite + "/")
        ]
        if not mapped:
            continue
        out = {"Types": "deb", "URIs": stanza["URIs"], "Suites": " ".join(mapped)}
        out["Components"] = stanza.get("Components", "main")
        signed_by = stanza.get("Signed-By")
        if (
            signed_by
            and "\n" not in signed_by
            and signed_by.startswith("/usr/share/keyrings/debian-archive-")
        ):
            out["Signed-By"] = "/usr/share/keyrings/debian-archive-keyring.gpg"
        elif signed_by and "\n" not in signed_by:
            out["Signed-By"] = signed_by
        result.append(out)
    return result


def render_deb822(stanzas: Iterable[dict[str, str]]) -> str:
    blocks = ["\n".join(f"{k}: {v}" for k, v in stanza.items()) for stanza in stanzas]
    return (
        "# Copied from the controller's apt sources by tests/tools/testhosts/testhosts.py\n\n"
        + "\n\n".join(blocks)
        + "\n"
    )


def primary_mirror(stanzas: Iterable[dict[str, str]]) -> str | None:
    """The URI of the first entry serving the plain suite (not -security/-updates): debootstrap's mirror."""
    for stanza in stanzas:
        for s in stanza["Suites"].split():
            if "-" not in s and "/" not in s:
                return stanza["URIs"].split()[0]
    return None


def apt_conf_is_portable(text: str) -> bool:
    """Whether an apt.conf snippet is a network/setting snippet safe to copy into test hosts.

    Skips hooks (Post-Invoke: they call controller tools) and cache tweaks (Docker's docker-clean
    would delete the .debs that seed the shared archive cache).
    """
    if not re.search(r"^\s*Acquire", text, re.MULTILINE | re.IGNORECASE):
        return False
    return not re.search(r"Invoke|Dir::Cache|Keep-Downloaded-Packages", text, re.IGNORECASE)


def _yaml_scalar(value: object) -> str:
    # JSON strings/numbers are valid YAML flow scalars.
    return json.dumps(value)


def render_inventory(spec: LabSpec, key_path: str) -> str:
    """Ansible YAML inventory for the lab: groups from the spec, connection vars, private_ip."""
    lines = [
        f"# Test hosts of lab {spec.lab!r} ({spec.subnet}, bridge {spec.bridge}).",
        "# Written by tests/tools/testhosts/testhosts.py create; regenerated on every create.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {_yaml_scalar(key_path)}",
        "    ansible_python_interpreter: /usr/bin/python3",
        "  hosts:",
    ]
    for host in spec.hosts:
        lines += [
            f"    {host.name}:",
            f"      ansible_host: {_yaml_scalar(host.address)}",
            f"      private_ip: {_yaml_scalar(host.address)}",
        ]
    groups: dict[str, list[str]] = {}
    for host in spec.hosts:
        for group in host.groups:
            groups.setdefault(group, []).append(host.name)
    if groups:
        lines.append("  children:")
        for group in sorted(groups):
            lines += [f"    {group}:", "      hosts:"]
            lines += [f"        {name}: {{}}" for name in groups[group]]
    return "\n".join(lines) + "\n"


def render_etc_hosts(hostname: str | None = None) -> str:
    """/etc/hosts as the Debian installer writes it: services that start on their default
    configuration (PostgreSQL, etcd) bind ``localhost``. The image gets it without a hostname
    (minbase bookworm ships none at all); each host gets its own ``127.0.1.1 <hostname>`` line."""
    own = f"127.0.1.1\t{hostname}\n" if hostname else ""
    return (
        f"127.0.0.1\tlocalhost\n{own}\n"
        "# The following lines are desirable for IPv6 capable hosts\n"
        "::1     localhost ip6-localhost ip6-loopback\n"
        "ff02::1 ip6-allnodes\n"
        "ff02::2 ip6-allrouters\n"
    )


def render_networkd(address: str, prefixlen: int, gateway: str) -> str:
    return (
        "# Static address on the lab bridge (testhosts.py); sorts before 80-container-host0.network.\n"
        "[Match]\nName=host0\n\n"
        f"[Network]\nAddress={address}/{prefixlen}\nGateway={gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )


# --------------------------------------------------------------------------------------------
# Side effects
# --------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"testhosts: {msg}", file=sys.stderr, flush=True)


def run(
    cmd: list[str],
    *,
    check: bool = True,
    capture: bool = True,
    input_text: str | None = None,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=capture, text=True, input=input_text, env=env, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip() if capture else ""
        raise TesthostsError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{detail}")
    return proc


@contextlib.contextmanager
def flocked(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {what} (lock {path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class State:
    """Paths under the state directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.images = self.root / "images"
        self.labs = self.root / "labs"
        self.key = self.root / "ssh" / "id_ed25519"
        self.apt_archives = self.root / "apt-archives"

    def lab_dir(self, lab: str) -> Path:
        return self.labs / lab

    def lab_file(self, lab: str) -> Path:
        return self.lab_dir(lab) / "lab.json"

    def machine_dir(self, lab: str, host: str) -> Path:
        return self.lab_dir(lab) / "machines" / host

    def pid_file(self, lab: str, host: str) -> Path:
        return self.lab_dir(lab) / "run" / f"{host}.pid"

    def log_file(self, lab: str, host: str) -> Path:
        return self.lab_dir(lab) / "log" / f"{host}.log"

    def lab_lock(self, lab: str) -> Path:
        return self.labs / f".{lab}.lock"


def require_root_and_tools(tools: Iterable[str]) -> None:
    if os.geteuid() != 0:
        raise TesthostsError("must run as root (it creates bridges, nftables rules and nspawn machines)")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        hint = {
            "systemd-nspawn": "systemd-container",
            "debootstrap": "debootstrap",
            "nft": "nftables",
            "ip": "iproute2",
            "ssh": "openssh-client",
            "ssh-keygen": "openssh-client",
        }
        pkgs = sorted({hint.get(t, t) for t in missing})
        raise TesthostsError(f"missing {', '.join(missing)}; install with: apt-get install {' '.join(pkgs)}")


# ---- controller configuration that test hosts inherit ---------------------------------------


def os_release(root: Path = Path("/")) -> dict[str, str]:
    data = {}
    for path in (root / "etc/os-release", root / "usr/lib/os-release"):
        if path.exists():
            for line in path.read_text().splitlines():
                key, _, value = line.partition("=")
                data[key] = value.strip().strip('"')
            break
    return data


def controller_sources() -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    sources_list = Path("/etc/apt/sources.list")
    if sources_list.exists():
        stanzas += parse_one_line_sources(sources_list.read_text())
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*")):
        if path.suffix == ".sources":
            stanzas += parse_deb822(path.read_text())
        elif path.suffix == ".list":
            stanzas += parse_one_line_sources(path.read_text())
    return stanzas


def portable_apt_conf_files() -> list[Path]:
    files = [Path("/etc/apt/apt.conf")] if Path("/etc/apt/apt.conf").exists() else []
    files += sorted(p for p in Path("/etc/apt/apt.conf.d").glob("*") if p.is_file())
    return [p for p in files if apt_conf_is_portable(p.read_text(errors="replace"))]


def local_ca_files() -> list[Path]:
    root = Path("/usr/local/share/ca-certificates")
    return sorted(p for p in root.rglob("*.crt") if p.is_file()) if root.exists() else []


def pip_conf_files() -> list[Path]:
    return [p for p in (Path("/etc/pip.conf"), Path("/root/.config/pip/pip.conf")) if p.is_file()]


def resolv_conf_text() -> str:
    """The controller's resolvers; a loopback stub (systemd-resolved) is replaced by its upstreams."""
    for candidate in (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf")):
        if not candidate.exists():
            continue
        text = candidate.read_text()
        servers = re.findall(r"^\s*nameserver\s+(\S+)", text, re.MULTILINE)
        if servers and not all(ipaddress.ip_address(s.split("%")[0]).is_loopback for s in servers):
            return (
                "\n".join(
                    line for line in text.splitlines() if not re.match(r"\s*nameserver\s+(127\.|::1)", line)
                )
                + "\n"
            )
    raise TesthostsError(
        "no non-loopback DNS server in /etc/resolv.conf or /run/systemd/resolve/resolv.conf; "
        "test hosts cannot resolve the package mirror"
    )


def apt_proxy_env() -> dict[str, str]:
    """Acquire::http(s)::Proxy from the controller's apt config, for debootstrap's downloads."""
    env = {}
    for scheme in ("http", "https"):
        proc = run(["apt-config", "shell", "P", f"Acquire::{scheme}::Proxy"], check=False)
        match = re.search(r"P='([^']*)'", proc.stdout or "")
        if match and match.group(1) not in ("", "DIRECT", "false"):
            env[f"{scheme}_proxy"] = match.group(1)
    return env


@dataclasses.dataclass
class ImageInputs:
    suite: str
    mirror: str
    sources: str
    files: dict[str, bytes]  # path inside the image -> content

    def digest(self) -> str:
        h = hashlib.sha256(self.sources.encode())
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + self.files[path] + b"\0")
        return h.hexdigest()


def gather_image_inputs(suite: str, mirror_override: str | None) -> ImageInputs:
    release = os_release()
    controller_suite = release.get("VERSION_CODENAME", "")
    stanzas = debian_sources_for_suite(controller_sources(), controller_suite, suite)
    if release.get("ID") != "debian" and not mirror_override:
        raise TesthostsError(
            f"the controller runs {release.get('ID', 'an unknown OS')}, not Debian, so its apt sources "
            "cannot serve a Debian image: pass --mirror <Debian mirror URL> (or ADG_TESTHOSTS_MIRROR)"
        )
    mirror = mirror_override or primary_mirror(stanzas)
    if not mirror:
        raise TesthostsError(
            f"no Debian '{controller_suite}' entry found in the controller's apt sources; pass --mirror"
        )
    if mirror_override:
        stanzas = [s for s in stanzas if "-security" in s["Suites"]]
        stanzas.insert(
            0,
            {
                "Types": "deb",
                "URIs": mirror_override,
                "Suites": f"{suite} {suite}-updates",
                "Components": "main",
                "Signed-By": "/usr/share/keyrings/debian-archive-keyring.gpg",
            },
        )
    files: dict[str, bytes] = {}
    for path in portable_apt_conf_files():
        files[f"etc/apt/apt.conf.d/{path.name if path.name != 'apt.conf' else '00controller'}"] = (
            path.read_bytes()
        )
    for path in local_ca_files():
        rel = path.relative_to("/usr/local/share/ca-certificates")
        files[f"usr/local/share/ca-certificates/{rel}"] = path.read_bytes()
    for path in pip_conf_files():
        files[str(path).lstrip("/")] = path.read_bytes()
    files["etc/resolv.conf"] = resolv_conf_text().encode()
    # Part of the digest, so changing these lines rebuilds cached images.
    files["etc/hosts"] = render_etc_hosts().encode()
    # Keep .debs for the shared archive cache (harvested on destroy); `apt` deletes them by default.
    files["etc/apt/apt.conf.d/10adg-keep-archives"] = (
        b'APT::Keep-Downloaded-Packages "true";\nBinary::apt::APT::Keep-Downloaded-Packages "true";\n'
    )
    return ImageInputs(suite, mirror, render_deb822(stanzas), files)


# ---- image --------------------------------------------------------------------------------


def ensure_image(state: State, inputs: ImageInputs) -> tuple[Path, float | None]:
    """Path of the cached rootfs for this recipe, building it if needed; returns (path, build seconds)."""
    key = recipe_hash(recipe(inputs.suite, inputs.mirror, IMAGE_PACKAGES, inputs.digest()))
    image_dir = state.images / f"{inputs.suite}-{key}"
    if (image_dir / ".complete").exists():
        return image_dir / "rootfs", None
    with flocked(state.images / ".lock", "another image build"):
        if (image_dir / ".complete").exists():
            return image_dir / "rootfs", None
        started = time.monotonic()
        log(f"building {inputs.suite} image {key} from {inputs.mirror} (debootstrap, about a minute)")
        build_dir = state.images / f".build-{key}"
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        rootfs = build_dir / "rootfs"
        env = os.environ | apt_proxy_env()
        proc = run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(IMAGE_PACKAGES)}",
                inputs.suite,
                str(rootfs),
                inputs.mirror,
            ],
            check=False,
            env=env,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            debootstrap_log = rootfs / "debootstrap" / "debootstrap.log"
            if debootstrap_log.exists():
                tail += "\n--- debootstrap.log ---\n" + "\n".join(
                    debootstrap_log.read_text().splitlines()[-15:]
                )
            raise TesthostsError(f"debootstrap of {inputs.suite} from {inputs.mirror} failed:\n{tail}")
        customise_image(rootfs, inputs)
        (build_dir / "recipe.json").write_text(
            json.dumps(recipe(inputs.suite, inputs.mirror, IMAGE_PACKAGES, inputs.digest()), indent=2)
        )
        (build_dir / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        build_dir.rename(image_dir)
        remove_outdated_images(state, inputs.suite, image_dir)
        return image_dir / "rootfs", time.monotonic() - started


def remove_outdated_images(state: State, suite: str, keep: Path) -> None:
    """Delete older images of ``suite``, unless a create is copying one right now (it holds the
    copy lock shared); then they are left for the next build."""
    with (state.images / ".copy.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("an image copy is in progress; outdated images are kept for now")
            return
        for old in state.images.glob(f"{suite}-*"):
            if old != keep:
                log(f"removing outdated image {old.name}")
                shutil.rmtree(old, ignore_errors=True)


def customise_image(rootfs: Path, inputs: ImageInputs) -> None:
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(inputs.sources)
    for rel, content in inputs.files.items():
        target = rootfs / rel
        if target.is_symlink():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    run(["chroot", str(rootfs), "update-ca-certificates", "--fresh"])
    run(["chroot", str(rootfs), "systemctl", "enable", "systemd-networkd.service", "ssh.service"])
    # Background apt runs would hold the dpkg lock during converges; test hosts update on demand.
    run(
        [
            "chroot",
            str(rootfs),
            "systemctl",
            "mask",
            "apt-daily.timer",
            "apt-daily-upgrade.timer",
            "e2scrub_all.timer",
            "fstrim.timer",
            "getty@tty1.service",
        ],
        check=False,
    )
    # Per-host identity is written at host creation.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/machine-id").write_text("")
    run(["chroot", str(rootfs), "apt-get", "clean"], check=False)


# ---- network: bridge, NAT, forwarding ------------------------------------------------------


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def check_subnet_free(spec: LabSpec) -> None:
    proc = run(["ip", "-j", "route", "show", "table", "all"], check=False)
    routes = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    collisions = route_collisions(spec.subnet, routes, spec.bridge)
    if collisions:
        raise TesthostsError(
            f"subnet {spec.subnet} for lab {spec.lab} collides with existing route(s): "
            + "; ".join(collisions)
            + ". Choose another --subnet."
        )


# Every booted host's systemd (and its services: journald, udev, dbus...) takes inotify instances
# from root's shared per-user limit, Debian's default 128: with a dozen hosts booted across labs,
# services fail at start with "Too many open files". Raised, never lowered.
INOTIFY_LIMITS = {"max_user_instances": 1024, "max_user_watches": 524288}


def ensure_host_limits() -> None:
    for name, wanted in INOTIFY_LIMITS.items():
        path = Path("/proc/sys/fs/inotify") / name
        with contextlib.suppress(OSError, ValueError):
            if int(path.read_text()) < wanted:
                path.write_text(f"{wanted}\n")
                log(f"fs.inotify.{name} raised to {wanted} (booted hosts share root's limit)")


def ensure_network(spec: LabSpec) -> None:
    bridge, table = spec.bridge, nft_table_name(spec.lab)
    if not link_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge"])
    gw_cidr = f"{spec.gateway}/{spec.network.prefixlen}"
    addrs = json.loads(run(["ip", "-j", "-4", "addr", "show", "dev", bridge]).stdout or "[]")
    have = {f"{a['local']}/{a['prefixlen']}" for entry in addrs for a in entry.get("addr_info", [])}
    if gw_cidr not in have:
        run(["ip", "addr", "add", gw_cidr, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    # Replace the lab's table atomically: hosts' traffic leaving through any other interface is
    # masqueraded, so hosts reach the mirror (and DNS) exactly as the controller does.
    ruleset = (
        f"table ip {table} {{}}\ndelete table ip {table}\n"
        f"table ip {table} {{\n"
        f"  chain postrouting {{\n"
        f"    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    ip saddr {spec.subnet} oifname != "{bridge}" masquerade\n'
        f"  }}\n}}\n"
    )
    run(["nft", "-f", "-"], input_text=ruleset)
    ensure_forward_accept(spec.lab, bridge)


def _nft_json(args: list[str]) -> list[dict]:
    proc = run(["nft", "-j", *args], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    return json.loads(proc.stdout).get("nftables", [])


def ensure_forward_accept(lab: str, bridge: str) -> None:
    """Let the lab's traffic through forward chains of other tables whose policy drops (Docker, ufw...)."""
    comment = f"adg-{lab}"
    ruleset = _nft_json(["list", "ruleset"])
    ours = nft_table_name(lab)
    for item in ruleset:
        chain = item.get("chain")
        if not chain or chain.get("hook") != "forward" or chain.get("policy") != "drop":
            continue
        if chain["table"] == ours or chain["family"] not in ("ip", "inet"):
            continue
        present = any(
            r.get("rule", {}).get("comment") == comment
            and r["rule"]["table"] == chain["table"]
            and r["rule"]["chain"] == chain["name"]
            for r in ruleset
        )
        if present:
            continue
        where = [chain["family"], chain["table"], chain["name"]]
        log(f"forward chain {' '.join(where)} drops by default; inserting accept rules for {bridge}")
        run(
            [
                "nft",
                "insert",
                "rule",
                *where,
                "oifname",
                bridge,
                "ct",
                "state",
                "established,related",
                "accept",
                "comment",
                f'"{comment}"',
            ]
        )
        run(["nft", "insert", "rule", *where, "iifname", bridge, "accept", "comment", f'"{comment}"'])


def remove_network(lab: str) -> list[str]:
    removed = []
    bridge, table = bridge_name(lab), nft_table_name(lab)
    comment = f"adg-{lab}"
    for item in _nft_json(["-a", "list", "ruleset"]):
        rule = item.get("rule")
        if rule and rule.get("comment") == comment:
            run(
                [
                    "nft",
                    "delete",
                    "rule",
                    rule["family"],
                    rule["table"],
                    rule["chain"],
                    "handle",
                    str(rule["handle"]),
                ],
                check=False,
            )
            removed.append(f"forward rule in {rule['table']}/{rule['chain']}")
    if run(["nft", "list", "table", "ip", table], check=False).returncode == 0:
        run(["nft", "delete", "table", "ip", table])
        removed.append(f"nft table ip {table}")
    if link_exists(bridge):
        run(["ip", "link", "delete", bridge])
        removed.append(f"bridge {bridge}")
    return removed


# ---- machines ------------------------------------------------------------------------------


def nspawn_pids(machine_dir: Path) -> list[int]:
    """systemd-nspawn processes running ``machine_dir`` (found via /proc, survives lost pid files)."""
    pids = []
    target = str(machine_dir)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn") and target.encode() in argv:
            pids.append(int(proc.name))
    return pids


def descendant_pids(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, then theirs), from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # the command name (field 2) may hold spaces and parentheses: ppid follows the last ')'
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(proc.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def rooted_pids(directory: Path) -> list[int]:
    """Processes whose root directory is inside ``directory`` (machine payloads orphaned by a crash)."""
    pids = []
    prefix = str(directory)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            root = os.readlink(proc / "root")
        except OSError:
            continue
        if root == prefix or root.startswith(prefix + "/"):
            pids.append(int(proc.name))
    return pids


def host_running(state: State, lab: str, host: str) -> int | None:
    pids = nspawn_pids(state.machine_dir(lab, host))
    return pids[0] if pids else None


def clean_machine_leftovers(state: State, lab: str, host: str) -> None:
    """Remove what a crashed run may leave: pid file, host-side veth, nspawn propagation dir, mounts."""
    machine = machine_name(lab, host)
    state.pid_file(lab, host).unlink(missing_ok=True)
    veth = f"vb-{machine}"[:IFNAMSIZ_MAX]
    if link_exists(veth):
        run(["ip", "link", "delete", veth], check=False)
    shutil.rmtree(f"/run/systemd/nspawn/propagate/{machine}", ignore_errors=True)
    unmount_under(state.machine_dir(lab, host))


def unmount_under(path: Path) -> None:
    prefix = str(path)
    mounts = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            mount_point = line.split()[4].encode().decode("unicode_escape")
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                mounts.append(mount_point)
    for mount_point in sorted(mounts, key=len, reverse=True):
        run(["umount", "-l", mount_point], check=False)


def prepare_machine(state: State, spec: LabSpec, host: HostSpec, image: Path) -> None:
    target = state.machine_dir(spec.lab, host.name)
    tmp = target.with_name(f".{host.name}.new")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with (image.parent.parent / ".copy.lock").open("a") as copy_lock:
        fcntl.flock(copy_lock, fcntl.LOCK_SH)  # keeps remove_outdated_images off this image
        if not image.exists():
            raise TesthostsError(f"image {image.parent.name} was replaced meanwhile; run create again")
        run(["cp", "--reflink=auto", "-a", str(image), str(tmp)])
    (tmp / "etc/hostname").write_text(f"{host.name}\n")
    (tmp / "etc/hosts").write_text(render_etc_hosts(host.name))
    (tmp / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    network_dir = tmp / "etc/systemd/network"
    network_dir.mkdir(parents=True, exist_ok=True)
    (network_dir / NETWORKD_FILE).write_text(
        render_networkd(host.address or "", spec.network.prefixlen, spec.gateway)
    )
    run(["ssh-keygen", "-q", "-A", "-f", str(tmp)])
    ssh_dir = tmp / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(Path(f"{state.key}.pub").read_text())
    authorized.chmod(0o600)
    tmp.rename(target)


def boot_machine(state: State, spec: LabSpec, host: HostSpec) -> int:
    clean_machine_leftovers(state, spec.lab, host.name)
    log_path = state.log_file(spec.lab, host.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    state.pid_file(spec.lab, host.name).parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "systemd-nspawn",
        "--register=no",
        "--keep-unit",
        "-b",
        f"--network-bridge={spec.bridge}",
        "-D",
        str(state.machine_dir(spec.lab, host.name)),
        "--machine",
        machine_name(spec.lab, host.name),
        "--console=read-only",
        "--resolv-conf=off",  # keep the resolv.conf copied from the controller
    ]
    with log_path.open("ab") as out:
        out.write(f"\n=== {time.strftime('%F %T')} {' '.join(cmd)}\n".encode())
        out.flush()
        # Own session: the machine outlives this CLI (and molecule's ansible task).
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    state.pid_file(spec.lab, host.name).write_text(f"{proc.pid}\n")
    return proc.pid


# The shared apt archive cache. Bind-mounting one directory as every host's
# /var/cache/apt/archives does not work: apt holds archives/lock for a whole install, and the
# lock is shared through the bind mount, so concurrent installs on different hosts (and labs)
# fail with "Could not get lock /var/cache/apt/archives/lock". Instead each new host starts with
# hard links to the cached .debs (instant, no extra disk) and destroy hard-links new ones back.
def _debs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.deb")) if directory.is_dir() else []


def _link_or_copy(source: Path, target: Path) -> bool:
    if target.exists():
        return False
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError:
        # across filesystems: copy then rename, so a lab seeding at the same time never links a
        # half-copied package
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copy2(source, partial)
        os.replace(partial, target)
    return True


def seed_apt_archives(state: State, machine_dir: Path) -> int:
    archives = machine_dir / "var/cache/apt/archives"
    archives.mkdir(parents=True, exist_ok=True)
    return sum(_link_or_copy(deb, archives / deb.name) for deb in _debs(state.apt_archives))


def harvest_apt_archives(state: State, machine_dir: Path) -> int:
    debs = _debs(machine_dir / "var/cache/apt/archives")
    if debs:
        state.apt_archives.mkdir(parents=True, exist_ok=True)
    return sum(_link_or_copy(deb, state.apt_archives / deb.name) for deb in debs)


def ssh_command(state: State, address: str, *remote: str) -> list[str]:
    return ["ssh", *SSH_OPTIONS, "-i", str(state.key), f"root@{address}", *remote]


def wait_for_ssh(state: State, spec: LabSpec, hosts: list[HostSpec], timeout: float) -> dict[str, float]:
    """Wait until each host's systemd finished booting and SSH answers; returns seconds per host."""
    started = time.monotonic()
    pending = {h.name: h for h in hosts}
    done: dict[str, float] = {}
    while pending:
        for name, host in list(pending.items()):
            if not host_running(state, spec.lab, name):
                # Right after the start, the launcher may not have exec'd systemd-nspawn yet (seen
                # under load): only a host still missing after a grace period has exited.
                if time.monotonic() - started < NSPAWN_START_GRACE_S:
                    continue
                tail = "\n".join(
                    state.log_file(spec.lab, name).read_text(errors="replace").splitlines()[-20:]
                )
                raise TesthostsError(
                    f"host {name}: systemd-nspawn exited during boot; last log lines:\n{tail}"
                )
            try:
                with socket.create_connection((host.address, 22), timeout=1):
                    pass
            except OSError:
                continue
            proc = run(
                ssh_command(
                    state,
                    host.address or "",
                    "timeout",
                    str(int(timeout)),
                    "systemctl",
                    "is-system-running",
                    "--wait",
                ),
                check=False,
            )
            status = (proc.stdout or "").strip()
            if status in ("running", "degraded"):
                done[name] = time.monotonic() - started
                del pending[name]
                if status == "degraded":
                    failed = run(
                        ssh_command(state, host.address or "", "systemctl", "--failed", "--no-legend"),
                        check=False,
                    ).stdout.strip()
                    log(f"warning: {name} booted degraded: {failed}")
        if time.monotonic() - started > timeout:
            names = ", ".join(sorted(pending))
            raise TesthostsError(
                f"hosts {names} did not answer SSH within {timeout:.0f}s; see "
                + ", ".join(str(state.log_file(spec.lab, n)) for n in pending)
            )
        if pending:
            time.sleep(0.5)
    return done


def stop_machines(state: State, lab: str, hosts: Iterable[str], timeout: float = STOP_TIMEOUT) -> list[str]:
    """Power hosts off together: SIGTERM to each nspawn (clean systemd shutdown), SIGKILL after
    ``timeout``. Returns the hosts that were running."""
    pids: dict[int, str] = {}
    for host in hosts:
        for pid in nspawn_pids(state.machine_dir(lab, host)):
            pids[pid] = host
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid, host in pids.items():
        if _alive(pid):
            log(f"{host}: no clean shutdown after {timeout:.0f}s, killing")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    while any(_alive(p) for p in pids):
        time.sleep(0.2)
    return sorted(set(pids.values()))


def kill_orphans(directory: Path) -> int:
    """SIGKILL whatever still runs chrooted in ``directory`` after nspawn is gone."""
    pids = rooted_pids(directory)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_machine_tree(directory: Path, attempts: int = 5) -> None:
    """rmtree that outlasts a machine still dying: a process killed a moment ago can create files
    while the tree is removed ("Directory not empty"), so kill stragglers again and retry."""
    for attempt in range(1, attempts + 1):
        try:
            shutil.rmtree(directory)
            return
        except OSError as error:
            if attempt == attempts:
                raise
            log(f"{directory}: {error.strerror}; killing stragglers and retrying ({attempt}/{attempts})")
            kill_orphans(directory)
            time.sleep(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def ensure_key(state: State) -> None:
    """The lab SSH key (shared by all labs), created once; concurrent creates must not race on it."""
    if state.key.exists():
        return
    state.key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with flocked(state.key.parent / ".lock", "SSH key creation"):
        if state.key.exists():
            return
        tmp = state.key.with_name(f".new-{os.getpid()}")
        for stale in (tmp, Path(f"{tmp}.pub")):
            stale.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "adg-testhosts", "-f", str(tmp)])
        Path(f"{tmp}.pub").rename(f"{state.key}.pub")
        tmp.rename(state.key)


def load_lab(state: State, lab: str) -> LabSpec | None:
    path = state.lab_file(lab)
    if not path.exists():
        return None
    return LabSpec.from_json(json.loads(path.read_text()))


def write_inventory(path: str, spec: LabSpec, state: State) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render_inventory(spec, str(state.key)))
    tmp.replace(target)


# ---- commands ------------------------------------------------------------------------------


def resolve_spec(args: argparse.Namespace) -> LabSpec:
    data: dict = {"hosts": []}
    if args.spec:
        try:
            text = Path(args.spec).read_text()
        except OSError as exc:
            raise TesthostsError(f"cannot read spec {args.spec}: {exc}") from exc
        data = parse_spec_text(text, args.spec)
    hosts = list(data.get("hosts", [])) + [parse_host_arg(h) for h in args.host or []]
    return build_lab_spec(
        args.lab or data.get("lab"), args.subnet or data.get("subnet"), args.suite or data.get("suite"), hosts
    )


def describe_build(seconds: float | None) -> str:
    return "cached" if seconds is None else f"built in {seconds:.1f}s"


def cmd_create(args: argparse.Namespace, state: State) -> int:
    spec = resolve_spec(args)
    require_root_and_tools(["systemd-nspawn", "debootstrap", "nft", "ip", "ssh", "ssh-keygen", "chroot"])
    total = time.monotonic()
    with flocked(state.lab_lock(spec.lab), f"lab {spec.lab}"):
        existing = load_lab(state, spec.lab)
        if existing:
            if (existing.subnet, existing.suite) != (spec.subnet, spec.suite):
                raise TesthostsError(
                    f"lab {spec.lab} exists with subnet {existing.subnet} / suite {existing.suite}; "
                    f"run 'destroy --lab {spec.lab}' first to change them"
                )
            old = {h.name: h for h in existing.hosts}
            extra = sorted(set(old) - {h.name for h in spec.hosts})
            changed = sorted(h.name for h in spec.hosts if h.name in old and old[h.name].address != h.address)
            if extra or changed:
                raise TesthostsError(
                    f"lab {spec.lab} has hosts {extra or changed} that differ from this spec; "
                    f"run 'destroy --lab {spec.lab}' first"
                )
        check_subnet_free(spec)
        image, build_seconds = ensure_image(state, gather_image_inputs(spec.suite, args.mirror))
        log(f"image: {describe_build(build_seconds)} ({image.parent.name})")
        ensure_key(state)
        ensure_host_limits()
        ensure_network(spec)
        state.lab_dir(spec.lab).mkdir(parents=True, exist_ok=True)
        state.lab_file(spec.lab).write_text(json.dumps(spec.to_json(), indent=2) + "\n")
        started = time.monotonic()
        booting: list[HostSpec] = []
        for host in spec.hosts:
            if host_running(state, spec.lab, host.name):
                log(f"{host.name}: already running at {host.address}")
                continue
            if not state.machine_dir(spec.lab, host.name).exists():
                prepare_machine(state, spec, host, image)
                if not args.no_apt_cache:
                    seed_apt_archives(state, state.machine_dir(spec.lab, host.name))
            boot_machine(state, spec, host)
            booting.append(host)
        created = time.monotonic() - started
        if booting:
            log(f"hosts: {len(booting)} prepared and started in {created:.1f}s")
            boot = wait_for_ssh(state, spec, booting, args.boot_timeout)
            log("boot: " + ", ".join(f"{n} {s:.1f}s" for n, s in sorted(boot.items())))
        if args.inventory:
            write_inventory(args.inventory, spec, state)
            log(f"inventory: {args.inventory}")
    log(
        f"lab {spec.lab} ready in {time.monotonic() - total:.1f}s: "
        + ", ".join(f"{h.name}={h.address}" for h in spec.hosts)
    )
    return 0


def lab_names(state: State) -> list[str]:
    return sorted(p.name for p in state.labs.glob("*") if p.is_dir()) if state.labs.exists() else []


def destroy_lab(state: State, lab: str) -> None:
    with flocked(state.lab_lock(lab), f"lab {lab}"):
        spec = load_lab(state, lab)
        hosts = {h.name for h in spec.hosts} if spec else set()
        machines = state.lab_dir(lab) / "machines"
        if machines.exists():
            hosts |= {p.name for p in machines.iterdir() if not p.name.startswith(".")}
        started = time.monotonic()
        stopped = stop_machines(state, lab, sorted(hosts))
        stop_seconds = time.monotonic() - started
        orphans = kill_orphans(state.lab_dir(lab)) if state.lab_dir(lab).exists() else 0
        if orphans:
            log(f"lab {lab}: killed {orphans} orphaned machine processes")
            time.sleep(0.5)
        for host in sorted(hosts):
            clean_machine_leftovers(state, lab, host)
            harvest_apt_archives(state, state.machine_dir(lab, host))
        if state.lab_dir(lab).exists():
            unmount_under(state.lab_dir(lab))
            remove_machine_tree(state.lab_dir(lab))
        removed = remove_network(lab)
        what = [f"stopped {', '.join(stopped)} in {stop_seconds:.1f}s"] if stopped else []
        what += [f"removed {len(hosts)} machine dirs"] if hosts else []
        what += removed
        log(
            f"lab {lab}: "
            + ("; ".join(what) if what else "nothing to destroy")
            + f" ({time.monotonic() - started:.1f}s)"
        )


def cmd_destroy(args: argparse.Namespace, state: State) -> int:
    require_root_and_tools(["nft", "ip"])
    labs = set(args.lab or [])
    if args.all:
        labs |= set(lab_names(state))
        # Leftovers whose state dir is gone: bridges adg-* and tables adg_*.
        for path in Path("/sys/class/net").glob("adg-*"):
            labs.add(path.name[4:])
        for item in _nft_json(["list", "tables"]):
            table = item.get("table", {})
            if table.get("family") == "ip" and table.get("name", "").startswith("adg_"):
                labs.add(table["name"][4:].replace("_", "-"))
    if not labs:
        raise TesthostsError("give --lab NAME (repeatable) or --all")
    for lab in sorted(labs):
        destroy_lab(state, lab)
    return 0


def _lab_hosts(state: State, lab: str, names: list[str]) -> tuple[LabSpec, list[HostSpec]]:
    spec = load_lab(state, lab)
    if not spec:
        raise TesthostsError(f"no lab {lab!r}")
    known = {h.name: h for h in spec.hosts}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise TesthostsError(f"lab {lab} has no host(s) {unknown}; it has {sorted(known)}")
    return spec, [known[n] for n in names]


def cmd_poweroff(args: argparse.Namespace, state: State) -> int:
    """Fault drills: take hosts away. --hard is a pulled plug (every process SIGKILLed at once, no
    shutdown, the veth gone with the namespace); without it, a clean systemd shutdown."""
    require_root_and_tools(["ip"])
    _, hosts = _lab_hosts(state, args.lab, args.name)
    with flocked(state.lab_lock(args.lab), f"lab {args.lab}"):
        started = time.monotonic()
        for host in hosts:
            machine_dir = state.machine_dir(args.lab, host.name)
            if args.hard:
                # The machine's init (a child of nspawn, PID 1 of its own PID namespace) first: its
                # SIGKILL takes every process of the namespace with it; then whatever else is below
                # nspawn, then nspawn. Killing nspawn alone would leave the payload running.
                for pid in nspawn_pids(machine_dir):
                    for victim in [*descendant_pids(pid), pid]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(victim, signal.SIGKILL)
                kill_orphans(machine_dir)
            else:
                stop_machines(state, args.lab, [host.name])
        for host in hosts:
            while host_running(state, args.lab, host.name):
                time.sleep(0.1)
            clean_machine_leftovers(state, args.lab, host.name)
        how = "killed (hard)" if args.hard else "shut down"
        log(f"lab {args.lab}: {how} {', '.join(h.name for h in hosts)} in {time.monotonic() - started:.1f}s")
    return 0


def cmd_poweron(args: argparse.Namespace, state: State) -> int:
    """Boot powered-off hosts of an existing lab again, from their machine directories (their data
    kept, as a VM that is switched back on), and wait for SSH."""
    require_root_and_tools(["systemd-nspawn", "ip", "ssh"])
    spec, hosts = _lab_hosts(state, args.lab, args.name)
    with flocked(state.lab_lock(args.lab), f"lab {args.lab}"):
        booting = []
        for host in hosts:
            if host_running(state, args.lab, host.name):
                log(f"{host.name}: already running")
                continue
            if not state.machine_dir(args.lab, host.name).exists():
                raise TesthostsError(f"{host.name}: no machine directory (run create)")
            boot_machine(state, spec, host)
            booting.append(host)
        if booting:
            boot = wait_for_ssh(state, spec, booting, args.boot_timeout)
            log("boot: " + ", ".join(f"{n} {s:.1f}s" for n, s in sorted(boot.items())))
    return 0


def cmd_status(args: argparse.Namespace, state: State) -> int:
    labs = args.lab or lab_names(state)
    result = []
    for lab in labs:
        spec = load_lab(state, lab)
        if not spec:
            continue
        hosts = []
        for host in spec.hosts:
            pid = host_running(state, lab, host.name)
            hosts.append(
                {
                    "name": host.name,
                    "address": host.address,
                    "groups": list(host.groups),
                    "running": bool(pid),
                    "pid": pid,
                    "machine": machine_name(lab, host.name),
                }
            )
        result.append(
            {
                "lab": lab,
                "subnet": spec.subnet,
                "bridge": spec.bridge,
                "suite": spec.suite,
                "key": str(state.key),
                "hosts": hosts,
            }
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for lab in result:
            print(f"lab {lab['lab']}  {lab['subnet']}  bridge {lab['bridge']}  {lab['suite']}")
            for h in lab["hosts"]:
                status = f"running (pid {h['pid']})" if h["running"] else "stopped"
                print(f"  {h['name']:<16} {h['address']:<15} {status:<22} {','.join(h['groups'])}")
        if not result:
            print("no labs")
    return 0


def cmd_ssh(args: argparse.Namespace, state: State) -> int:
    spec = load_lab(state, args.lab)
    if not spec:
        raise TesthostsError(f"no lab {args.lab!r}")
    host = next((h for h in spec.hosts if h.name == args.name), None)
    if not host:
        raise TesthostsError(f"lab {args.lab} has no host {args.name!r}")
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    argv = ssh_command(state, host.address or "", *command)
    if not command:
        argv.insert(1, "-t")
    os.execvp(argv[0], argv)  # noqa: S606  (replace this process with the interactive ssh)
    return 1


def cmd_image(args: argparse.Namespace, state: State) -> int:
    require_root_and_tools(["debootstrap", "chroot"])
    suite = args.suite or DEFAULT_SUITE
    if suite not in SUPPORTED_SUITES:
        raise TesthostsError(f"suite {suite!r}: supported suites are {', '.join(SUPPORTED_SUITES)}")
    image, seconds = ensure_image(state, gather_image_inputs(suite, args.mirror))
    log(f"image: {describe_build(seconds)}: {image}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testhosts.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("ADG_TESTHOSTS_DIR", DEFAULT_STATE_DIR),
        help="state directory (env ADG_TESTHOSTS_DIR; default %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create/start a lab's hosts (idempotent)")
    create.add_argument("--lab", help=f"lab name (bridge adg-<lab>, at most {IFNAMSIZ_MAX - 4} characters)")
    create.add_argument("--subnet", help="lab IPv4 subnet, e.g. 172.30.11.0/24 (gateway .1 on the bridge)")
    create.add_argument(
        "--host",
        action="append",
        metavar="NAME[:GROUP,...[:ADDRESS]]",
        help="a host and its inventory groups (repeatable)",
    )
    create.add_argument(
        "--spec", help="YAML/JSON file: {lab, subnet, suite, hosts: [{name, groups, address}]}"
    )
    create.add_argument("--suite", choices=SUPPORTED_SUITES, help=f"Debian suite (default {DEFAULT_SUITE})")
    create.add_argument(
        "--mirror",
        default=os.environ.get("ADG_TESTHOSTS_MIRROR"),
        help="Debian mirror URL (default: from the controller's apt sources)",
    )
    create.add_argument("--inventory", help="write an Ansible YAML inventory for the lab here")
    create.add_argument(
        "--no-apt-cache",
        action="store_true",
        help="do not seed new hosts from the shared apt archive cache",
    )
    create.add_argument(
        "--boot-timeout", type=float, default=BOOT_TIMEOUT, help="seconds (default %(default)s)"
    )
    create.set_defaults(func=cmd_create)

    destroy = sub.add_parser("destroy", help="power off hosts, remove machines, bridge and NAT (idempotent)")
    destroy.add_argument("--lab", action="append", help="lab name (repeatable)")
    destroy.add_argument("--all", action="store_true", help="every lab, including leftovers without state")
    destroy.set_defaults(func=cmd_destroy)

    poweroff = sub.add_parser("poweroff", help="power hosts of a lab off (drills); --hard: pull the plug")
    poweroff.add_argument("--lab", required=True)
    poweroff.add_argument("--hard", action="store_true", help="SIGKILL everything at once, no shutdown")
    poweroff.add_argument("name", nargs="+")
    poweroff.set_defaults(func=cmd_poweroff)

    poweron = sub.add_parser("poweron", help="boot powered-off hosts of a lab again, data kept")
    poweron.add_argument("--lab", required=True)
    poweron.add_argument("name", nargs="+")
    poweron.add_argument(
        "--boot-timeout", type=float, default=BOOT_TIMEOUT, help="seconds (default %(default)s)"
    )
    poweron.set_defaults(func=cmd_poweron)

    status = sub.add_parser("status", help="show labs and hosts")
    status.add_argument("--lab", action="append")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    ssh = sub.add_parser("ssh", help="ssh into a host as root")
    ssh.add_argument("--lab", required=True)
    ssh.add_argument("name")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.set_defaults(func=cmd_ssh)

    image = sub.add_parser("image", help="build (or confirm cached) the base image only")
    image.add_argument("--suite", choices=SUPPORTED_SUITES)
    image.add_argument("--mirror", default=os.environ.get("ADG_TESTHOSTS_MIRROR"))
    image.set_defaults(func=cmd_image)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, State(args.state_dir))
    except TesthostsError as exc:
        print(f"testhosts: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
