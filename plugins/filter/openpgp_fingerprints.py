"""Fingerprints of the primary keys in an OpenPGP public key block (ASCII-armoured or binary).

Used to check a downloaded apt repository key against a pinned fingerprint on the controller,
without GnuPG on the target (and so also in check mode). Version 4 keys only (RFC 4880 12.2),
which is what apt repositories publish; anything else is an error, never a silent pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: openpgp_fingerprints
short_description: Fingerprints of the primary keys in an OpenPGP public key block
description:
  - Parses an OpenPGP public key block, ASCII-armoured or binary, and returns the fingerprint of each
    primary key (public-key packet; subkeys are not listed), in order.
  - Runs on the controller, so a downloaded apt repository key can be checked against a pinned
    fingerprint without GnuPG on the managed host, and also in check mode.
  - Only version 4 keys (RFC 4880 section 12.2), which apt repositories publish, are supported; another
    version, a malformed packet stream or a block without a public key is an error, never a silent pass.
options:
  _input:
    description: The key block, as ASCII-armoured text or as bytes.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Download the repository key
  ansible.builtin.uri:
    url: https://apt.grafana.com/gpg.key
    return_content: true
  register: repo_key

- name: It holds exactly the pinned primary key
  ansible.builtin.assert:
    that:
      - (repo_key.content | autodealgenie.ops.openpgp_fingerprints) == [pinned]
  vars:
    pinned: "{{ 'B53A E77B ADB6 30A6 8304 6005 963F A277 1045 8545' | replace(' ', '') }}"
"""

RETURN = r"""
_value:
  description: Upper-case hexadecimal fingerprints (40 characters) of the primary keys, in order.
  type: list
  elements: str
"""

_TAG_PUBLIC_KEY = 6


def _dearmor(text):
    lines = text.strip().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP PUBLIC KEY BLOCK"))
    except StopIteration:
        raise AnsibleFilterError("no 'BEGIN PGP PUBLIC KEY BLOCK' armour found") from None
    body, in_headers = [], True
    for line in lines[start + 1 :]:
        line = line.strip()
        if line.startswith("-----END PGP"):
            break
        if in_headers:
            if not line:
                in_headers = False
            elif ":" not in line:  # armour without headers and without the blank separator
                in_headers = False
                body.append(line)
            continue
        if line.startswith("="):  # CRC24 checksum line
            break
        body.append(line)
    try:
        return base64.b64decode("".join(body), validate=True)
    except binascii.Error as exc:
        raise AnsibleFilterError(f"invalid base64 in the key armour: {exc}") from None


def _packets(data):
    pos = 0
    while pos < len(data):
        ctb = data[pos]
        if not ctb & 0x80:
            raise AnsibleFilterError(f"not an OpenPGP packet at offset {pos}")
        if ctb & 0x40:  # new format
            tag = ctb & 0x3F
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 2 : pos + 6], "big"), pos + 6
            else:
                raise AnsibleFilterError("partial-length packets are not valid in a key block")
        else:  # old format
            tag, length_type = (ctb >> 2) & 0x0F, ctb & 0x03
            if length_type == 3:
                raise AnsibleFilterError("indeterminate-length packets are not valid in a key block")
            size = 1 << length_type
            length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
            pos += 1 + size
        if pos + length > len(data):
            raise AnsibleFilterError("truncated OpenPGP packet")
        yield tag, data[pos : pos + length]
        pos += length


def openpgp_fingerprints(key):
    """Upper-case hex fingerprints of the primary keys, in order."""
    if isinstance(key, str) and "-----BEGIN PGP" in key:
        data = _dearmor(key)
    elif isinstance(key, (bytes, bytearray)):
        data = bytes(key)
    else:
        raise AnsibleFilterError("expected an ASCII-armoured OpenPGP public key block")
    fingerprints = []
    for tag, body in _packets(data):
        if tag != _TAG_PUBLIC_KEY:
            continue
        if not body or body[0] != 4:
            raise AnsibleFilterError(
                "only version 4 keys are supported (found version %s)" % (body[0] if body else "?")
            )
        digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body, usedforsecurity=False)
        fingerprints.append(digest.hexdigest().upper())
    if not fingerprints:
        raise AnsibleFilterError("the key block holds no public key")
    return fingerprints


class FilterModule:
    def filters(self):
        return {"openpgp_fingerprints": openpgp_fingerprints}
