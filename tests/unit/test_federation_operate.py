"""`python -m federation up | preview | destroy`: input refused before anything runs, the stage
order, stopping at the first failed stage, destroy's refusal (refresh before up when an earlier
run was interrupted: test_federation_recovery.py), and a stack's outcome from the engine's
recorded events (tests/fixtures/engine). No engine runs here (the Automation API is replaced
where it would start one)."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import types
from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

from federation import __main__ as cli
from federation import engine_events, operate, runner as stack_runner, stack_plan

pytestmark = pytest.mark.unit

PRIMARY_REF = "organization/consul-federation/dc1"


def project(tmp_path: Path, stacks: dict[str, dict]) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump({"name": "consul-federation", "runtime": "python"}))
    for name, settings in stacks.items():
        (tmp_path / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(
            {"config": {f"consul-federation:{k}": v for k, v in settings.items()}}))
    return tmp_path


def primary(dc: str = "dc1") -> dict:
    return {"role": "primary", "datacenter": dc, "kubeContext": dc}


def secondary(dc: str, ref: str = PRIMARY_REF) -> dict:
    return {"role": "secondary", "datacenter": dc, "kubeContext": dc, "primaryStack": ref}


def test_plan_of_a_federation(tmp_path):
    p = stack_plan.plan(str(project(tmp_path, {"dc1": primary(), "dc2": secondary("dc2"), "dc3": secondary("dc3")})))
    assert (p.primary, p.secondaries, p.run_primary, p.run_secondaries) == ("dc1", ("dc2", "dc3"), True, ["dc2", "dc3"])
    narrowed = stack_plan.plan(str(tmp_path), ["dc3"])
    assert (narrowed.run_primary, narrowed.run_secondaries) == (False, ["dc3"])


@pytest.mark.parametrize("stacks, only, expected", [
    ({"dc1": primary(), "dc2": secondary("dc2")}, ["dc2", "dc9"],
     ["--stacks names dc9, which has no stack file; the stacks of this project are dc1, dc2"]),
    ({"dc1": secondary("dc1"), "dc2": secondary("dc2")}, None,
     ["no primary: set consul-federation:role: primary in the stack file of the datacenter that creates "
      "the federation secret (one of dc1, dc2)",]),
    ({"dc1": primary(), "dc2": primary("dc2")}, None,
     ["2 primaries (dc1, dc2): a federation has one; keep role: primary in one of them and make the "
      "others role: secondary with primaryStack: organization/consul-federation/<the primary>"]),
    ({"dc1": primary(), "dc2": secondary("dc2", "organization/consul-federation/east")}, None,
     ["Pulumi.dc2.yaml: consul-federation:primaryStack is 'organization/consul-federation/east', but the "
      "primary of this project is stack 'dc1'; set it to organization/consul-federation/dc1"]),
    ({"dc1": primary(), "dc2": secondary("dc2", "organization/other-project/dc1")}, None,
     ["Pulumi.dc2.yaml: consul-federation:primaryStack is 'organization/other-project/dc1', but the "
      "primary of this project is stack 'dc1'; set it to organization/consul-federation/dc1"]),
    ({"dc1": primary(), "dc2": {**secondary("dc2"), "role": "replica"}}, None,
     ["Pulumi.dc2.yaml: consul-federation:role is 'replica'; set it to primary (one stack) or secondary"]),
    ({"dc1": primary(), "dc2": {**secondary("dc2"), "role": {"secure": "v1:AAAA"}}}, None,
     ["Pulumi.dc2.yaml: consul-federation:role is set as a secret; set it without --secret (pulumi config "
      "set role primary, or secondary): the operator commands read it without the passphrase"]),
    ({"dc1": primary(), "dc2": secondary("dc2"), "dc3": secondary("dc2")}, None,
     ["Pulumi.dc2.yaml and Pulumi.dc3.yaml: consul-federation:datacenter is 'dc2' in 2 stacks; every "
      "datacenter of a federation needs its own name: give each stack its own"]),
    ({"dc1": primary(), "dc2": secondary("dc1"), "dc3": secondary("dc1")}, ["dc3"],
     ["Pulumi.dc1.yaml, Pulumi.dc2.yaml and Pulumi.dc3.yaml: consul-federation:datacenter is 'dc1' in 3 "
      "stacks; every datacenter of a federation needs its own name: give each stack its own"]),
])
def test_bad_input_is_refused_with_what_to_change(tmp_path, stacks, only, expected):
    with pytest.raises(stack_plan.Refused) as refused:
        stack_plan.plan(str(project(tmp_path, stacks)), only)
    assert refused.value.problems == expected


def test_every_problem_is_listed_at_once(tmp_path):
    stacks = {"dc1": primary(), "dc2": primary("dc2"), "dc3": secondary("dc3", "organization/consul-federation/dc9")}
    with pytest.raises(stack_plan.Refused) as refused:
        stack_plan.plan(str(project(tmp_path, stacks)), ["dc4"])
    assert [p.split(" ")[0] for p in refused.value.problems] == ["--stacks", "2"]


@pytest.mark.parametrize("command", ["up", "preview", "destroy", "verify"])
def test_refused_commands_exit_2_before_the_engine_starts(tmp_path, capsys, no_engine, command):
    directory = project(tmp_path, {"dc1": primary(), "dc2": secondary("dc2", "organization/consul-federation/dc3")})
    assert cli.main([command, "--project-dir", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "refused, nothing was" in err
    assert "set it to organization/consul-federation/dc1" in err


def test_a_project_without_stack_files_is_refused(tmp_path, capsys, no_engine):
    assert cli.main(["up", "--project-dir", str(project(tmp_path, {}))]) == 2
    assert "no Pulumi.<stack>.yaml in" in capsys.readouterr().err


class Recorder(stack_runner.Runner):
    """Records the order stacks run in; `failing` stacks fail with an engine-like error."""

    def __init__(self, failing=()):
        super().__init__(".", out=io.StringIO())
        self.failing = set(failing)
        self.ran: list[str] = []
        self.prepared: list[str] = []

    def select_ahead(self, names):
        self.prepared.extend(names)

    def run(self, name, operation, create=False):
        self.ran.append(name)
        if name in self.failing:
            return stack_runner.Outcome(name, False, error="error: update failed\n  Release dc-x timed out")
        return stack_runner.Outcome(name, True, changes={"create": 3, "same": 1})


def federation_plan(selected=("dc1", "dc2", "dc3")) -> stack_plan.Plan:
    return stack_plan.Plan("consul-federation", "dc1", ("dc2", "dc3"), frozenset(selected))


def test_up_runs_the_primary_then_the_secondaries_and_summarises_changes():
    runner = Recorder()
    assert operate.run_up(federation_plan(), runner, parallel=1) == 0
    assert runner.ran == ["dc1", "dc2", "dc3"]
    assert runner.prepared == ["dc2", "dc3"]  # selected while the primary runs
    summary = runner.out.getvalue()
    assert [line.split()[:4] for line in summary.splitlines()[2:]] == [
        ["dc1", "ok", "create", "3,"], ["dc2", "ok", "create", "3,"], ["dc3", "ok", "create", "3,"]]


def test_up_stops_at_the_failed_primary_and_names_it():
    runner = Recorder(failing={"dc1"})
    assert operate.run_up(federation_plan(), runner, parallel=4) == 1
    assert runner.ran == ["dc1"]
    out = runner.out.getvalue()
    assert "stopped: up of the primary failed in stack dc1:\n  error: update failed" in out
    assert "dc2      not run (stopped after an earlier stage)" in out and "dc3      not run" in out


def test_destroy_runs_the_secondaries_first_and_keeps_the_primary_when_one_fails():
    runner = Recorder()
    assert operate.run_destroy(federation_plan(), runner, parallel=4) == 0
    assert sorted(runner.ran[:2]) == ["dc2", "dc3"] and runner.ran[2] == "dc1"
    failing = Recorder(failing={"dc3"})
    assert operate.run_destroy(federation_plan(), failing, parallel=4) == 1
    assert "dc1" not in failing.ran
    assert "stopped: destroy of the secondaries failed in stack dc3" in failing.out.getvalue()


def test_destroying_the_primary_alone_is_refused_while_a_secondary_has_resources():
    alone = federation_plan(selected=("dc1",))
    assert stack_plan.destroy_refusal(alone, {"dc1": 40, "dc2": 35, "dc3": 0}) == (
        "refusing to destroy the primary dc1: secondary stack(s) dc2 (35 resources) still have resources and "
        "were left out by --stacks; destroy them first (or include them)")
    assert stack_plan.destroy_refusal(alone, {"dc1": 40, "dc2": 0}) is None
    assert stack_plan.destroy_refusal(federation_plan(), {"dc1": 40, "dc2": 35, "dc3": 35}) is None
    assert stack_plan.destroy_refusal(federation_plan(selected=("dc2",)), {"dc1": 40, "dc2": 35}) is None


ENGINE_OUTPUT = """\
Updating (dc2):
 +  kubernetes:helm.sh/v3:Release dc2-consul creating (0s)
 +  kubernetes:helm.sh/v3:Release dc2-consul creating failed error: timed out waiting for the condition
Diagnostics:
  kubernetes:helm.sh/v3:Release (dc2-consul):
    error: Helm gave up waiting for StatefulSet consul/consul-server: 0/1 ready
    its pods reference key serverConfig missing in secret consul-federation

  pulumi:pulumi:Stack (consul-federation-dc2):
    error: update failed
"""


def test_the_error_named_is_the_engine_diagnostic():
    lines = ENGINE_OUTPUT.splitlines()
    assert stack_runner.error_summary(lines, "ignored") == (
        "error: Helm gave up waiting for StatefulSet consul/consul-server: 0/1 ready\n"
        "its pods reference key serverConfig missing in secret consul-federation")
    assert stack_runner.error_summary(["Updating (dc2):"], "\n code: 255\n stdout: \n stderr: no stack named dc2\n") == \
        "code: 255\nstdout:\nstderr: no stack named dc2"


def test_the_error_summary_keeps_every_configuration_problem_and_counts_what_it_cuts():
    """A ConfigError lists each problem on a `  - ` line: all 15 are kept (12 lines were the
    limit, and the last problems were lost); other lines past the limit are cut, and counted."""
    problems = [f"consul-federation:key{i}: problem {i}" for i in range(1, 16)]
    lines = ["Diagnostics:", "  pulumi:pulumi:Stack (consul-federation-dc1):",
             "    error: 15 configuration error(s); fix them in the stack's Pulumi.<stack>.yaml and run "
             "again (nothing was changed):"] + [f"      - {p}" for p in problems] + ["", "Resources:"]
    summary = stack_runner.error_summary(lines, "ignored").splitlines()
    assert summary[1:] == [f"- {p}" for p in problems]
    # the same rule where preview, up and destroy take the error: the engine's diagnostic event
    message = "\n".join(lines[2:-2]).replace("    error: ", "") + "\n"
    diagnostic = auto.DiagnosticEvent(message=message, color="never", severity="error")
    [error] = engine_events.summarize([auto.EngineEvent(sequence=1, timestamp=0, diagnostic_event=diagnostic)]).errors
    assert error.splitlines()[1:] == [f"        - {p}" for p in problems]
    traceback = ["error: Program failed", *(f"  File line {i}" for i in range(20)), ""]
    assert stack_runner.error_summary(traceback, "ignored").splitlines()[-2:] == [
        "File line 10", "(9 more lines in the engine's output above)"]


ENGINE = Path(__file__).parent.parent / "fixtures" / "engine"


class PlayedCLI:
    """The Pulumi CLI of one stack, answering `stack export` (no pending operation) and `up`,
    whose --event-log gets a recorded event log (tests/fixtures/engine); anything else fails."""

    def __init__(self, events, code=0):
        self.events, self.code = events, code

    def run(self, args, cwd, env, on_output=None, on_error=None):
        if args[:2] == ["stack", "export"]:
            return auto.CommandResult('{"deployment": {}}', "", 0)
        assert args[0] == "up" and env.get("PULUMI_DEBUG_COMMANDS") == "true", (args, env)
        self.up_args = args
        if self.events:
            shutil.copy(ENGINE / self.events, args[args.index("--event-log") + 1])
        on_output("Updating (dc2):")
        if self.code:
            raise auto.errors.CommandError(auto.CommandResult("", "error: update failed", self.code))
        return auto.CommandResult("", "", 0)


class PlayedStack:
    def __init__(self, cli):
        self.name = "dc2"
        self.workspace = types.SimpleNamespace(pulumi_command=cli, work_dir=".", env_vars={})


def up_outcome(cli):
    runner = stack_runner.Runner(".", out=io.StringIO())
    runner.stack = lambda name, create: PlayedStack(cli)
    return runner.run("dc2", stack_runner.UP, create=True)


def test_up_counts_the_changes_of_the_engines_summary_event():
    outcome = up_outcome(PlayedCLI("up-changes.json"))
    assert (outcome.ok, outcome.changes) == (True, {"create": 1, "delete": 1, "same": 2})


def test_reads_are_no_changes():
    """A StackReference is a `read` step each run: counted by the summary event, shown by the
    engine's text summary as nothing, and so here."""
    events = [auto.EngineEvent.from_json({"sequence": 9, "timestamp": 1, "summaryEvent": {
        "maybeCorrupt": False, "durationSeconds": 3, "resourceChanges": {"read": 2, "same": 5, "update": 1},
        "PolicyPacks": {}}})]
    assert engine_events.summarize(events).changes == {"same": 5, "update": 1}


@pytest.mark.parametrize("events, error", [
    ("up-program-error.json", "the program: ValueError: consul-federation:datacenter 'dc 1' is not a valid name"),
    ("up-resource-error.json",
     "gossip-seed: random:index/randomPassword:RandomPassword resource 'gossip-seed' has a problem: Invalid "
     "Attribute Value. Attribute length value must be at least 1, got: -3. Examine values at 'gossip-seed.length'.\n"
     "gossip-seed: random:index/randomPassword:RandomPassword resource 'gossip-seed' has a problem: Invalid "
     "Attribute Value. Attribute length value must be at least sum of min_upper + min_lower + min_numeric + "
     "min_special, got: -3. Examine values at 'gossip-seed.length'."),
])
def test_a_failed_up_names_the_engines_error_diagnostics(events, error):
    outcome = up_outcome(PlayedCLI(events, code=255))
    assert (outcome.ok, outcome.error) == (False, error)


def test_a_cli_that_failed_before_the_engine_reported_anything_gives_its_own_words():
    outcome = up_outcome(PlayedCLI(None, code=255))
    assert (outcome.ok, outcome.error) == (False, "code: 255\nstdout:\nstderr: error: update failed")


def test_an_up_that_exits_0_without_a_summary_event_is_no_success():
    """A log cut short (the engine killed, the CLI exiting 0 anyway) proves nothing was done."""
    cli = PlayedCLI("up-changes.json")
    original = (ENGINE / "up-changes.json").read_text().splitlines()
    cut = [line for line in original if "summaryEvent" not in line]
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "cut.json").write_text("\n".join(cut) + "\n")
        cli.events = Path(scratch) / "cut.json"
        outcome = up_outcome(cli)
    assert (outcome.ok, outcome.error) == (
        False, "the engine ended without a summary event: the update did not finish")


@pytest.mark.parametrize("failing, code", [((), 0), (("dc2",), 1)])
def test_preview_exits_1_when_a_stack_failed(tmp_path, monkeypatch, failing, code):
    directory = project(tmp_path, {"dc1": primary(), "dc2": secondary("dc2", PRIMARY_REF)})
    runner = Recorder(failing=failing)
    monkeypatch.setattr(operate, "Runner", lambda project_dir, policy_packs: runner)
    assert cli.main(["preview", "--project-dir", str(directory), "--no-policy"]) == code
    assert sorted(runner.ran) == ["dc1", "dc2"]


@pytest.mark.parametrize("command", ["preview", "up"])
def test_up_and_preview_run_the_projects_policy_pack_unless_told_not_to(tmp_path, monkeypatch, capsys, command):
    directory = project(tmp_path, {"dc1": primary(), "dc2": secondary("dc2", PRIMARY_REF)})
    given: list[list[str]] = []

    def runner(project_dir, policy_packs):
        given.append(policy_packs)
        return Recorder()

    monkeypatch.setattr(operate, "Runner", runner)
    argv = [command, "--project-dir", str(directory)] + (["--gate-timeout", "0"] if command == "up" else [])
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"federation {command}: refused: no policy pack at {directory}/policy (no PulumiPolicy.yaml): restore "
        "the project's policy/ directory, or run with --no-policy to go without its rules\n")
    assert given == []
    pack(directory)
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--no-policy"]) == 0
    assert given == [[str(directory / "policy")], []]


def pack(directory: Path, production: str = "[]") -> Path:
    """A policy pack directory as `up` and `preview` look for it (the rules are the repository's)."""
    (directory / "policy").mkdir()
    (directory / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (directory / "policy" / "team.yaml").write_text(f"productionStacks: {production}\n")
    return directory / "policy"


def test_up_is_refused_before_anything_runs_when_a_stack_breaks_a_mandatory_rule(tmp_path, monkeypatch, capsys):
    """Every violation of every selected stack at once, as the pack words it; no Runner is made."""
    directory = project(tmp_path, {"dc1": {**primary(), "acls": False},
                                   "dc2": {**secondary("dc2"), "gossipEncryption": False, "chartVersion": "1.9.2"},
                                   "dc3": secondary("dc3")})
    pack(directory, production="[dc3]")
    monkeypatch.setattr(operate, "Runner", lambda project_dir, policy_packs: pytest.fail("a Runner was made"))
    assert cli.main(["up", "--project-dir", str(directory)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"federation up: refused by the policy pack ({directory}/policy), nothing was run:",
        "  - dc1: policy acls-with-replication: stack dc1: consul-federation:acls is false; ACLs must be on, with "
        "tokens replicated from the primary: pulumi config set acls true -s dc1",
        "  - dc2: policy gossip-encryption: stack dc2: consul-federation:gossipEncryption is false; gossip between "
        "members and across the WAN must be encrypted: pulumi config set gossipEncryption true -s dc2",
        "  - dc2: policy rendered-chart-version: stack dc2: consul-federation:chartVersion is '1.9.2'; use a chart "
        "version CI renders (2.0.3, 1.9.11, 1.8.16, 1.2.1): pulumi config set chartVersion 2.0.3 -s dc2",
        "  - dc3: policy high-availability: stack dc3: consul-federation:helmValues.server.replicas is 1; run 3 or 5 "
        "servers, a quorum that survives one or two lost servers: set helmValues server.replicas in the stack "
        "file (Pulumi.<stack>.yaml), e.g. consul-federation:helmValues: {server: {replicas: 3}}",
        "  - dc3: policy high-availability: stack dc3: consul-federation:meshGateway.replicas is 1; run at least 2 "
        "mesh gateways, so that the datacenter stays federated while one restarts: set meshGateway.replicas to "
        "2 or more in the stack file (Pulumi.<stack>.yaml)"]
    # --stacks narrows what is checked, as it narrows what runs; --no-policy checks nothing
    monkeypatch.setattr(operate, "Runner", lambda project_dir, policy_packs: Recorder())
    assert cli.main(["up", "--project-dir", str(directory), "--stacks", "dc3", "--gate-timeout", "0"]) == 2
    assert cli.main(["up", "--project-dir", str(directory), "--no-policy", "--gate-timeout", "0"]) == 0


def test_up_hands_the_pack_to_the_engine():
    played = PlayedCLI("up-changes.json")
    runner = stack_runner.Runner(".", out=io.StringIO(), policy_packs=["/p/policy"])
    runner.stack = lambda name, create: PlayedStack(played)
    assert runner.run("dc2", stack_runner.UP, create=True).ok
    at = played.up_args.index("--policy-pack")
    assert played.up_args[at:at + 2] == ["--policy-pack", "/p/policy"]


def test_destroy_runs_no_policy_pack(tmp_path, monkeypatch):
    directory = project(tmp_path, {"dc1": primary()})
    given: list[list[str]] = []
    recorder = Recorder()
    recorder.resource_counts = lambda: {}
    monkeypatch.setattr(operate, "Runner", lambda project_dir, policy_packs: given.append(policy_packs) or recorder)
    assert cli.main(["destroy", "--project-dir", str(directory)]) == 0
    assert given == [[]]
    with pytest.raises(SystemExit):
        cli.main(["destroy", "--project-dir", str(directory), "--no-policy"])  # no such option


def test_a_stack_missing_from_the_backend_fails_except_for_destroy():
    runner = stack_runner.Runner(".", out=io.StringIO())

    def missing(name, create):
        raise auto.errors.StackNotFoundError(auto.CommandResult("", "no stack named 'dc2' found", 255))

    runner.stack = missing
    outcome = runner.run("dc2", stack_runner.PREVIEW)
    assert not outcome.ok and outcome.error.startswith("stack dc2 does not exist in the backend")
    outcome = runner.run("dc2", stack_runner.DESTROY)
    assert (outcome.ok, outcome.note) == (True, "not in the backend: nothing to destroy")


def test_preview_of_a_stack_not_in_the_backend_says_what_creates_it(monkeypatch):
    """Not "run up first" alone: what is missing (the stack, in which backend) and both ways to
    create it."""
    monkeypatch.setenv("PULUMI_BACKEND_URL", "file:///srv/state")
    runner = stack_runner.Runner(".", out=io.StringIO())

    def missing(name, create):
        raise auto.errors.StackNotFoundError(auto.CommandResult("", "no stack named 'dc1' found", 255))

    runner.stack = missing
    assert runner.run("dc1", stack_runner.PREVIEW).error == (
        "stack dc1 does not exist in the backend (file:///srv/state) yet: python -m federation up creates it "
        "(or pulumi stack init dc1)")


NOT_LOGGED_IN = auto.CommandResult(
    "", "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions", 3)
NO_BACKEND_TEXT = ("no Pulumi backend: PULUMI_BACKEND_URL is not set and the pulumi CLI is not logged in. "
                   "Set PULUMI_BACKEND_URL (file://<directory>, s3://<bucket>, ...) or run pulumi login --local "
                   "(state in ~/.pulumi), set PULUMI_CONFIG_PASSPHRASE (the same for every stack), then run again")


def test_no_backend_is_named_with_the_fix_not_the_clis_raw_output(tmp_path, monkeypatch, capsys):
    """The CLI, run non-interactively with no backend, names only PULUMI_ACCESS_TOKEN (Pulumi
    Cloud): a stack's outcome and a command that fails before any stage (destroy's
    `pulumi stack ls`, which was a traceback) say PULUMI_BACKEND_URL / pulumi login --local."""
    runner = stack_runner.Runner(".", out=io.StringIO())

    def not_logged_in(*args, **kwargs):
        raise auto.errors.CommandError(NOT_LOGGED_IN)

    runner.stack = not_logged_in
    assert runner.run("dc1", stack_runner.PREVIEW).error == NO_BACKEND_TEXT
    runner.resource_counts = not_logged_in
    monkeypatch.setattr(operate, "Runner", lambda project_dir, policy_packs: runner)
    directory = project(tmp_path, {"dc1": primary(), "dc2": secondary("dc2")})
    assert cli.main(["destroy", "--project-dir", str(directory)]) == 1
    assert capsys.readouterr().err == f"federation destroy: {NO_BACKEND_TEXT}\n"


class PlayedAutomationStack:
    """Stack.preview and Stack.destroy of the Automation API: they hand each recorded event to
    on_event, then fail as the CLI would."""

    name = "dc2"

    def __init__(self, events):
        self.events = events

    def _replay(self, on_output, on_error, on_event, color, **_):
        assert color == "never"
        for line in (ENGINE / self.events).read_text().splitlines():
            on_event(auto.EngineEvent.from_json(json.loads(line)))
        raise auto.errors.CommandError(auto.CommandResult("", "error: preview failed", 255))

    preview = destroy = _replay


@pytest.mark.parametrize("operation", [stack_runner.PREVIEW, stack_runner.DESTROY])
def test_preview_and_destroy_name_the_engines_errors_from_its_events(operation):
    runner = stack_runner.Runner(".", out=io.StringIO())
    runner.stack = lambda name, create: PlayedAutomationStack("up-program-error.json")
    outcome = runner.run("dc2", operation)
    assert (outcome.ok, outcome.error) == (
        False, "the program: ValueError: consul-federation:datacenter 'dc 1' is not a valid name")


def test_the_top_level_help_is_for_users_and_says_what_each_command_needs(capsys):
    """It showed the package's developer docstring, which said no command needs a backend or a
    cluster."""
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "What the commands need:\n  up, preview, destroy, verify, rotate-gossip-key, rotate-tls-ca\n" \
           "      the Pulumi backend (PULUMI_BACKEND_URL, or pulumi login --local), the stacks'\n" \
           "      PULUMI_CONFIG_PASSPHRASE, the pulumi CLI on PATH, and each stack's cluster (its\n" \
           "      kubeContext in the kubeconfig)\n" in out
    assert "  diff\n      git and helm, and the charts (fetched, or --chart VERSION=DIR offline); no backend,\n" \
           "      no cluster\n  validate\n      the stack files only (and a chartPath's chart); no backend, no cluster\n" \
           "  affected\n      git only\n" in out
    assert "``" not in out and "no command needs" not in out
    needs = out.split("What the commands need:")[1].split("python -m federation COMMAND --help")[0]
    named = {name.strip() for line in needs.splitlines() if line.startswith("  ") and not line.startswith("   ")
             for name in line.split(",")}
    assert named == set(cli.COMMANDS)  # a new command says what it needs
