"""Shared constants and configs of the module integration tests (a uniquely named module, so test
files can import it without clashing with other directories' conftest.py)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

ADMIN_PASSWORD = "int-test-Adm1n-pw"
TOKEN = "glsa_integration_token_0123456789"


def alertmanager_config(sink_url):
    """Routes like the project's (critical -> critical-alerts, else default), delivering to the sink."""

    def webhook(name):
        return {"name": name, "webhook_configs": [{"url": f"{sink_url}/{name}", "send_resolved": True}]}

    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "adg_delivery_check"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "critical-alerts", "group_wait": "0s"}
            ],
        },
        "receivers": [webhook("default"), webhook("critical-alerts")],
    }


GOOD_RULES = {
    "groups": [
        {
            "name": "adg-test-availability",
            "rules": [
                {"alert": "TargetDown", "expr": "up == 0", "for": "1h", "labels": {"severity": "critical"}},
                {"record": "job:up:sum", "expr": "sum by (job) (up)"},
            ],
        }
    ]
}
