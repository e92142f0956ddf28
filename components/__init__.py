"""Consul WAN federation across Kubernetes clusters, as Pulumi components."""

from .config import ConfigError, DatacenterConfig, config_warnings, load_config, parse_config
from .primary import PrimaryDatacenter
from .secondary import SecondaryDatacenter

__all__ = [
    "ConfigError",
    "DatacenterConfig",
    "PrimaryDatacenter",
    "SecondaryDatacenter",
    "config_warnings",
    "load_config",
    "parse_config",
]
