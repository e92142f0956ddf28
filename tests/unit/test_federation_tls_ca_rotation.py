"""rotate-tls-ca's decisions, on real certificates: what each observed state of the primary's CA
Secrets and the stacks' stages leads to, a whole rotation step by step, and a run interrupted at
any step going on from what it finds."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509
from kubernetes import client

from federation import tls_ca
from federation.tls_ca_rotation import (DEPLOY, DONE, FORGET, GENERATE, GENERATED, IDLE, RETIRE, SIGN, SIGN_HALF,
                                        TRUST, WRITE,
                                        Observed, RotationRefused, next_step, secrets_state, stale_injected_pods,
                                        written)

pytestmark = pytest.mark.unit

OLD = tls_ca.new_ca()
NEW = tls_ca.new_ca()


def observed(bundle, key, nxt=None, config=0, deployed=None) -> Observed:
    return Observed(list(bundle), key, nxt, config, dict(deployed or {"dc1": config, "dc2": config, "dc3": config}))


def test_a_new_ca_is_a_ca_tls_init_can_sign_with():
    cert = x509.load_pem_x509_certificate(NEW.cert.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    cert.verify_directly_issued_by(cert)
    assert NEW.key.startswith("-----BEGIN EC PRIVATE KEY-----")  # tls-init's ParseSigner reads this form
    assert tls_ca.signs(NEW.cert, NEW.key) and not tls_ca.signs(NEW.cert, OLD.key)
    assert tls_ca.fingerprint(NEW.cert) != tls_ca.fingerprint(OLD.cert)
    assert NEW.key not in repr(NEW)


def test_a_bundle_keeps_its_order():
    assert tls_ca.certificates(tls_ca.bundle(NEW.cert, OLD.cert)) == [NEW.cert, OLD.cert]
    assert tls_ca.certificates("") == []
    with pytest.raises(tls_ca.BadMaterial):
        tls_ca.signs(OLD.cert, "not a key")


@pytest.mark.parametrize("bundle,key,nxt,state", [
    ([OLD.cert], OLD.key, None, IDLE),
    ([OLD.cert], OLD.key, NEW, GENERATED),
    ([OLD.cert, NEW.cert], OLD.key, NEW, TRUST),
    ([NEW.cert, OLD.cert], NEW.key, NEW, SIGN),
    ([NEW.cert], NEW.key, NEW, RETIRE),
])
def test_the_secrets_say_which_stage_is_written(bundle, key, nxt, state):
    assert secrets_state(observed(bundle, key, nxt)) == state


@pytest.mark.parametrize("bundle,key,nxt,words", [
    ([OLD.cert, NEW.cert], OLD.key, None, "no rotation of this program is under way"),
    ([OLD.cert], NEW.key, None, "the key signs none of them"),
    ([NEW.cert, OLD.cert], NEW.key, None, "no rotation of this program is under way"),
    ([OLD.cert, NEW.cert], NEW.key, NEW, "is no stage of the rotation"),
    ([OLD.cert], OLD.key, tls_ca.CA(NEW.cert, OLD.key), "key does not sign its certificate"),
])
def test_a_state_this_command_does_not_make_is_refused(bundle, key, nxt, words):
    with pytest.raises(RotationRefused, match=words):
        secrets_state(observed(bundle, key, nxt))


def apply(o: Observed, step) -> Observed:
    """What the command's step does to the world (the cluster's Secrets, the stacks' outputs)."""
    if step.action == GENERATE:
        return dataclasses.replace(o, next=NEW)
    if step.action == WRITE:
        cert, key = written(step.state, o)
        return dataclasses.replace(o, bundle=tls_ca.certificates(cert), key=key)
    if step.action == DEPLOY:
        return dataclasses.replace(o, config_stage=step.stage, deployed={s: step.stage for s in o.deployed})
    if step.action == FORGET:
        return dataclasses.replace(o, next=None)
    raise AssertionError(step)


def test_a_whole_rotation_and_any_interrupted_run_goes_on_from_what_it_finds():
    o = observed([OLD.cert], OLD.key, config=3)  # one rotation done before
    steps, started = [], False
    while True:
        step = next_step(o, started)
        if started and step.action != DONE:  # a new run, after an interruption here, does the same
            assert next_step(o, False) == step
        steps.append((step.action, step.state, step.stage))
        if step.action == DONE:
            break
        o, started = apply(o, step), True
        assert len(steps) < 20
    assert steps == [(GENERATE, None, None), (WRITE, TRUST, None), (DEPLOY, TRUST, 4), (WRITE, SIGN, None),
                     (DEPLOY, SIGN, 5), (WRITE, RETIRE, None), (DEPLOY, RETIRE, 6), (FORGET, None, None),
                     (DONE, None, None)]
    assert o.bundle == [NEW.cert] and o.key == NEW.key and o.next is None


def test_each_stage_signs_with_the_first_certificate_and_trusts_the_others():
    o = observed([OLD.cert], OLD.key, NEW)
    assert written(TRUST, o) == (OLD.cert + NEW.cert, OLD.key)
    o = observed([OLD.cert, NEW.cert], OLD.key, NEW)
    assert written(SIGN, o) == (NEW.cert + OLD.cert, NEW.key)
    assert written(RETIRE, observed([NEW.cert, OLD.cert], NEW.key, NEW)) == (NEW.cert, NEW.key)


def test_a_run_stopped_between_the_sign_stages_two_secrets_is_finished_first():
    """The CA file is written before the key: stopped in between, the next run writes the sign
    stage again (tls-init would refuse the new CA first with the old key)."""
    half = observed([NEW.cert, OLD.cert], OLD.key, NEW, config=1)
    assert secrets_state(half) == SIGN_HALF
    step = next_step(half, False)
    assert (step.action, step.state) == (WRITE, SIGN)
    assert written(SIGN, half) == (NEW.cert + OLD.cert, NEW.key)
    with pytest.raises(RotationRefused, match="trust stage is not deployed everywhere"):
        next_step(observed([NEW.cert, OLD.cert], OLD.key, NEW, config=1, deployed={"dc1": 1, "dc2": 0}), False)


def test_an_up_stopped_by_the_gate_after_the_primary_is_run_again():
    o = observed([OLD.cert, NEW.cert], OLD.key, NEW, config=1, deployed={"dc1": 1, "dc2": 0, "dc3": 0})
    assert next_step(o, False) == next_step(o, True)
    step = next_step(o, False)
    assert (step.action, step.state, step.stage) == (DEPLOY, TRUST, 1)


def test_the_next_stage_waits_until_the_last_is_deployed_everywhere():
    """Signing with the new CA while dc3 still runs readers of the old CA alone would cut dc3 off."""
    o = observed([OLD.cert, NEW.cert], OLD.key, NEW, config=1, deployed={"dc1": 1, "dc2": 1, "dc3": 0})
    assert next_step(o, True).action == DEPLOY
    everywhere = observed([OLD.cert, NEW.cert], OLD.key, NEW, config=1)
    assert (next_step(everywhere, True).action, next_step(everywhere, True).state) == (WRITE, SIGN)


@pytest.mark.parametrize("o,words", [
    (observed([OLD.cert], OLD.key, config=0, deployed={"dc1": 0, "dc2": None}),
     "dc2 have no tlsCaStage output"),
    (observed([OLD.cert], OLD.key, config=2, deployed={"dc1": 3, "dc2": 3}), "never lower"),
    (observed([OLD.cert], OLD.key, config=4), r"multiples of 3 .* next multiple of 3 \(6\)"),
    (observed([OLD.cert], OLD.key, NEW, config=1, deployed={"dc1": 1, "dc2": 0}), "not deployed everywhere"),
    (observed([NEW.cert, OLD.cert], NEW.key, NEW, config=0), "hold the sign stage, but tlsCaStage is 0"),
])
def test_stages_this_command_does_not_leave_are_refused(o, words):
    with pytest.raises(RotationRefused, match=words):
        next_step(o, False)


def pod(name, status="injected", ca=None, init=False) -> client.V1Pod:
    env = [client.V1EnvVar(name="CONSUL_CACERT_PEM", value=ca)] if ca is not None else []
    container = client.V1Container(name="c", env=env)
    spec = client.V1PodSpec(containers=[client.V1Container(name="app")], init_containers=[container]) if init \
        else client.V1PodSpec(containers=[container])
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, namespace="apps",
                                                     annotations={"consul.hashicorp.com/connect-inject-status": status}),
                        spec=spec)


def test_injected_pods_that_trust_only_the_old_ca_are_named():
    pods = [pod("old", ca=OLD.cert), pod("old-init", ca=OLD.cert, init=True), pod("both", ca=OLD.cert + NEW.cert),
            pod("not-injected", status="skipped", ca=OLD.cert), pod("no-copy")]
    assert stale_injected_pods(pods, NEW.cert) == ["apps/old", "apps/old-init"]
    assert stale_injected_pods(pods[2:], NEW.cert) == []


def server_cert(ca: tls_ca.CA, dc: str) -> str:
    """A server certificate signed as tls-init signs one (issuer: the CA's subject)."""
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    issuer = x509.load_pem_x509_certificate(ca.cert.encode())
    signer = serialization.load_pem_private_key(ca.key.encode(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"server.{dc}.consul")]))
            .issuer_name(issuer.subject).public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(signer, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_trust_holds_while_every_servers_ca_is_in_the_ca_file():
    servers = {"dc1": server_cert(NEW, "dc1"), "dc2": server_cert(OLD, "dc2")}  # dc1 signed first, dc2 not yet
    ok, detail = tls_ca.trust_verdict("dc2", [OLD.cert, NEW.cert], servers)
    assert ok and detail == (f"trusts {tls_ca.fingerprint(OLD.cert)} + {tls_ca.fingerprint(NEW.cert)}; servers' "
                             f"certificates of dc1 {tls_ca.fingerprint(NEW.cert)}, dc2 {tls_ca.fingerprint(OLD.cert)}")
    ok, detail = tls_ca.trust_verdict("dc2", [OLD.cert], servers)  # the naive rotation: dc1 on the new CA alone
    assert not ok and "holds no CA of the server certificate of dc1" in detail
    assert tls_ca.trust_verdict("dc2", [], servers) == (False, "its CA file holds no certificate")
    assert tls_ca.issuer_in(servers["dc1"], [OLD.cert]) is None
