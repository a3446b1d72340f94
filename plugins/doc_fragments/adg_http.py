"""Documentation shared by the project's HTTP modules (options of module_utils/adg_http.py)."""

from __future__ import annotations


class ModuleDocFragment:
    # Connection options every module accepts (http_argument_spec in module_utils/adg_http.py).
    DOCUMENTATION = r"""
options:
  url_username:
    aliases:
    - username
    description: User for basic auth. Ignored when O(token) is set.
    type: str
  url_password:
    aliases:
    - password
    description: Password for basic auth.
    type: str
  validate_certs:
    default: true
    description: Verify the server's TLS certificate.
    type: bool
  ca_path:
    description: CA bundle used to verify the server's certificate.
    type: path
  timeout:
    default: 10
    description: Seconds to wait for each HTTP attempt.
    type: float
  retries:
    default: 3
    description: Extra attempts, with exponential backoff, after connection errors and HTTP 5xx.
    type: int
  use_proxy:
    default: true
    description: Use proxies from the environment (C(http_proxy), C(no_proxy)).
    type: bool
notes:
  - Uses only the Python standard library on the target.
"""

    # Grafana's API; the modules act in one organisation, sent per request (X-Grafana-Org-Id).
    GRAFANA = r"""
options:
  url:
    description: Base URL of Grafana, for example C(http://127.0.0.1:3000).
    required: true
    type: str
  token:
    description: Service-account token (or legacy API key), sent as a bearer token.
    type: str
  org_id:
    description:
    - Organisation to act in, sent as the C(X-Grafana-Org-Id) header on each request.
    - The user's current organisation is never switched. Defaults to the caller's current organisation.
    type: int
"""

    # Alertmanager's API v2.
    ALERTMANAGER = r"""
options:
  url:
    description: Base URL of Alertmanager, for example C(http://127.0.0.1:9093).
    required: true
    type: str
  token:
    description: Bearer token, for Alertmanager behind an authenticating proxy.
    type: str
"""

    # Prometheus's HTTP API.
    PROMETHEUS = r"""
options:
  url:
    description: Base URL of Prometheus, for example C(http://127.0.0.1:9090).
    required: true
    type: str
  token:
    description: Bearer token, for Prometheus behind an authenticating proxy.
    type: str
"""
