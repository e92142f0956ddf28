"""One Consul datacenter per stack: the primary (dc1) or a secondary joined to it."""

import pulumi

from components.config_warnings import config_warnings
from components.primary import PrimaryDatacenter
from components.secondary import SecondaryDatacenter
from components.stack_config import load_config

config, kube = load_config()
for warning in config_warnings(config):
    pulumi.log.warn(warning)

Datacenter = PrimaryDatacenter if config.is_primary else SecondaryDatacenter
datacenter = Datacenter(config.datacenter, config, kube)

for output_name, value in datacenter.stack_outputs.items():
    pulumi.export(output_name, value)
