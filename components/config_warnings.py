"""Settings that are allowed but worth telling the user at every preview."""

from __future__ import annotations

from . import values_guard
from .chart_version import OLD_LINES_END, REAL_CONSUL_CHART, line, parse_version
from .settings import DatacenterConfig


def config_warnings(cfg: DatacenterConfig) -> list[str]:
    """Things that are allowed but worth telling the user at every preview."""
    warnings = []
    version = parse_version(cfg.chart_version)
    checked_against = values_guard.key_list_version(cfg.chart_version)
    if version is not None and line(version) not in values_guard.rendered_lines():
        warnings.append(
            f"chart {cfg.chart_version}: CI renders no chart of the "
            f"{version[0]}.{version[1]} line (it renders the {values_guard.rendered_lines_text()} lines), so neither this program's "
            "values nor helmValues keys are checked against it")
    elif checked_against is not None and checked_against != cfg.chart_version and cfg.helm_values:
        warnings.append(
            f"chart {cfg.chart_version}: helmValues keys were checked against chart "
            f"{checked_against}, the newest of its line this program ships a key list for")
    if version is not None and line(version) < OLD_LINES_END and cfg.chart_version != REAL_CONSUL_CHART:
        warnings.append(
            f"chart {cfg.chart_version}: of the 1.0-1.7 lines only chart {REAL_CONSUL_CHART} is tested "
            f"(CI runs its Consul 1.16.1, control plane and gateways for real); use {REAL_CONSUL_CHART} "
            "or a 1.8 or later chart")
    partition = (cfg.helm_values.get("server") or {}).get("updatePartition")
    if cfg.is_primary and isinstance(partition, int) and partition > 0:
        warnings.append(f"helmValues.server.updatePartition is {partition}: the primary's "
                        "create-federation-secret hook can hang on upgrade until it is 0 "
                        "(consul-k8s#1466)")
    if cfg.mesh_gateway.service_type == "ClusterIP" and cfg.mesh_gateway.wan_address is None:
        warnings.append("meshGateway.serviceType ClusterIP without meshGateway.wanAddress: other "
                        "datacenters can reach the gateway only if the cluster IP is routable to them")
    return warnings
