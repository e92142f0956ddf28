"""Consul WAN federation across Kubernetes clusters, as Pulumi components.

Import from the modules (``components.config``, ``components.primary``, ...): this file imports
nothing, so the stdlib-only modules (``constants``, ``stack_ref``) load without Pulumi, as the
pull request workflow's first job needs.
"""
