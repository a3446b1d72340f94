"""Unit tests for the pure parts of tests/tools/testhosts/testhosts.py (no root, no network)."""

import importlib.util
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "testhosts", Path(__file__).resolve().parents[3] / "tests/tools/testhosts/testhosts.py"
)
th = importlib.util.module_from_spec(_SPEC)
sys.modules["testhosts"] = th
_SPEC.loader.exec_module(th)


def hosts(*args):
    return [th.parse_host_arg(a) for a in args]


# --- spec parsing -------------------------------------------------------------------------------


def test_parse_host_arg_name_groups_address():
    assert th.parse_host_arg("data1:postgres,redis,mongodb") == th.HostSpec(
        "data1", ("postgres", "redis", "mongodb")
    )
    assert th.parse_host_arg("app1") == th.HostSpec("app1")
    assert th.parse_host_arg("app1::172.30.11.50") == th.HostSpec("app1", (), "172.30.11.50")


@pytest.mark.parametrize("bad", ["", ":app", "a:b:c:d"])
def test_parse_host_arg_rejects_malformed(bad):
    with pytest.raises(th.TesthostsError):
        th.parse_host_arg(bad)


def test_spec_file_yaml_and_json_agree():
    yaml_text = (
        "lab: data\nsubnet: 172.30.12.0/24\nhosts:\n  - name: db1\n    groups: [postgres]\n  - app1:app\n"
    )
    json_text = (
        '{"lab": "data", "subnet": "172.30.12.0/24",'
        ' "hosts": [{"name": "db1", "groups": ["postgres"]}, "app1:app"]}'
    )
    assert th.parse_spec_text(yaml_text) == th.parse_spec_text(json_text)
    assert th.parse_spec_text(yaml_text)["hosts"] == [
        th.HostSpec("db1", ("postgres",)),
        th.HostSpec("app1", ("app",)),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a mapping"),
        ('{"lab": "x", "colour": "red"}', "unknown keys"),
        ('{"hosts": [{"groups": ["a"]}]}', "needs a name"),
        ('{"hosts": [{"name": "a", "ram": 4}]}', "unknown keys"),
    ],
)
def test_spec_file_errors(text, message):
    with pytest.raises(th.TesthostsError, match=message):
        th.parse_spec_text(text)


def test_addresses_assigned_in_order_skipping_explicit_ones():
    spec = th.build_lab_spec("data", "172.30.12.0/24", None, hosts("a", "b::172.30.12.12", "c"))
    assert [h.address for h in spec.hosts] == ["172.30.12.11", "172.30.12.12", "172.30.12.13"]
    assert spec.gateway == "172.30.12.1"
    assert spec.bridge == "adg-data"
    assert spec.suite == "bookworm"


@pytest.mark.parametrize(
    ("lab", "subnet", "host_args", "message"),
    [
        (None, "172.30.12.0/24", ["a"], "lab name is required"),
        ("Data", "172.30.12.0/24", ["a"], "lowercase"),
        ("averylonglabname", "172.30.12.0/24", ["a"], "Linux allows 15"),
        ("data", None, ["a"], "subnet is required"),
        ("data", "172.30.12.5/24", ["a"], "has host bits set"),
        ("data", "172.30.12.0/30", ["a"], "too small"),
        ("data", "172.30.12.0/24", [], "no hosts"),
        ("data", "172.30.12.0/24", ["a", "a"], "listed twice"),
        ("data", "172.30.12.0/24", ["a:all"], "invalid inventory group"),
        ("data", "172.30.12.0/24", ["a::172.30.12.1"], "not a usable host address"),
        ("data", "172.30.12.0/24", ["a::172.30.13.5"], "not a usable host address"),
        ("data", "172.30.12.0/24", ["a::172.30.12.20", "b::172.30.12.20"], "both use"),
        ("data", "172.30.12.0/28", ["a", "b", "c", "d", "e"], "no free address"),
    ],
)
def test_build_lab_spec_errors(lab, subnet, host_args, message):
    with pytest.raises(th.TesthostsError, match=message):
        th.build_lab_spec(lab, subnet, None, hosts(*host_args))


def test_bridge_name_limit_and_machine_names():
    assert th.bridge_name("monitoring") == "adg-monitoring"
    with pytest.raises(th.TesthostsError, match="at most 11"):
        th.bridge_name("monitoring1x")
    short = th.machine_name("common", "node1")
    assert short == "common-node1"
    long_a, long_b = th.machine_name("monitoring", "mon1"), th.machine_name("monitoring", "app1")
    assert len(long_a) <= 12 and len(long_b) <= 12 and long_a != long_b
    assert th.machine_name("monitoring", "mon1") == long_a  # deterministic
    assert th.nft_table_name("my-lab") == "adg_my_lab"


def test_lab_spec_json_round_trip():
    spec = th.build_lab_spec("data", "172.30.12.0/24", "trixie", hosts("db1:postgres,redis", "app1"))
    assert th.LabSpec.from_json(spec.to_json()) == spec


def test_power_commands_name_hosts_of_an_existing_lab_only(tmp_path):
    state = th.State(tmp_path)
    spec = th.build_lab_spec("drill", "172.30.29.0/24", "bookworm", hosts("db1:postgres", "db2:postgres"))
    state.lab_dir("drill").mkdir(parents=True)
    state.lab_file("drill").write_text(th.json.dumps(spec.to_json()))
    _, chosen = th._lab_hosts(state, "drill", ["db2"])
    assert [h.name for h in chosen] == ["db2"]
    with pytest.raises(th.TesthostsError, match=r"no host\(s\) \['db3'\]"):
        th._lab_hosts(state, "drill", ["db3"])
    with pytest.raises(th.TesthostsError, match="no lab 'other'"):
        th._lab_hosts(state, "other", ["db1"])


def test_poweroff_parses_hard_and_several_hosts():
    args = th.build_parser().parse_args(["poweroff", "--lab", "ha", "--hard", "data1", "data2"])
    assert (args.func, args.lab, args.hard, args.name) == (th.cmd_poweroff, "ha", True, ["data1", "data2"])
    args = th.build_parser().parse_args(["poweron", "--lab", "ha", "data1"])
    assert (args.func, args.name) == (th.cmd_poweron, ["data1"])


# --- subnet collisions ----------------------------------------------------------------------------

ROUTES = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel"},
    {"dst": "172.30.13.0/24", "dev": "adg-monitoring"},
    {"dst": "10.0.0.0/8", "via": "192.0.2.254", "dev": "eth0"},
    {"type": "local", "dst": "192.0.2.2", "dev": "eth0", "table": "local"},
    {"dst": "fd00::/64", "dev": "eth0"},
]


def test_free_subnet_has_no_collisions():
    assert th.route_collisions("172.30.12.0/24", ROUTES, "adg-data") == []


def test_own_bridge_route_is_not_a_collision():
    assert th.route_collisions("172.30.13.0/24", ROUTES, "adg-monitoring") == []


@pytest.mark.parametrize(
    ("subnet", "expected"),
    [
        ("172.30.13.0/24", "172.30.13.0/24 dev adg-monitoring"),  # another lab's bridge
        ("192.0.2.0/25", "192.0.2.0/24 dev eth0"),  # inside the uplink
        ("10.20.0.0/16", "10.0.0.0/8 dev eth0 via 192.0.2.254"),  # inside a routed range
        ("172.16.0.0/12", "172.30.13.0/24 dev adg-monitoring"),  # contains a route
    ],
)
def test_collisions_name_the_route(subnet, expected):
    assert th.route_collisions(subnet, ROUTES, "adg-data") == [expected]


# --- inventory ----------------------------------------------------------------------------------


def test_inventory_groups_and_connection_vars():
    yaml = pytest.importorskip("yaml")
    spec = th.build_lab_spec(
        "data",
        "172.30.12.0/24",
        None,
        hosts("db1:postgres,redis", "app1:app", "mon1:monitoring,app", "loose"),
    )
    inventory = yaml.safe_load(th.render_inventory(spec, "/state/ssh/id_ed25519"))["all"]
    assert inventory["vars"] == {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": "/state/ssh/id_ed25519",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    assert inventory["hosts"]["db1"] == {"ansible_host": "172.30.12.11", "private_ip": "172.30.12.11"}
    assert set(inventory["hosts"]) == {"db1", "app1", "mon1", "loose"}
    children = inventory["children"]
    assert set(children) == {"postgres", "redis", "app", "monitoring"}
    assert list(children["app"]["hosts"]) == ["app1", "mon1"]
    assert list(children["postgres"]["hosts"]) == ["db1"]


# --- image recipe and controller configuration ---------------------------------------------------


def test_recipe_hash_changes_with_each_input():
    base = th.recipe("bookworm", "http://mirror/debian", ["a", "b"], "d1")
    assert th.recipe_hash(base) == th.recipe_hash(
        th.recipe("bookworm", "http://mirror/debian", ["b", "a"], "d1")
    )
    variants = [
        th.recipe("trixie", "http://mirror/debian", ["a", "b"], "d1"),
        th.recipe("bookworm", "http://other/debian", ["a", "b"], "d1"),
        th.recipe("bookworm", "http://mirror/debian", ["a", "b", "c"], "d1"),
        th.recipe("bookworm", "http://mirror/debian", ["a", "b"], "d2"),
    ]
    hashes = {th.recipe_hash(v) for v in variants}
    assert len(hashes) == 4 and th.recipe_hash(base) not in hashes


DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://deb.nodesource.example/node_20.x
Suites: nodistro
Components: main
"""


def test_controller_sources_retargeted_to_image_suite():
    stanzas = th.debian_sources_for_suite(th.parse_deb822(DEB822), "bookworm", "trixie")
    assert [s["Suites"] for s in stanzas] == ["trixie trixie-updates", "trixie-security"]
    assert [s["URIs"] for s in stanzas] == ["http://deb.example/debian", "http://deb.example/debian-security"]
    assert th.primary_mirror(stanzas) == "http://deb.example/debian"
    rendered = th.render_deb822(stanzas)
    assert "nodistro" not in rendered and "Suites: trixie-security" in rendered


def test_one_line_sources_parsed():
    text = (
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://m.example/debian bookworm main contrib\n"
        "# deb http://commented/ bookworm main\n"
        "deb-src http://m.example/debian bookworm main\n"
    )
    stanzas = th.parse_one_line_sources(text)
    assert stanzas[0] == {
        "Types": "deb",
        "URIs": "http://m.example/debian",
        "Suites": "bookworm",
        "Components": "main contrib",
        "Signed-By": "/usr/share/keyrings/k.gpg",
    }
    assert [s["Types"] for s in th.debian_sources_for_suite(stanzas, "bookworm", "bookworm")] == ["deb"]


@pytest.mark.parametrize(
    ("text", "portable"),
    [
        ('Acquire::http::Proxy "http://proxy:3128";\n', True),
        ('Acquire::Check-Valid-Until "false";\n', True),
        ('Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n', False),  # docker-clean
        ('DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb"; };\n', False),
        ('Acquire::IndexTargets { x; };\nAPT::Update::Post-Invoke-Success { "appstreamcli"; };\n', False),
        ('APT::Install-Recommends "false";\n', False),
    ],
)
def test_apt_conf_portability(text, portable):
    assert th.apt_conf_is_portable(text) is portable


def test_networkd_file_sorts_before_container_default():
    assert th.NETWORKD_FILE < "80-container-host0.network"
    text = th.render_networkd("172.30.11.11", 24, "172.30.11.1")
    assert "Name=host0" in text and "Address=172.30.11.11/24" in text and "Gateway=172.30.11.1" in text


# --- /etc/hosts -----------------------------------------------------------------------------------


def resolve(hosts_text):
    """name -> addresses, read the way glibc's files backend reads /etc/hosts."""
    table = {}
    for line in hosts_text.splitlines():
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            table.setdefault(name, []).append(fields[0])
    return table


def test_etc_hosts_of_a_host_is_the_debian_layout():
    table = resolve(th.render_etc_hosts("data1"))
    assert table["localhost"] == ["127.0.0.1", "::1"]
    assert table["data1"] == ["127.0.1.1"]
    assert table["ip6-localhost"] == table["ip6-loopback"] == ["::1"]
    assert table["ip6-allnodes"] == ["ff02::1"] and table["ip6-allrouters"] == ["ff02::2"]


def test_etc_hosts_of_the_image_names_no_host():
    text = th.render_etc_hosts()
    assert "127.0.1.1" not in text
    assert resolve(text)["localhost"] == ["127.0.0.1", "::1"]


def test_image_recipe_covers_etc_hosts(monkeypatch):
    monkeypatch.setattr(th, "os_release", lambda: {"ID": "debian", "VERSION_CODENAME": "bookworm"})
    monkeypatch.setattr(th, "controller_sources", lambda: th.parse_deb822(DEB822))
    for name in ("portable_apt_conf_files", "local_ca_files", "pip_conf_files"):
        monkeypatch.setattr(th, name, list)
    monkeypatch.setattr(th, "resolv_conf_text", lambda: "nameserver 192.0.2.53\n")

    def image_hash():
        inputs = th.gather_image_inputs("trixie", None)
        return inputs, th.recipe_hash(th.recipe("trixie", inputs.mirror, th.IMAGE_PACKAGES, inputs.digest()))

    inputs, before = image_hash()
    assert inputs.files["etc/hosts"] == th.render_etc_hosts().encode()
    monkeypatch.setattr(th, "render_etc_hosts", lambda hostname=None: "127.0.0.1\tlocalhost\n")
    assert image_hash()[1] != before  # a cached image with other /etc/hosts lines is rebuilt
