"""A study's statistics over seeds x problems, and results/study.json and its Table-1-style tables, from the
files the study writes (study.py): pure functions over their JSON.

Units. A method measured with a reward model of its own (reranker, reranker + λ·log-prob, the filter +
reranker, the controls) has one unit per replicate (sampling seed S, reward seed R); a method without
one (greedy, random, log-prob, oracle, the examples filter + log-prob) or built from all R reward models
of a sampling seed (the seed ensemble) has one unit per sampling seed. A unit holds one outcome per
problem (the expected pass of the answer it picks, measures.problem_outcomes).

  seed_bootstrap   mean over units, sd over units, and a 95% interval that resamples sampling seeds, then
                   each chosen seed's reward seeds, then problems (one problem draw shared by every unit:
                   the problems are the same for every seed); a paired difference is the same on the
                   per-unit, per-problem differences (an S-level method is paired with each of its seed's
                   replicates)
  aggregate        study.json: per evaluation set and N, every method's top-1 and the protocol's
                   differences; held-out pair accuracy; the controls; reference models; the best ranker
                   against the base model's greedy answer; the targets, met or not, with their gaps
  study_markdown   rows = methods (base greedy and reference models first), columns = evaluation sets

Not covered here: running anything (study.py), the per-problem outcomes themselves (measures.py).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from lab.measures import METHOD_NAMES, METHOD_TITLES
from lab.protocol import Protocol, Target

RESAMPLES = 2000
CONTROL_DIFFERENCES = {"hard_negative - equal_compute": ("reranker", "equal_compute"),
                       "hard_negative - fresh": ("reranker", "fresh"),
                       "rm-1 - rm-0": ("reranker", "rm-0")}
"""The controls' paired differences (rm-1 is the replicate's 'reranker')."""
BEST_CANDIDATES = ("logprob", "reranker", "reranker+logprob", "ensemble", "filter+logprob", "filter+reranker",
                   "filter+ensemble")
"""The rankers the lab's best is chosen among (no oracle, no reference model)."""

Unit = tuple[int, int | None]
"""(sampling seed, reward seed), or (sampling seed, None) for a method of the sampling seed."""
Table = dict[Unit, dict[str, float]]
"""unit -> problem id -> outcome."""


def seed_bootstrap(values: np.ndarray, seeds: Sequence[int], *, resamples: int = RESAMPLES, seed: int = 0,
                   confidence: float = 0.95) -> dict:
    """`values` (units x problems), `seeds` each unit's sampling seed: {"mean", "sd", "ci", "units",
    "problems"} as the module docstring says. The within-seed draws of a seed chosen c times are c x K
    draws from its K units, so each bootstrap draw is a weighting of units and problems (vectorised)."""
    values = np.asarray(values, dtype=float)
    units, problems = values.shape
    unit_means = values.mean(axis=1)
    result = {"mean": float(unit_means.mean()), "sd": float(unit_means.std(ddof=1)) if units > 1 else 0.0,
              "units": units, "problems": problems}
    rng = np.random.default_rng(seed)
    problem_counts = rng.multinomial(problems, np.full(problems, 1 / problems), size=resamples)  # (B, P)
    resampled = values @ problem_counts.T / problems  # (U, B): each unit's mean over each draw's problems
    groups = [np.flatnonzero(np.asarray(seeds) == s) for s in dict.fromkeys(seeds)]
    chosen = rng.multinomial(len(groups), np.full(len(groups), 1 / len(groups)), size=resamples)  # (B, G)
    weights = np.zeros((resamples, units))
    for g, members in enumerate(groups):
        weights[:, members] = rng.multinomial(chosen[:, g] * len(members), np.full(len(members), 1 / len(members)))
    statistics = (weights * resampled.T).sum(axis=1) / weights.sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    result["ci"] = [float(np.percentile(statistics, tail)), float(np.percentile(statistics, 100 - tail))]
    return result


def _matrix(table: Table) -> tuple[np.ndarray, list[int], list[str]] | None:
    """(units x problems over the problems every unit has, each unit's sampling seed, the problems)."""
    if not table:
        return None
    problems = sorted(set.intersection(*(set(k for k, v in row.items() if v is not None) for row in table.values())))
    if not problems:
        return None
    units = sorted(table, key=lambda unit: (unit[0], -1 if unit[1] is None else unit[1]))
    return np.array([[table[u][p] for p in problems] for u in units]), [u[0] for u in units], problems


def summarize(table: Table) -> dict | None:
    found = _matrix(table)
    return None if found is None else seed_bootstrap(found[0], found[1])


def paired(a: Table, b: Table) -> Table:
    """Per unit and problem, a - b: replicate units are paired with replicate units of the same seeds, or
    with their sampling seed's unit when one side is a sampling-seed method."""
    def lookup(table: Table, unit: Unit) -> dict[str, float] | None:
        return table.get(unit, table.get((unit[0], None)))
    units = set(a) | set(b)
    if any(r is not None for _, r in units):
        units = {u for u in units if u[1] is not None}
    result: Table = {}
    for unit in units:
        left, right = lookup(a, unit), lookup(b, unit)
        if left is not None and right is not None:
            result[unit] = {p: left[p] - right[p] for p in set(left) & set(right)
                            if left[p] is not None and right[p] is not None}
    return result


# ---------------------------------------------------------------- reading the study's files

def method_tables(replicates: Sequence[dict], samplings: Sequence[dict]) -> dict[tuple[str, str, str], Table]:
    """(set, N, method) -> its table, from replicate files (units (S, R)) and sampling files (units (S, None))."""
    tables: dict[tuple[str, str, str], Table] = {}
    for files, reward_seed in ((replicates, "reward_seed"), (samplings, None)):
        for data in files:
            unit = (data["sampling_seed"], data[reward_seed] if reward_seed else None)
            for set_name, found in data["sets"].items():
                for n, methods in found["n"].items():
                    for method, values in methods.items():
                        tables.setdefault((set_name, n, method), {})[unit] = dict(zip(found["problems"], values))
    return tables


def _gap(target: Target, value: dict | None) -> tuple[bool | None, float | None]:
    if value is None or target.kind == "report":
        return None, None
    if target.kind == "above":
        low = value["ci"][0]
        return low > target.threshold, low - target.threshold
    return value["mean"] >= target.threshold, value["mean"] - target.threshold


def aggregate(protocol: Protocol, replicates: Sequence[dict], samplings: Sequence[dict], references: dict | None,
              commit: str | None) -> dict:
    """study.json (the module docstring) from the files the study wrote; a replicate whose pool is not its
    sampling file's (it ran on samples drawn again since) is left out, with a note."""
    notes = []
    pool_of = {s["sampling_seed"]: s["pool"] for s in samplings}
    kept = []
    for data in replicates:
        if data["sampling_seed"] in pool_of and data["pool"] != pool_of[data["sampling_seed"]]:
            notes.append(f"replicate s{data['sampling_seed']}-r{data['reward_seed']} left out: it ran on another "
                         "draw of its sampling seed's candidates than its sampling file")
        else:
            kept.append(data)
    tables = method_tables(kept, samplings)
    set_names = sorted({key[0] for key in tables}, key=lambda name: (not name.endswith("-py"), name))
    ns = [str(n) for n in protocol.n]
    primary = ns[0]
    base = _base_greedy(references)
    sets: dict = {}
    for set_name in set_names:
        by_n: dict[str, dict] = {}
        for n in ns:
            top1 = {m: s for m in protocol.methods if (s := summarize(tables.get((set_name, n, m), {}))) is not None}
            differences = {}
            for a, b in protocol.differences:
                found = summarize(paired(tables.get((set_name, n, a), {}), tables.get((set_name, n, b), {})))
                if found is not None:
                    differences[f"{a} - {b}"] = found
            controls = {name: found for name, (a, b) in CONTROL_DIFFERENCES.items()
                        if (found := summarize(paired(tables.get((set_name, n, a), {}),
                                                      tables.get((set_name, n, b), {})))) is not None}
            by_n[n] = {"top1": top1, "differences": differences, "controls": controls,
                       "best": _best(tables, set_name, n, top1, base.get(set_name))}
        headline: dict[str, dict] = by_n[primary]["top1"]
        sets[set_name] = {"problems": max((s["problems"] for s in headline.values()), default=0),
                          "top1": headline, "differences": by_n[primary]["differences"], "by_n": by_n}
    heldout = _heldout(kept, samplings)
    result = {
        "protocol": protocol.path, "name": protocol.name, "commit": commit,
        "sampling_seeds": sorted({d["sampling_seed"] for d in (*kept, *samplings)}),
        "reward_seeds": sorted({d["reward_seed"] for d in kept}),
        "replicates": sorted([d["sampling_seed"], d["reward_seed"]] for d in kept),
        "complete_sampling_seeds": sorted(pool_of),
        "n": [int(n) for n in ns], "sets": sets,
        "heldout_pair_accuracy": heldout.get("rm-1", {}).get("pair_accuracy"),
        "heldout": heldout,
        "controls": {name: {**value, "set": set_names[0], "n": int(primary)}
                     for name, value in (sets[set_names[0]]["by_n"][primary]["controls"].items() if set_names else [])},
        "reference_models": _references(references),
        "base_greedy": {name: float(np.mean(list(values.values()))) for name, values in base.items() if values},
        "best": {name: sets[name]["by_n"][primary]["best"] for name in set_names
                 if sets[name]["by_n"][primary]["best"]},
        "notes": notes,
    }
    result["targets"] = [_target_result(target, result, primary) for target in protocol.targets]
    return result


def _best(tables, set_name: str, n: str, top1: dict, base: dict[str, float] | None) -> dict | None:
    ranked = [m for m in BEST_CANDIDATES if m in top1]
    if not ranked:
        return None
    method = max(ranked, key=lambda m: top1[m]["mean"])
    best = {"method": method, "n": int(n), "mean": top1[method]["mean"], "ci": top1[method]["ci"]}
    if base:
        table = tables[(set_name, n, method)]
        found = summarize(paired(table, {(s, None): base for s, _ in table}))
        if found is not None:
            best["minus_base_greedy"] = {"mean": found["mean"], "ci": found["ci"]}
    return best


def _heldout(replicates: Sequence[dict], samplings: Sequence[dict]) -> dict:
    """Per reward model (rm-0, rm-1, the controls, the ensemble) the mean and sd over units of each
    held-out measure, and the hard negatives' accuracy before (selecting and reseeded rm-0) and after."""
    values: dict[str, dict[str, list[float]]] = {}
    for data in (*replicates, *samplings):
        for model, measures in data.get("heldout", {}).items():
            for measure, value in measures.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    values.setdefault(model, {}).setdefault(measure, []).append(float(value))
    return {model: {measure: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                              "units": len(v)} for measure, v in measures.items()}
            for model, measures in values.items()}


def _base_greedy(references: dict | None) -> dict[str, dict[str, float]]:
    if not references or "base" not in references:
        return {}
    return {name: {p: v for p, v in zip(found["problems"], found["greedy"]) if v is not None}
            for name, found in references["base"]["sets"].items()}


def _references(references: dict | None) -> dict:
    rows: dict = {}
    for model, found in (references or {}).get("models", {}).items():
        for set_name, methods in found["sets"].items():
            for method, values in methods.items():
                if method == "problems":
                    continue
                label = f"{model} {method}" + ("" if method == "greedy" else f"@{found['n']}")
                present = [v for v in values if v is not None]
                if present:
                    rows.setdefault(label, {})[set_name] = float(np.mean(present))
    return rows


def _target_result(target: Target, result: dict, primary: str) -> dict:
    n = str(target.n) if target.n is not None else primary
    value = None
    if target.name == "heldout_pair_accuracy":
        value = result["heldout_pair_accuracy"]
    elif target.set in result["sets"]:
        found = result["sets"][target.set]["by_n"].get(n, {})
        if target.name == "best - base_greedy":
            best = found.get("best")
            value = best.get("minus_base_greedy") if best else None
        else:
            value = found.get("differences", {}).get(target.name) or found.get("controls", {}).get(target.name)
    met, gap = _gap(target, value)
    return {"name": target.name, "set": target.set, "n": int(n), "kind": target.kind, "threshold": target.threshold,
            "value": value, "met": met, "gap": gap}


# ---------------------------------------------------------------- tables

def _cell(value: dict | None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value['mean']:.1f}"
    if "sd" in value and value.get("units", 1) > 1:
        text += f" ± {100 * value['sd']:.1f}"
    if value.get("ci"):
        text += f" ({100 * value['ci'][0]:.1f}–{100 * value['ci'][1]:.1f})"
    return text


def study_markdown(study: Mapping) -> str:
    """Table 1 per N (rows = methods: base greedy and reference models, then the protocol's; columns =
    evaluation sets; top-1 % as mean ± sd over seeds (95% interval over seeds x problems)), the
    differences, held-out pair accuracy, the controls and the targets."""
    sets = list(study["sets"])
    lines = [f"# Study {study['name']} ({study['protocol']}, commit {study['commit']})", "",
             f"Sampling seeds {study['sampling_seeds']} (complete: {study['complete_sampling_seeds']}), "
             f"replicates {len(study['replicates'])}; pass@1 in % as mean ± sd over seeds (95% interval that "
             "resamples sampling seeds, reward seeds and problems).", ""]
    header = "| method | " + " | ".join(sets) + " |"
    rule = "|---" * (len(sets) + 1) + "|"
    for n in study["n"]:
        lines += [f"## N = {n}", "", header, rule]
        lines.append("| base model greedy | " + " | ".join(
            f"{100 * study['base_greedy'][s]:.1f}" if s in study["base_greedy"] else "–" for s in sets) + " |")
        for label, by_set in study["reference_models"].items():
            lines.append(f"| {label} | " + " | ".join(f"{100 * by_set[s]:.1f}" if s in by_set else "–" for s in sets)
                         + " |")
        methods = [m for m in METHOD_NAMES if any(m in study["sets"][s]["by_n"][str(n)]["top1"] for s in sets)]
        for method in methods:
            lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(
                _cell(study["sets"][s]["by_n"][str(n)]["top1"].get(method)) for s in sets) + " |")
        names = sorted({d for s in sets for d in study["sets"][s]["by_n"][str(n)]["differences"]})
        if names:
            lines += ["", "| difference, points | " + " | ".join(sets) + " |", rule]
            for name in names:
                lines.append(f"| {name} | " + " | ".join(
                    _cell(study["sets"][s]["by_n"][str(n)]["differences"].get(name)) for s in sets) + " |")
        lines.append("")
    pair = study["heldout_pair_accuracy"]
    if pair:
        lines.append(f"Held-out pair accuracy (rm-1): {100 * pair['mean']:.1f} ± {100 * pair['sd']:.1f} over "
                     f"{pair['units']} replicates.")
    for name, value in study["controls"].items():
        lines.append(f"Control {name} ({value['set']}, N={value['n']}): {_cell(value)} points.")
    if study["targets"]:
        lines += ["", "| target | set | N | value | met | gap |", "|---|---|---|---|---|---|"]
        for t in study["targets"]:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
            gap = "–" if t["gap"] is None else f"{100 * t['gap']:+.1f}"
            lines.append(f"| {t['name']} ({t['kind']} {t['threshold']:g}) | {t['set'] or ''} | {t['n']} | "
                         f"{_cell(t['value'])} | {met} | {gap} |")
    lines += [""] + [f"Note: {note}" for note in study["notes"]]
    return "\n".join(lines).rstrip() + "\n"
