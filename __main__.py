"""One Consul datacenter per stack: the primary (dc1) or a secondary joined to it."""

import pulumi

from components.config import config_warnings, load_config
from components.primary import PrimaryDatacenter
from components.secondary import SecondaryDatacenter

config = load_config()
for warning in config_warnings(config):
    pulumi.log.warn(warning)

Datacenter = PrimaryDatacenter if config.is_primary else SecondaryDatacenter
datacenter = Datacenter(config.datacenter, config)

for output_name, value in datacenter.stack_outputs.items():
    pulumi.export(output_name, value)
