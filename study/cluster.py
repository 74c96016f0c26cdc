"""Whether a Ray cluster can ever run a trial: its nodes' CPUs and GPUs against what each trial asks for.

Ray keeps a trial that no node can hold pending forever, and Tune waits with it. So, once the driver has
joined the cluster and before anything is logged, the study compares its per-trial resources with every
alive node. No node big enough: the study stops with one line, unless the cluster can grow (an autoscaler
may add a node) or the user asked to wait (`--wait-for-resources`); then the driver says once that it waits
and for what.

How a cluster that can grow is recognised:
- Ray's cluster launcher leaves ~/ray_bootstrap_config.yaml on the head node (Tune checks the same file:
  ray/tune/execution/cluster_info.py);
- autoscaler v2 (e.g. KubeRay) publishes its node groups in the GCS (ray._private.state.get_cluster_config);
  there the answer is exact: can some group with room for more nodes hold one trial;
- the v1 autoscaler monitor writes its status to the GCS key "__autoscaling_status"; a plain `ray start`
  head runs the monitor with a read-only provider whose node types are named "node_<node id>"
  (ray/autoscaler/_private/util.py: format_readonly_node_type), any other type name comes from an
  autoscaling configuration.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
READ_ONLY_NODE_TYPE = re.compile(r"^node_[0-9a-f]+$")


class ResourcesUnavailable(Exception):
    """No node of the cluster can hold one trial, and it cannot grow; the message is one line."""


@dataclass(frozen=True)
class TrialResources:
    cpus: float
    gpus: float

    @property
    def asked(self) -> dict[str, float]:
        return {name: amount for name, amount in (("CPU", self.cpus), ("GPU", self.gpus)) if amount > 0}

    def describe(self) -> str:
        return " and ".join(f"{amount:g} {name}{'s' if amount != 1 else ''}" for name, amount in self.asked.items())

    def fits(self, node_resources: dict[str, float]) -> bool:
        return all(node_resources.get(name, 0) >= amount for name, amount in self.asked.items())


def alive_node_resources() -> list[dict[str, float]]:
    import ray

    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


def _fits_a_node_group(trial: TrialResources) -> bool | None:
    """Autoscaler v2: whether some node group that may still add nodes could hold one trial; None: no such config."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # a private API: an older or newer Ray may not have it
        return None
    if config is None or not config.node_group_configs:
        return None
    return any(group.max_count != 0 and trial.fits(dict(group.resources)) for group in config.node_group_configs)


def _autoscaler_monitor_node_types() -> list[str]:
    """Node types in the v1 autoscaler monitor's status (read-only "node_<id>" types for a fixed cluster)."""
    try:
        from ray._private import ray_constants
        from ray.experimental.internal_kv import _internal_kv_get

        status = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        report = json.loads(status).get("autoscaler_report") or {} if status else {}
    except Exception:
        return []
    types = set((report.get("active_nodes") or {}).keys()) | set((report.get("pending_launches") or {}).keys())
    types |= set((report.get("node_type_mapping") or {}).values())
    return sorted(types)


def can_grow(trial: TrialResources) -> str | None:
    """Why the cluster may still get a node that holds `trial` (for the waiting message); None if it cannot."""
    fits_a_group = _fits_a_node_group(trial)
    if fits_a_group is not None:
        return "the autoscaler's node groups can hold one" if fits_a_group else None
    if Path(BOOTSTRAP_CONFIG).expanduser().exists():
        return f"Ray's cluster launcher configured an autoscaler ({BOOTSTRAP_CONFIG})"
    configured = [name for name in _autoscaler_monitor_node_types() if not READ_ONLY_NODE_TYPE.match(name)]
    if configured:
        return f"the autoscaler has node types {', '.join(configured)}"
    return None


def _largest(nodes: list[dict[str, float]]) -> str:
    most_cpus = max((node.get("CPU", 0) for node in nodes), default=0)
    most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    return f"{most_cpus:g} CPUs and {most_gpus:g} GPUs"


def check_trial_fits(trial: TrialResources, wait: bool, nodes: list[dict[str, float]] | None = None) -> str | None:
    """None when some alive node can hold one trial; else the one line the driver prints before it waits
    (the cluster can grow, or `wait`). Raises ResourcesUnavailable when it would wait forever."""
    nodes = alive_node_resources() if nodes is None else nodes
    if any(trial.fits(node) for node in nodes):
        return None
    shortfall = (f"each trial asks for {trial.describe()}, but the largest of the {len(nodes)} node(s) of the Ray "
                 f"cluster has {_largest(nodes)}")
    if wait:
        return f"waiting for resources: {shortfall}; waiting for a node that has them (--wait-for-resources)"
    reason = can_grow(trial)
    if reason is not None:
        return f"waiting for resources: {shortfall}; waiting for the autoscaler to add a node ({reason})"
    raise ResourcesUnavailable(f"{shortfall}: no trial could ever start. Lower --cpus-per-trial/--gpus-per-trial, "
                               f"add a node, or pass --wait-for-resources to wait for one")
