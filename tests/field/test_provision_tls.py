"""`telegest device provision` installs the broker's CA (docs/technician.md): the box then
speaks TLS and verifies the broker against it; --plain clears it; without --ca, `telegest up`'s
CA when the box is sent to `up`'s TLS port."""
from __future__ import annotations

import argparse
import json
import ssl

import pytest

from tests.field.test_provision import client_id, technician_key
from tools import pki
from tools.field.cli import _provision_ca
from tools.field.provision import FleetApi, default_ca, provision

pytestmark = pytest.mark.virtual_hw


def test_provision_installs_the_ca_and_the_box_connects_over_tls(demo, api_server,
                                                                  console_server, tmp_path):
    ca = pki.read_ca(pki.init_ca(tmp_path / "pki").ca_cert)
    said: list[str] = []
    api = FleetApi(api_server, technician_key(demo[0]))
    provision(console_server.url, api, "r-0042", "mqtt.agency.example", 8883,
              client_id=client_id(demo[0]), wait_s=20, say=said.append, ca=ca)
    rt = console_server.rt
    assert rt.settings.get("ca") == ca and rt.status()["tls"] is True
    assert any("connected to mqtt.agency.example:8883 as r-0042 over TLS" in s for s in said)
    ctx = console_server.hw.net.contexts[-1]
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    # provisioned again with --plain: the CA is cleared, the box talks in clear
    provision(console_server.url, api, "r-0042", "mqtt.agency.example", 1883, wait_s=20,
              say=said.append, ca="")
    assert console_server.rt.settings.get("ca") == "" and not console_server.rt.status()["tls"]
    assert console_server.hw.net.contexts[-1] is None


def test_without_ca_the_default_is_up_s_when_the_box_goes_to_its_tls_port(tmp_path, capsys):
    p = pki.ensure(tmp_path / "pki")
    (tmp_path / "broker-credentials.json").write_text(json.dumps(
        {"tls": {"broker": "127.0.0.1:8883", "ca": str(p.ca_cert)}}))
    assert default_ca(8883, tmp_path) == p.ca_cert
    assert default_ca(1883, tmp_path) is None
    assert default_ca(8883, tmp_path / "elsewhere") is None
    args = argparse.Namespace(plain=False, ca=None, up_data=str(tmp_path))
    assert _provision_ca(args, 8883) == p.ca_cert.read_text()
    assert f"verify the broker against {p.ca_cert}" in capsys.readouterr().out
    assert _provision_ca(args, 1883) is None
    assert "no --ca" in capsys.readouterr().out
    assert _provision_ca(argparse.Namespace(plain=True, ca=None, up_data="x"), 1883) == ""
    assert "in clear" in capsys.readouterr().out
