"""--sagemaker-tune: the tuning spec (a YAML file or the tune= keyword) checked against the
script's own flags and metrics, and the pure parts of a tuning run (candidate values, the median
stopping rule, the best trial). The same rules serve local mode, the sandbox and the dry run.

    objective: {metric: loss, type: Minimize}      # a --sagemaker-metric NAME
    strategy: Random                               # Bayesian, Random, Hyperband, Grid
    max_jobs: 8
    parallel_jobs: 2
    early_stopping: Auto                           # Off or Auto
    warm_start: [earlier-tuning-job]               # optional
    seed: 1                                        # optional
    parameters:
      lr: {type: continuous, min: 0.001, max: 0.5, scaling: Logarithmic}
      epochs: {type: integer, min: 1, max: 6}
      optimizer: {type: categorical, values: [sgd, adam]}
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from ..errors import UsageError
from . import naming

FLAG = "--sagemaker-tune"
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
KINDS = ("continuous", "integer", "categorical")


@dataclass(frozen=True)
class Param:
    name: str  # the script's argument (args.<name>), also the hyperparameter's name
    flag: str  # the script's flag that receives the value
    kind: str
    low: float = None
    high: float = None
    scaling: str = "Auto"
    values: tuple = ()


@dataclass(frozen=True)
class TuneSpec:
    metric: str
    objective: str  # Minimize or Maximize
    strategy: str
    max_jobs: int
    parallel_jobs: int
    early_stopping: str  # Off or Auto
    params: tuple
    warm_start: tuple = ()
    seed: int = None


def _bad(problem: str, fix: str):
    raise UsageError(FLAG, None, problem, fix)


def _number(raw, where: str, integer=False):
    try:
        value = float(raw)
    except (TypeError, ValueError):
        _bad(f"{where}: {raw!r} is not a number", "write it as a number")
    if integer and value != int(value):
        _bad(f"{where}: {raw!r} is not a whole number", "an integer parameter takes whole-number bounds")
    return int(value) if integer else value


def parse_tune(raw, user_flags: dict, metrics) -> TuneSpec:
    """`raw`: the spec mapping; `user_flags`: the script's tunable arguments, name -> flag;
    `metrics`: the --sagemaker-metric names. UsageError (one line) for any mistake."""
    if not isinstance(raw, dict):
        _bad("the tuning spec must be a mapping", "see docs/tuning.md for its keys")
    known = {"objective", "strategy", "max_jobs", "parallel_jobs", "early_stopping", "warm_start", "seed",
             "parameters"}
    unknown = sorted(set(raw) - known)
    if unknown:
        _bad(f"unknown key {unknown[0]!r} in the tuning spec", "use: " + ", ".join(sorted(known)))
    objective = raw.get("objective") or {}
    metric = objective.get("metric") if isinstance(objective, dict) else None
    names = [name for name, _ in metrics]
    if metric not in names:
        _bad(f"objective metric {metric!r} is not one of the job's metrics ({', '.join(names) or 'none'})",
             "define it with --sagemaker-metric NAME=REGEX and name it in objective: {metric: NAME}")
    goal = str(objective.get("type", "Minimize")).capitalize()
    if goal not in ("Minimize", "Maximize"):
        _bad(f"objective type {goal!r}", "use Minimize or Maximize")
    strategy = next((s for s in STRATEGIES if s.lower() == str(raw.get("strategy", "Bayesian")).lower()), None)
    if strategy is None:
        _bad(f"strategy {raw.get('strategy')!r}", "use one of " + ", ".join(STRATEGIES))
    stopping = str(raw.get("early_stopping", "Off")).capitalize()
    if stopping not in ("Off", "Auto"):
        _bad(f"early_stopping {raw.get('early_stopping')!r}", "use Off or Auto")
    if strategy == "Hyperband" and stopping == "Auto":
        _bad("Hyperband stops trials itself", "drop early_stopping: Auto (SageMaker refuses the two together)")
    params = []
    for name, body in (raw.get("parameters") or {}).items():
        if name not in user_flags:
            _bad(f"parameter {name!r} is not one of the script's flags that take a value",
                 "tunable: " + (", ".join(sorted(user_flags)) or "none (add the flags to the script)"))
        if not isinstance(body, dict) or body.get("type") not in KINDS:
            _bad(f"parameter {name!r} needs a type", "type: continuous, integer or categorical")
        kind = body["type"]
        if kind == "categorical":
            values = tuple(str(v) for v in body.get("values") or ())
            if not values:
                _bad(f"parameter {name!r} has no values", "give values: [a, b, ...]")
            params.append(Param(name, user_flags[name], kind, values=values))
            continue
        low = _number(body.get("min"), f"parameter {name!r} min", kind == "integer")
        high = _number(body.get("max"), f"parameter {name!r} max", kind == "integer")
        scaling = next((s for s in SCALINGS if s.lower() == str(body.get("scaling", "Auto")).lower()), None)
        if low >= high or scaling is None:
            _bad(f"parameter {name!r}: min must be below max and scaling one of {', '.join(SCALINGS)}",
                 "fix the range")
        if scaling in ("Logarithmic", "ReverseLogarithmic") and low <= 0:
            _bad(f"parameter {name!r}: a logarithmic range must be above 0", "raise min above 0")
        params.append(Param(name, user_flags[name], kind, low, high, scaling))
    if not params:
        _bad("the tuning spec has no parameters", "add parameters: {NAME: {type: ..., ...}}")
    if strategy == "Grid" and any(p.kind != "categorical" for p in params):
        _bad("the Grid strategy takes categorical parameters only", "make them categorical or pick Random")
    grid = math.prod(len(p.values) for p in params) if strategy == "Grid" else None
    max_jobs = int(raw.get("max_jobs", grid or 10))
    parallel = int(raw.get("parallel_jobs", 1))
    if not 1 <= parallel <= max_jobs <= 500:
        _bad(f"max_jobs {max_jobs} and parallel_jobs {parallel}", "use 1 <= parallel_jobs <= max_jobs <= 500")
    warm = raw.get("warm_start") or ()
    warm = (warm,) if isinstance(warm, str) else tuple(str(w) for w in warm)
    seed = raw.get("seed")
    return TuneSpec(metric, goal, strategy, max_jobs, parallel, stopping, tuple(params), warm,
                    int(seed) if seed is not None else None)


def parameter_ranges(tune: TuneSpec) -> dict:
    """HyperParameterTuningJobConfig.ParameterRanges."""
    def number(value, kind):
        return str(int(value)) if kind == "integer" else repr(float(value))

    ranges = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [], "CategoricalParameterRanges": []}
    for p in tune.params:
        if p.kind == "categorical":
            ranges["CategoricalParameterRanges"].append({"Name": p.name, "Values": list(p.values)})
        else:
            ranges[f"{p.kind.capitalize()}ParameterRanges"].append(
                {"Name": p.name, "MinValue": number(p.low, p.kind), "MaxValue": number(p.high, p.kind),
                 "ScalingType": p.scaling})
    return {key: value for key, value in ranges.items() if value}


def _sample(p: Param, rng: random.Random) -> str:
    if p.kind == "categorical":
        return rng.choice(p.values)
    low, high = p.low, p.high
    if p.scaling == "Logarithmic":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif p.scaling == "ReverseLogarithmic":
        value = high + low - math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    if p.kind == "integer":
        return str(min(int(high), max(int(low), round(value))))
    return f"{value:.6g}"


def candidates(tune: TuneSpec) -> list:
    """The trials' values ({name: text}) for a local run: every combination for Grid; otherwise
    random draws with each range's scaling, seeded (Bayesian and Hyperband are sampled at random
    here: only SageMaker runs their models)."""
    if tune.strategy == "Grid":
        combos = itertools.product(*[p.values for p in tune.params])
        return [dict(zip([p.name for p in tune.params], combo)) for combo in combos][:tune.max_jobs]
    rng = random.Random(tune.seed if tune.seed is not None else 0)
    return [{p.name: _sample(p, rng) for p in tune.params} for _ in range(tune.max_jobs)]


def better(a: float, b: float, objective: str) -> bool:
    return a < b if objective == "Minimize" else a > b


def should_stop(series: list, finished: list, objective: str) -> bool:
    """The median stopping rule (SageMaker's Auto early stopping): stop a trial whose objective at
    step k is worse than the median of the finished trials' values at step k. Needs two finished
    trials that reached step k."""
    k = len(series)
    if k == 0:
        return False
    peers = sorted(s[k - 1] for s in finished if len(s) >= k)
    if len(peers) < 2:
        return False
    middle = len(peers) // 2
    median = peers[middle] if len(peers) % 2 else (peers[middle - 1] + peers[middle]) / 2
    return better(median, series[-1], objective)


def tune_from_request(config: dict, tuned_flags: dict) -> TuneSpec:
    """A TuneSpec from a CreateHyperParameterTuningJob config (what the sandbox receives), the
    inverse of parameter_ranges."""
    ranges = config.get("ParameterRanges") or {}
    params = []
    for kind in ("Integer", "Continuous"):
        for r in ranges.get(f"{kind}ParameterRanges", []):
            number = int if kind == "Integer" else float
            params.append(Param(r["Name"], tuned_flags.get(r["Name"], "--" + r["Name"]), kind.lower(),
                                number(r["MinValue"]), number(r["MaxValue"]), r.get("ScalingType", "Auto")))
    for r in ranges.get("CategoricalParameterRanges", []):
        params.append(Param(r["Name"], tuned_flags.get(r["Name"], "--" + r["Name"]), "categorical",
                            values=tuple(r["Values"])))
    limits = config.get("ResourceLimits") or {}
    grid = math.prod(len(p.values) for p in params) if config.get("Strategy") == "Grid" else None
    objective = config["HyperParameterTuningJobObjective"]
    return TuneSpec(objective["MetricName"], objective["Type"], config.get("Strategy", "Bayesian"),
                    int(limits.get("MaxNumberOfTrainingJobs") or grid or 1),
                    int(limits.get("MaxParallelTrainingJobs", 1)), config.get("TrainingJobEarlyStoppingType", "Off"),
                    tuple(params), (), config.get("RandomSeed"))


KEYS = ("tune",)  # the option this area owns (spec/checks.py)


def tuning_fields(v, *, cwd: str, tunable: dict, metrics, instance: str, queue, instance_fallbacks, instance_groups,
                  spot_fallback: bool, simulate_interruption, base_job_name: str, now, token) -> dict:
    """The JobSpec fields of tuning (a TuneSpec and the tuning job's name, or None for both), or
    UsageError when the tuning spec is wrong or does not combine with the capacity asked for.
    instance: --sagemaker-instance as given, for the refusal of a list."""
    if not v.get("tune"):
        return dict(tune=None, tuning_job_name=None)
    tune = read_tune(v["tune"], cwd, tunable or {}, metrics)
    if queue:
        raise UsageError("--sagemaker-queue", queue, "a tuning job is not queued",
                         "drop --sagemaker-queue or --sagemaker-tune")
    if instance_fallbacks:
        raise UsageError("--sagemaker-instance", instance, "a tuning job runs on one instance type",
                         "give one --sagemaker-instance and no instance groups")
    if instance_groups:
        raise UsageError("--sagemaker-instance-group", ",".join(name for name, _, _ in instance_groups),
                         "a tuning job runs on one instance type",
                         "give one --sagemaker-instance and no instance groups")
    if simulate_interruption:
        raise UsageError("--sagemaker-simulate-interruption", None, "does not combine with tuning", "drop one of them")
    if spot_fallback:  # the client-side relaunch runs one job at a time; SageMaker starts the trials
        raise UsageError("--sagemaker-spot-fallback", "yes", "a tuning job's trials are not relaunched on demand",
                         "drop --sagemaker-spot-fallback (or --sagemaker-spot, to run the trials on demand)")
    return dict(tune=tune, tuning_job_name=naming.tuning_job_name(base_job_name, now, token))


def read_tune(raw, cwd: str, tunable: dict, metrics) -> TuneSpec:
    """--sagemaker-tune FILE (YAML) or the tune= mapping, parsed and checked."""
    import os

    if isinstance(raw, str):
        path = os.path.join(cwd, os.path.expanduser(raw))
        if not os.path.isfile(path):
            raise UsageError(FLAG, raw, "no such file", "give the tuning spec's YAML file")
        from .config import read_yaml

        raw = read_yaml(path)
    return parse_tune(raw, tunable, metrics)
