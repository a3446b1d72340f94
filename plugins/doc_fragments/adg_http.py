"""Documentation shared by the collection's HTTP modules (options of module_utils/adg_http.py)."""

from __future__ import annotations


class ModuleDocFragment:
    # Connection options every module accepts (http_argument_spec in module_utils/adg_http.py). The
    # transport is ansible.module_utils.urls; the names are those of ansible.builtin.uri where they exist.
    DOCUMENTATION = r"""
options:
  url_username:
    aliases:
    - username
    description:
    - User for basic auth (sent pre-emptively). Ignored when O(token) is set.
    - Credentials written into O(url) (C(https://user:pass@host)) are used the same way.
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
    description: CA bundle (PEM) used, instead of the system's, to verify the server's certificate.
    type: path
  client_cert:
    description:
    - PEM file with the client certificate (and optionally its key) for TLS client authentication.
    type: path
  client_key:
    description: PEM file with the private key of O(client_cert), when that file does not hold it.
    type: path
  timeout:
    default: 10
    description: Seconds to wait for each HTTP attempt.
    type: float
  retries:
    default: 3
    description:
    - Extra attempts, with exponential backoff (0.5 s doubling, at most 8 s; a numeric C(Retry-After)
      is honoured up to 8 s), after connection errors, HTTP 5xx and HTTP 429.
    - Requests that are not idempotent (POST) are repeated only when the server cannot have processed
      them (connection refused, HTTP 429).
    type: int
  max_redirects:
    default: 5
    description:
    - Redirects (HTTP 301, 302, 303, 307, 308) followed per request; C(0) follows none.
    - Credentials (basic auth, token, netrc) are sent only to the origin (scheme, host and port) of
      O(url); a redirect to another origin is followed without them.
    - 303, and 301/302 after a POST, continue with a GET without body; the others repeat the request.
    type: int
  use_proxy:
    default: true
    description: Use proxies from the environment (C(http_proxy), C(https_proxy), C(no_proxy)).
    type: bool
  use_netrc:
    default: true
    description:
    - Without O(url_username) and O(token), take basic-auth credentials for the host of O(url) from
      C(~/.netrc) (or the file named by C($NETRC)) on the managed host.
    type: bool
  unix_socket:
    description:
    - Connect to this unix socket instead of the host and port of O(url) (which still give the
      C(Host) header and the TLS server name).
    type: path
  http_agent:
    default: autodealgenie.ops
    description: C(User-Agent) header of every request.
    type: str
notes:
  - HTTP goes through C(ansible.module_utils.urls), shipped with the module; the managed host needs
    only Python's standard library.
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
