"""Configs as runs stored them (`LabConfig.to_json` in the store's runs table): read back whatever
version wrote them (fields renamed since take their names now), flattened to dotted names, and the
fields in which runs differ.

Not covered here: the config dataclasses (config.py) and presets (presets.py), continuing a stored run
with its config (launcher.py), or comparing runs' results (compare.py).
"""
from __future__ import annotations

import dataclasses
import json

from lab.config import RENAMED_FIELDS, ClusterConfig, UsageError

UNCOMPARED_FIELDS = ("lab_dir", "run_name", *(f"cluster.{f.name}" for f in dataclasses.fields(ClusterConfig)))
"""Where a run lives and on what it runs, not what it computes (the cluster's results do not depend on
how the work was split): never reported as a config difference."""


def config_difference(configs: dict[str, str]) -> list[dict]:
    """Fields whose values differ between the runs' stored configs (run name -> config JSON)."""
    flat = {}
    for name, text in configs.items():
        try:
            config = json.loads(text or "{}")
        except json.JSONDecodeError as error:
            raise UsageError(f"run {name!r}: its stored config_json is not JSON ({error})") from error
        flat[name] = flatten_config(upgrade_stored_config(config))
    dotted_fields = sorted({dotted for values in flat.values() for dotted in values} - set(UNCOMPARED_FIELDS))
    missing = "(not set)"
    differing = []
    for dotted in dotted_fields:
        values = {name: flat[name].get(dotted, missing) for name in configs}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            differing.append({"field": dotted, "by_run": values})
    return differing


def flatten_config(config: dict, prefix: str = "") -> dict:
    """A config dict (LabConfig.to_dict or its JSON) as {dotted field: value}."""
    flat = {}
    for name, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def upgrade_stored_config(config: dict) -> dict:
    """A stored config (LabConfig.to_dict, or its JSON read back) with the fields of older versions under
    their names now (RENAMED_FIELDS), so that a stored run is continued and compared with its settings."""
    if not isinstance(config.get("ppo"), dict):
        return config
    legacy = config["ppo"]
    upgraded = {name: value for name, value in config.items() if name != "ppo"}
    policy = dict(upgraded.get("policy") or {})
    for name, value in legacy.items():
        if name == "total_episodes":
            policy.setdefault("steps", -(-value // max(legacy.get("batch_size") or 1, 1)))
        elif f"ppo.{name}" in RENAMED_FIELDS:
            policy.setdefault(RENAMED_FIELDS[f"ppo.{name}"].partition(".")[2], value)
    upgraded["policy"] = policy
    return upgraded

