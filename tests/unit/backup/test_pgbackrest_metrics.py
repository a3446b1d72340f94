"""The pgBackRest metrics writer: newest backup per type from `pgbackrest info`, atomic replace,
and the previous file kept when info fails."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/pgbackrest/files/pgbackrest_metrics.py"
spec = importlib.util.spec_from_file_location("pgbackrest_metrics", SCRIPT)
metrics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(metrics)


def backup(label, kind, start, stop, size, delta, error=False):
    return {
        "label": label,
        "type": kind,
        "error": error,
        "timestamp": {"start": start, "stop": stop},
        "info": {"size": size, "repository": {"delta": delta, "size": delta * 2}},
    }


INFO = [
    {
        "name": "autodealgenie",
        "status": {"code": 0, "message": "ok"},
        "backup": [
            backup("F1", "full", 1000, 1100, 500, 50),
            backup("F2", "full", 5000, 5060, 600, 60),
            backup("D1", "diff", 7000, 7010, 610, 5),
            backup("D2", "diff", 9000, 9020, 620, 6, error=True),  # a backup with errors never counts
        ],
    }
]


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_newest_backup_of_each_type(tmp_path):
    out = samples(metrics.render(INFO, str(tmp_path), now=12345.0))
    full, diff = '{stanza="autodealgenie",type="full"}', '{stanza="autodealgenie",type="diff"}'
    assert out[f"pgbackrest_backup_last_completion_timestamp_seconds{full}"] == 5060
    assert out[f"pgbackrest_backup_last_duration_seconds{full}"] == 60
    assert out[f"pgbackrest_backup_last_size_bytes{full}"] == 600
    assert out[f"pgbackrest_backup_last_repo_size_bytes{full}"] == 60
    assert out[f"pgbackrest_backup_last_completion_timestamp_seconds{diff}"] == 7010
    assert out[f"pgbackrest_backup_count{diff}"] == 1
    assert out['pgbackrest_backup_count{stanza="autodealgenie",type="incr"}'] == 0
    assert not any('type="incr"' in key and "completion" in key for key in out)
    assert out['pgbackrest_stanza_status_code{stanza="autodealgenie"}'] == 0
    assert out["pgbackrest_metrics_collected_timestamp_seconds"] == 12345
    assert out[f'pgbackrest_repo_filesystem_size_bytes{{path="{tmp_path}"}}'] > 0


def test_a_stanza_without_backups_has_no_completion_time(tmp_path):
    empty = [{"name": "s", "status": {"code": 2, "message": "no valid backups"}, "backup": []}]
    text = metrics.render(empty, str(tmp_path), now=1.0)
    assert "pgbackrest_backup_last_completion_timestamp_seconds{" not in text
    assert 'pgbackrest_stanza_status_code{stanza="s"} 2' in text


def test_the_file_is_replaced_or_kept(tmp_path, monkeypatch):
    output = tmp_path / "pgbackrest.prom"
    output.write_text("previous\n")

    def fake_run(command, **kwargs):
        assert command[-1] == "info"
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(INFO), stderr="")

    monkeypatch.setattr(metrics.subprocess, "run", fake_run)
    args = ["--stanza=autodealgenie", f"--repository-path={tmp_path}", f"--output={output}"]
    assert metrics.main(args) == 0
    assert "pgbackrest_backup_last_completion_timestamp_seconds" in output.read_text()
    assert oct(output.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["pgbackrest.prom"]  # no temporary file left

    def failing_run(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="ERROR: [055]: unable to load info")

    monkeypatch.setattr(metrics.subprocess, "run", failing_run)
    before = output.read_text()
    assert metrics.main(args) == 1
    assert output.read_text() == before


@pytest.mark.parametrize("name", ['a"b', "a\\b"])
def test_label_values_are_escaped(tmp_path, name):
    info = [{"name": name, "status": {"code": 0}, "backup": []}]
    text = metrics.render(info, str(tmp_path), now=1.0)
    assert f'stanza="{metrics.escape(name)}"' in text and metrics.escape(name) != name
