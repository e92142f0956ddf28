"""The gossip key rotation's decisions (``federation/gossip_rotation.py``): from what a run
observes (the keyring, the stack file's and the state's generation, the secondaries' copies) to
the one step it makes next, for every state an interrupted run can leave behind."""

import pytest

from federation import gossip_rotation as gr
from federation.consul_status import Ring

pytestmark = pytest.mark.unit

PREV, CUR, NEXT, STRANGER = "cHJldg==", "Y3Vy", "bmV4dA==", "c3RyYW5nZXI="
KEYS = gr.Keys(generation=4, current=CUR, next=NEXT, previous=PREV)


def rings(keys: dict[str, int], primary: dict[str, int], nodes: int = 3) -> list[Ring]:
    """The WAN pool and two LAN pools, each with these key counts."""
    return [Ring(wan, dc, dict(keys), dict(primary), nodes, {}) for wan, dc in
            ((True, "dc1"), (False, "dc1"), (False, "dc2"))]


def observed(keys, primary, config_generation=4, copies_current=True, generation_keys=KEYS):
    return gr.Observed(generation_keys, config_generation, rings(keys, primary), copies_current)


@pytest.mark.parametrize("state, started, expected", [
    # nothing under way: a run starts by installing the next key
    (observed({CUR: 3}, {CUR: 3}), False, (gr.INSTALL, NEXT)),
    # ... and a run that made its steps is done
    (observed({CUR: 3}, {CUR: 3}), True, (gr.DONE, CUR)),
    # stopped while installing (one member short), or after install
    (observed({CUR: 3, NEXT: 2}, {CUR: 3}), False, (gr.INSTALL, NEXT)),
    (observed({CUR: 3, NEXT: 3}, {CUR: 3}), False, (gr.USE, NEXT)),
    # stopped while some members switched
    (observed({CUR: 3, NEXT: 3}, {CUR: 1, NEXT: 2}), False, (gr.USE, NEXT)),
    # after use: the Secrets must get the new key
    (observed({CUR: 3, NEXT: 3}, {NEXT: 3}), False, (gr.WRITE, NEXT)),
    # the stack file was raised, the up did not finish: the keyring steps come first all the same
    (observed({CUR: 3}, {CUR: 3}, config_generation=5), False, (gr.INSTALL, NEXT)),
    (observed({CUR: 3, NEXT: 3}, {NEXT: 3}, config_generation=5), False, (gr.WRITE, NEXT)),
    # the primary's up ran (generation 4 now holds what was "next"), a secondary's did not
    (observed({PREV: 3, CUR: 3}, {CUR: 3}, copies_current=False), False, (gr.WRITE, CUR)),
    # every copy written: the old key goes
    (observed({PREV: 3, CUR: 3}, {CUR: 3}), False, (gr.REMOVE, PREV)),
    (observed({PREV: 1, CUR: 3}, {CUR: 3}), True, (gr.REMOVE, PREV)),
])
def test_next_step_from_every_state_a_run_can_leave(state, started, expected):
    step = gr.next_step(state, started)
    assert (step.action, step.key) == expected, step.why


@pytest.mark.parametrize("state, message", [
    (observed({CUR: 3, STRANGER: 3}, {CUR: 3}), "the keyring holds 1 key(s) this stack did not make"),
    (observed({CUR: 3}, {CUR: 3}, config_generation=3), "gossipKeyGeneration is 3 in the primary's stack file, "
                                                         "and the deployed key is generation 4"),
    (observed({CUR: 3}, {CUR: 3}, config_generation=6), "set it to 4 (or 5, to go on with a rotation)"),
    (observed({CUR: 3}, {CUR: 2}), "the primary key is not the stack's key"),
    (observed({CUR: 3}, {CUR: 3}, copies_current=False), "a secondary's federation secret differs from the primary's"),
    (gr.Observed(KEYS, 4, [], True), "Consul listed no gossip pool"),
])
def test_states_this_command_did_not_make_are_refused(state, message):
    with pytest.raises(gr.RotationRefused) as refused:
        gr.next_step(state, started=False)
    assert message in str(refused.value)
    assert all(k not in str(refused.value) for k in (PREV, CUR, NEXT, STRANGER)), "a key was printed"


def test_a_first_generation_has_no_previous_key():
    first = gr.Keys.from_output({"generation": 0, "current": CUR, "next": NEXT})
    assert first.previous is None
    assert gr.next_step(observed({CUR: 3}, {CUR: 3}, 0, generation_keys=first), False).action == gr.INSTALL
    with pytest.raises(gr.RotationRefused, match="gossipKeys output is not what this program exports"):
        gr.Keys.from_output({"generation": "0", "current": CUR})


def test_keyring_lines_show_fingerprints_never_keys():
    lines = gr.keyring_lines(rings({CUR: 3, NEXT: 2}, {CUR: 3}))
    assert lines[0].startswith("WAN ") and lines[1].startswith("dc1 LAN") and lines[2].startswith("dc2 LAN")
    assert "on 3/3 (primary on 3)" in lines[0] and "on 2/3" in lines[0]
    assert all(CUR not in line and NEXT not in line for line in lines)


def test_a_stack_whose_kubeconfig_gives_no_cluster_is_refused_before_any_step(no_engine, capsys, tmp_path,
                                                                                monkeypatch):
    """Every datacenter is resolved before the first step: a missing kubeconfig refuses the run
    by stack and file (exit 2), not with a traceback. Real: the kubeconfig resolution; played: the
    engine's read of each stack's config."""
    from components.config import parse_config
    from federation import __main__ as cli, cluster_access
    from test_federation_operate import primary, project, secondary

    missing = tmp_path / "no-such-kubeconfig"
    stacks = {"dc1": {**primary(), "kubeconfig": str(missing)}, "dc2": secondary("dc2")}
    directory = project(tmp_path, stacks)
    monkeypatch.setattr(cluster_access, "load_config", lambda runner, name: parse_config(stacks[name]))
    code = cli.main(["rotate-gossip-key", "--project-dir", str(directory)])
    assert code == 2
    assert capsys.readouterr().err == (f"federation rotate-gossip-key: refused: stack dc1: consul-federation:"
                                       f"kubeconfig: '{missing}' does not exist; expected a kubeconfig file "
                                       f"that defines context 'dc1'\n")
