"""The TLS CA rotated by ``python -m federation rotate-tls-ca`` on the three real datacenters of
day one (conftest.py): trust, sign, retire, each rolled through dc1, dc2 and dc3 by a gated up,
interrupted once after the sign stage is written and finished by running it again. Consul, the
chart's tls-init and create-federation-secret Jobs and the gateways are real; the clusters'
controllers are played. It restarts every server three times, so it runs after the modules that
need none restarted, and before test_rolling_change.py (whose typo may leave a secondary broken).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from pulumi_mocks import ROOT
from realenv import NAMESPACE
from threedc import DATACENTERS, KEYRING_ROW, WAN_DISRUPTED, printed_table, wait_verify

from federation import tls_ca

pytestmark = pytest.mark.consul

INTERRUPT_AT = "[rotate-ca] wrote the sign stage"


def ca_file(fed, dc: str) -> list[str]:
    """What the datacenter's servers and gateways trust: dc1's CA Secret, a secondary's copy."""
    if dc == "dc1":
        return tls_ca.certificates(fed.secret("dc1", "consul-ca-cert")["tls.crt"].decode())
    return tls_ca.certificates(fed.secret(dc, "consul-federation")["caCert"].decode())


def server_cert_issued_by(fed, dc: str, ca: str) -> bool:
    cert = x509.load_pem_x509_certificate(fed.secret(dc, "consul-server-cert")["tls.crt"])
    try:
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.encode()))
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def handshake(fed, dc: str, trusted: str) -> str:
    """A TLS client trusting only `trusted`, at the running server's HTTPS port: what a
    dataplane given one CA sees. "ok" or the verification error."""
    pod = fed.core(dc).read_namespaced_pod("consul-server-0", NAMESPACE)
    ctx = ssl.create_default_context(cadata=trusted)
    ctx.check_hostname = False
    try:
        with socket.create_connection((pod.status.pod_ip, 8501), timeout=10) as raw, ctx.wrap_socket(raw):
            return "ok"
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message


def rotate(fed, project) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "federation", "rotate-tls-ca", "--gate-timeout", "420",
                             "--project-dir", str(project.dir)], cwd=ROOT, env=project.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_tls_ca_rotation_interrupted_after_the_sign_stage_is_written_is_finished_by_running_it_again(fed, project):
    wait_verify(fed, project, timeout=300, window=15, ignore=WAN_DISRUPTED)
    printed_table(fed, project, "before the CA rotation")
    (old,) = ca_file(fed, "dc1")
    assert all(ca_file(fed, dc) == [old] and server_cert_issued_by(fed, dc, old) for dc in DATACENTERS)

    started = time.monotonic()
    proc = rotate(fed, project)
    seen = []
    for line in proc.stdout:
        seen.append(line.rstrip())
        if line.startswith(INTERRUPT_AT):
            os.killpg(proc.pid, signal.SIGKILL)  # the operator's laptop goes to sleep
            break
    proc.wait(timeout=60)
    first = time.monotonic() - started
    print(f"\n[timing] first run, killed after the sign stage was written: {first:.1f} s\n"
          + "\n".join(line for line in seen if not line.startswith("[dc")))
    assert seen and seen[-1].startswith(INTERRUPT_AT), "\n".join(seen[-60:])
    # trust was rolled everywhere: every datacenter trusts both, the servers still hold old certificates
    bundle = ca_file(fed, "dc1")
    assert len(bundle) == 2 and bundle[1] == old, "dc1 does not sign with the new CA first"
    new = bundle[0]
    for dc in DATACENTERS[1:]:
        assert ca_file(fed, dc) == [old, new], f"{dc}'s copy does not trust both CAs after the trust stage"
    for dc in DATACENTERS:
        assert server_cert_issued_by(fed, dc, old), f"{dc}'s server certificate changed before the sign stage"
    printed_table(fed, project, "after the interruption (sign written in dc1, not deployed)")

    done = fed.cli(project, "rotate-tls-ca", "--gate-timeout", "420")
    print(f"\n[timing] rotation: {time.monotonic() - started:.1f} s in all; the re-run {done.seconds:.1f} s\n"
          + "\n".join(line for line in done.stdout.splitlines() if not line.startswith("[dc")))
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}\n{fed.diagnose()}"
    steps = [line.split(":")[0] for line in done.stdout.splitlines() if line.startswith("[rotate-ca] ")
             and line.split(":")[0].split()[1] in ("deploy", "write", "forget", "done")]
    assert steps == ["[rotate-ca] deploy sign", "[rotate-ca] write retire", "[rotate-ca] deploy retire",
                     "[rotate-ca] forget", "[rotate-ca] done"], steps
    key = fed.secret("dc1", "consul-ca-key")["tls.key"].decode()
    assert key.strip() and key not in done.stdout + "\n".join(seen), "the CA key was printed"
    for dc in DATACENTERS:
        assert ca_file(fed, dc) == [new], dc
        assert server_cert_issued_by(fed, dc, new), f"{dc}'s server certificate is not of the new CA"
        assert handshake(fed, dc, new) == "ok"
        assert "unable to get local issuer certificate" in handshake(fed, dc, old), dc
    rows = wait_verify(fed, project, timeout=300, window=15, ignore=WAN_DISRUPTED)
    assert rows and all(r["status"] == "passed" for r in rows if r["check"] != KEYRING_ROW)
    printed_table(fed, project, "after the CA rotation")
    assert fed.errors() == {}
    # what a later write of Pulumi.dc1.yaml keeps: the stage the rotation set
    project.overrides["dc1"] = {**project.overrides.get("dc1", {}), "tlsCaStage": "3"}
