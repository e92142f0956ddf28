"""``python -m federation up`` gated by the federation's health (``federation/rollout.py`` and the
stages of ``operate.run_up``): which stacks run in which stage, what the gate waits for, and that
a gate that fails stops the run before the next datacenter changes."""

import io

import pytest

from federation import cli, operate, rollout, runner as stack_runner, stack_plan
from federation.verify import FAILED, NOT_CHECKED, PASSED, Row

pytestmark = pytest.mark.unit


def plan(selected=("dc1", "dc2", "dc3")) -> stack_plan.Plan:
    return stack_plan.Plan("consul-federation", "dc1", ("dc2", "dc3"), frozenset(selected))


def test_stages_roll_running_secondaries_one_at_a_time_and_new_ones_together():
    assert stack_plan.up_stages(plan()) == [("the primary", ["dc1"]), ("the secondaries", ["dc2", "dc3"])]
    assert stack_plan.up_stages(plan(), deployed={"dc1", "dc2", "dc3"}, gated=True) == [
        ("the primary", ["dc1"]), ("the secondary dc2", ["dc2"]), ("the secondary dc3", ["dc3"])]
    assert stack_plan.up_stages(plan(), deployed={"dc1", "dc2"}, gated=True) == [
        ("the primary", ["dc1"]), ("the secondary dc2", ["dc2"]), ("the new secondaries", ["dc3"])]
    assert stack_plan.up_stages(plan(("dc3",)), deployed={"dc1", "dc2", "dc3"}, gated=True) == [
        ("the secondary dc3", ["dc3"])]


def row(dc, check, status=PASSED, detail="ok"):
    return Row(dc, dc, check, "consul", status, detail)


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_the_gate_stops_on_a_datacenter_that_no_longer_trusts_every_servers_ca():
    """A CA changed out of order (dc2 trusting only the old CA, dc1's servers on the new one):
    every other row passes, the TLS row keeps the gate shut until its timeout."""
    distrust = row("dc2", "TLS: every server's CA trusted", FAILED, "its CA file (sha256:old) holds no CA of the "
                   "server certificate of dc1")
    clock = Clock()
    healthy, rows = rollout.wait_healthy(lambda: [row("dc1", "WAN members alive"), distrust], 30, lambda _: None,
                                         clock, clock.sleep)
    assert not healthy and rows == [row("dc1", "WAN members alive"), distrust]


def test_the_gate_waits_for_two_passes_in_a_row_of_the_federation_rows_only():
    answers = iter([
        [row("dc1", "WAN members alive", FAILED, "no alive server of dc2"), row("dc1", "gateway Service address")],
        [row("dc1", "WAN members alive")],
        [row("dc1", "WAN members alive", FAILED)],
        [row("dc1", "WAN members alive"), row("dc1", "ProxyDefaults global Synced", FAILED)],
        [row("dc1", "WAN members alive")],
    ])
    clock, said = Clock(), []
    healthy, rows = rollout.wait_healthy(lambda: next(answers), 600, said.append, clock, clock.sleep)
    assert healthy and [r.check for r in rows] == ["WAN members alive"]
    assert clock.slept == [10, 10, 10, 10]  # a flap in between starts the count again
    assert said[0] == "0/1 rows pass; waiting for dc1 WAN members alive (0 s of 600 s)"


@pytest.mark.parametrize("answer", [
    [row("dc2", "ACL replication running", NOT_CHECKED, "Consul not reachable")],
    [row("dc2", "gateway Service address")],  # no gated row at all: nothing was checked
    [],
])
def test_the_gate_never_passes_what_it_could_not_check(answer):
    """Not checked, no gated row, nothing: each fails the gate when the time is up."""
    clock = Clock()
    healthy, rows = rollout.wait_healthy(lambda: answer, 30, lambda _: None, clock, clock.sleep)
    assert not healthy and clock.now >= 30


class GatedRecorder(stack_runner.Runner):
    """Records stages and gates; stacks with resources in the backend are `deployed`."""

    def __init__(self, deployed):
        super().__init__(".", out=io.StringIO())
        self.deployed = deployed
        self.events: list[str] = []

    def select_ahead(self, names):
        pass

    def resource_counts(self):
        return {name: 12 for name in self.deployed}

    def run(self, name, operation, create=False):
        self.events.append(f"up {name}")
        return stack_runner.Outcome(name, True, changes={"update": 1, "same": 11})


def test_up_checks_the_federation_after_each_stage_and_stops_before_the_next_datacenter():
    runner = GatedRecorder({"dc1", "dc2", "dc3"})

    def gate(members, last):
        runner.events.append(f"gate {','.join(members)}")
        if runner.events[-2] == "up dc1":
            return ("the federation was not healthy within 90 s; these rows did not pass:\n"
                    "  dc2      RPC reaches every datacenter: FAILED: dc1: No path to datacenter")
        return None

    assert operate.run_up(plan(), runner, parallel=4, gate=gate) == cli.EXIT_FAILED
    assert runner.events == ["up dc1", "gate dc1,dc2,dc3"]
    out = runner.out.getvalue()
    assert "stopped: after up of the primary, the federation was not healthy within 90 s" in out
    assert "dc2      RPC reaches every datacenter: FAILED: dc1: No path to datacenter" in out
    assert "not changed yet: dc2, dc3; fix the change (or the cluster), then run python -m federation up again" in out
    assert "dc3      not run (stopped after an earlier stage)" in out


def test_a_first_install_gates_only_what_runs_by_then():
    runner = GatedRecorder(set())
    assert operate.run_up(plan(), runner, parallel=4, gate=lambda m, last: runner.events.append(
        f"gate {','.join(m)}{' (last)' if last else ''}")) == cli.EXIT_OK
    assert runner.events[:2] == ["up dc1", "gate dc1"]
    assert sorted(runner.events[2:4]) == ["up dc2", "up dc3"] and runner.events[4] == "gate dc1,dc2,dc3 (last)"


def test_up_with_a_healthy_gate_rolls_every_datacenter_in_order():
    runner = GatedRecorder({"dc1", "dc2", "dc3"})
    assert operate.run_up(plan(), runner, parallel=4, gate=lambda m, last: runner.events.append(
        f"gate {','.join(m)}{' (last)' if last else ''}")) == cli.EXIT_OK
    assert runner.events == ["up dc1", "gate dc1,dc2,dc3", "up dc2", "gate dc1,dc2,dc3", "up dc3",
                             "gate dc1,dc2,dc3 (last)"]


def test_a_gate_that_times_out_after_one_lucky_pass_names_the_rows_that_failed_before_it():
    answers = iter([[row("dc2", "WAN members alive", FAILED, "consul-server-0.dc1 (dc1) failed")],
                    [row("dc2", "WAN members alive")]])
    clock = Clock()
    healthy, rows = rollout.wait_healthy(lambda: next(answers), 10, lambda _: None, clock, clock.sleep)
    assert not healthy
    assert rollout.failing_rows_text(rows) == (
        "  dc2      WAN members alive: FAILED: consul-server-0.dc1 (dc1) failed")


def test_rows_failing_before_the_run_are_waited_for_then_stop_only_the_last_stage(monkeypatch):
    """The fix of a broken secondary must roll past the primary: dc2's RPC row failed before the
    run; the primary's gate still waits the whole time for it, then goes on; the last stage's gate
    stops on it."""
    runner = GatedRecorder({"dc1", "dc2", "dc3"})
    checks = []

    def collect(p, run, kubernetes_only, members):
        checks.append(list(members))
        return [row("dc1", "WAN members alive"),
                row("dc2", verify_rpc, FAILED, "dc1: lookup dc1-gatway.consul.test: no such host")]

    verify_rpc = rollout.verify.RPC_TO_EVERY_DATACENTER
    monkeypatch.setattr(rollout.verify, "collect", collect)
    monkeypatch.setattr(rollout.time, "sleep", lambda _: None)
    monkeypatch.setattr(rollout.time, "monotonic", iter(range(0, 10_000, 10)).__next__)
    gate = rollout.federation_gate(plan(), runner, timeout=60)
    assert checks == [["dc1", "dc2", "dc3"]] * 3  # three times before any stage, over what runs
    assert gate(["dc1", "dc2", "dc3"], False) is None
    assert len(checks) == 3 + 6  # checked until the time was up (the clock moves 10 s a reading), not less
    out = runner.out.getvalue()
    assert ("[gate] failing before this up (after the wait, they stop only the last stage): "
            "dc2 RPC reaches every datacenter") in out
    assert ("[gate] 1/2 rows pass; waiting for dc2 RPC reaches every datacenter (failing before this up) "
            "(10 s of 60 s)") in out
    assert ("[gate] going on: only rows failing before this up still fail after 60 s, left to a later stage: "
            "dc2 RPC reaches every datacenter") in out
    stopped = gate(["dc1", "dc2", "dc3"], True)
    assert stopped == ("the federation was not healthy within 60 s; these rows did not pass:\n"
                       "  dc2      RPC reaches every datacenter: FAILED: dc1: lookup dc1-gatway.consul.test: "
                       "no such host (failed before this up too)")


def test_a_row_failing_before_the_run_that_heals_lets_the_stage_go_on_at_once(monkeypatch):
    runner = GatedRecorder({"dc1", "dc2"})
    answers = iter([[row("dc2", "WAN members alive", FAILED, "consul-server-0.dc1 (dc1) failed")]] * 3
                   + [[row("dc2", "WAN members alive")]] * 2)
    monkeypatch.setattr(rollout.verify, "collect", lambda *_: next(answers))
    monkeypatch.setattr(rollout.time, "sleep", lambda _: None)
    gate = rollout.federation_gate(plan(), runner, timeout=600)
    assert gate(["dc1", "dc2"], False) is None
    assert "[gate] healthy: 1 rows passed 2 times in a row" in runner.out.getvalue()


def test_a_row_that_passed_before_the_run_holds_up_every_stage(monkeypatch):
    runner = GatedRecorder({"dc1", "dc2"})
    answers = iter([[row("dc2", "WAN members alive")]] * 3
                   + [[row("dc2", "WAN members alive", FAILED, "consul-server-0.dc1 (dc1) failed")]])
    monkeypatch.setattr(rollout.verify, "collect", lambda *_: next(answers))
    monkeypatch.setattr(rollout.time, "sleep", lambda _: None)
    gate = rollout.federation_gate(plan(), runner, timeout=0)
    assert gate(["dc1", "dc2"], False) == ("the federation was not healthy within 0 s; these rows did not pass:\n"
                                           "  dc2      WAN members alive: FAILED: consul-server-0.dc1 (dc1) failed")


def test_a_row_that_flaps_before_the_run_counts_as_failing_before_it(monkeypatch):
    """dc2's copy holds a broken gateway address from an earlier run: its WAN row passes one look
    and fails the next. Failing in any of the checks before the first stage excuses it."""
    flapping = [[row("dc2", "WAN members alive")],
                [row("dc2", "WAN members alive", FAILED, "consul-server-0.dc1 (dc1) failed")],
                [row("dc2", "WAN members alive")]]
    slept = []
    assert rollout.failing_before(iter(flapping).__next__, slept.append) == {("dc2", "WAN members alive")}
    assert slept == [10, 10]
    assert rollout.failing_before(iter([[row("dc2", "WAN members alive")]] * 3).__next__, slept.append) == set()


def test_a_first_install_checks_nothing_before_it(monkeypatch):
    runner = GatedRecorder(set())
    monkeypatch.setattr(rollout.verify, "collect", lambda *_: pytest.fail("nothing runs yet to check"))
    rollout.federation_gate(plan(), runner, timeout=0)
    assert runner.out.getvalue() == ""


def test_a_gate_that_times_out_after_a_single_pass_says_so():
    clock = Clock()
    healthy, rows = rollout.wait_healthy(lambda: [row("dc2", "WAN members alive")], 0, lambda _: None,
                                         clock, clock.sleep)
    assert not healthy and rollout.failing_rows_text(rows) == "  (each row passed, but not 2 times in a row)"
