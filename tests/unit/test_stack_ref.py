"""Stack references: the one place that splits org/project/stack."""

import pytest

from components import stack_ref
from components.stack_ref import StackRef

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, parts", [
    ("dc1", ("dc1", None, None)),
    ("acme/dc1", ("dc1", None, "acme")),
    ("organization/consul-federation/dc1", ("dc1", "consul-federation", "organization")),
    ("my_org/my.project/dc-2", ("dc-2", "my.project", "my_org")),
])
def test_parse_splits_a_reference_as_pulumi_does(text, parts):
    ref = StackRef.parse(text)
    assert (ref.stack, ref.project, ref.org) == parts


@pytest.mark.parametrize("text", ["", "a/b/c/d", "org//dc1", "/dc1", "dc1/", "org/pro ject/dc1", None, 7])
def test_what_is_no_reference_is_refused_saying_what_is_expected(text):
    with pytest.raises(ValueError, match="expected a stack reference such as organization/consul-federation/dc1"):
        StackRef.parse(text)
    assert stack_ref.problem(text) == "expected a stack reference such as organization/consul-federation/dc1"


def test_a_reference_is_qualified_with_this_project_and_the_file_backends_org():
    assert StackRef.parse("dc1").qualified("fed") == "organization/fed/dc1"
    assert StackRef.parse("acme/dc1").qualified("fed") == "acme/fed/dc1"
    assert StackRef.parse("acme/other/dc1").qualified("fed") == "acme/other/dc1"
    assert stack_ref.problem("acme/other/dc1") is None


def test_names_compares_stack_and_a_given_project_only():
    assert StackRef.parse("organization/fed/dc1").names("fed", "dc1")
    assert StackRef.parse("acme/dc1").names("fed", "dc1")  # org/stack: this project
    assert StackRef.parse("dc1").names("fed", "dc1")
    assert not StackRef.parse("organization/other/dc1").names("fed", "dc1")
    assert not StackRef.parse("organization/fed/dc2").names("fed", "dc1")
