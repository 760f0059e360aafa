"""What a job may cost before it starts (the worst case, and the budget that refuses it) and what
it cost once it ended, from the on-demand prices of aws/pricing.py.

The worst case of a launch is instance count x price x (max run + keep-alive): for instance
groups the sum over the groups, for an instance list the dearest choice, for a tuning job that
times its trials (parallel trials shorten the wall time, not the bill). A spot job's worst case
is the same on-demand figure: SageMaker bills spot jobs less, and says how much less only after.
The cost after is SageMaker's BillableTimeInSeconds (wall-clock time, already reduced for spot)
x the instances x the price; beside a spot job's, the on-demand equivalent of its training time.
Instances only: storage, data transfer and requests are not counted.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from ..aws.pricing import Price
from ..errors import UsageError


def usd(value: float) -> str:
    """$1,234.56: a cent and more to the cent, less than that to four decimals, then <$0.0001."""
    if value >= 0.01 or value == 0:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.0001 else "<$0.0001"


def hourly(price: Price) -> str:
    return f"${price.usd:,.4g}/h" if price.known else "price unknown"


def hours(seconds: float) -> str:
    value = seconds / 3600
    return f"{value:g} h" if value >= 1 or value == 0 else f"{seconds / 60:g} min"


class PriceBook:
    """Prices for one command: each (type, region) looked up once, from the day's disk cache or the
    Price List API; a failed look-up is said once (`warn`), then every other price is unknown for
    the same reason without another call. `session` None: the cache only (the dry run: no AWS call)."""

    def __init__(self, session, environ, warn=None, clock=time.time):
        from ..aws.pricing import PriceCache

        self.session, self.environ = session, environ
        self.cache = PriceCache(environ, clock)
        self.warn = warn if warn is not None else (lambda text: print(text, file=sys.stderr))
        self.known = {}
        self.failure = None  # the reason the API could not be asked, once it failed

    def __call__(self, instance_type: str, region: str) -> Price:
        key = (instance_type, region)
        if key not in self.known:
            self.known[key] = self._look_up(instance_type, region)
        return self.known[key]

    def _look_up(self, instance_type: str, region: str) -> Price:
        if region.startswith("cn-"):
            return Price(None, "prices of the China regions (in CNY, from another endpoint) are not looked up")
        cached = self.cache.get(instance_type, region)
        if cached is not None:
            return cached
        if self.session is None:
            return Price(None, f"a dry run makes no AWS call, and no price of {instance_type} in {region} was looked "
                               f"up today (`aws-train-remote price {instance_type} --region {region}` looks it up)")
        if self.failure:
            return Price(None, self.failure)
        from botocore.exceptions import BotoCoreError, ClientError

        from ..aws.pricing import fetch_price, pricing_client, why_not

        try:
            price = fetch_price(pricing_client(self.session), instance_type, region)
        except (ClientError, BotoCoreError) as err:
            self.failure = why_not(err)
            self.warn(f"note: prices unknown: {self.failure}")
            return Price(None, self.failure)
        self.cache.put(instance_type, region, price)
        return price


# -- before: the worst case ----------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """Instances of one type billed together: the job's, or one instance group's."""
    count: int
    instance_type: str
    price: Price
    group: str = ""

    def text(self) -> str:
        return (f"{self.group} " if self.group else "") + f"{self.count} x {self.instance_type} at {hourly(self.price)}"


@dataclass(frozen=True)
class Estimate:
    parts: tuple  # the dearest choice's Parts
    seconds: int  # the longest one job may be billed: max run + keep-alive
    jobs: int = 1  # a tuning job's trials
    parallel: int = 1
    spot: bool = False
    choices: tuple = ()  # an instance list's types, dearest first
    keep_alive: int = 0
    plan: str = None  # a training plan (--sagemaker-training-plan): its instances are paid upfront

    @property
    def per_hour(self):
        if self.plan:
            return 0.0
        if any(not p.price.known for p in self.parts):
            return None
        return sum(p.count * p.price.usd for p in self.parts)

    @property
    def usd(self):
        rate = self.per_hour
        return None if rate is None else rate * self.seconds / 3600 * self.jobs

    @property
    def instance_hours(self) -> float:
        return sum(p.count for p in self.parts) * self.seconds / 3600 * self.jobs

    @property
    def why_unknown(self) -> str:
        reasons = [p.price.why for p in self.parts if not p.price.known]
        return "; ".join(dict.fromkeys(reasons))

    def formula(self) -> str:
        parts = " + ".join(p.text() for p in self.parts)
        if len(self.parts) > 1:
            parts = f"({parts})"
        run = f"for up to {hours(self.seconds)}" + (f" (max run + {hours(self.keep_alive)} kept warm)"
                                                     if self.keep_alive else "")
        return (f"{self.jobs} trials x " if self.jobs > 1 else "") + f"{parts} {run}"

    def lines(self) -> list:
        if self.plan:
            return [f"estimate: the instances ({', '.join(f'{p.count} x {p.instance_type}' for p in self.parts)}) run "
                    f"on training plan {self.plan}, paid upfront: no charge by the hour for them"]
        if self.usd is None:
            head = (f"estimate: up to {self.instance_hours:,.4g} instance-hours ({self.formula()}); price unknown: "
                    f"{self.why_unknown}")
        else:
            head = f"estimate: at most {usd(self.usd)} on demand: {self.formula()}"
        lines = [head]
        if self.choices:
            lines.append(f"  the dearest choice of the instance list ({', '.join(self.choices)}): the job runs on one "
                         "of them")
        if self.jobs > 1:
            waves = math.ceil(self.jobs / self.parallel)
            lines.append(f"  wall time up to {hours(waves * self.seconds)} ({self.parallel} trials at a time); "
                         "running trials side by side shortens it, not the bill")
        if self.spot:
            lines.append("  spot: SageMaker bills spot jobs less than this on-demand worst case; the job's summary "
                         "shows what it saved")
        return lines

    def record(self) -> dict:
        """The estimate as the dry run's JSON carries it."""
        return {"worst_case_usd": None if self.usd is None else round(self.usd, 4),
                "per_hour_usd": None if self.per_hour is None else round(self.per_hour, 6),
                "seconds_per_job": self.seconds, "jobs": self.jobs, "parallel": self.parallel,
                "instance_hours": round(self.instance_hours, 4), "spot": self.spot,
                "instances": [{"group": p.group or None, "count": p.count, "instance_type": p.instance_type,
                               "usd_per_hour": p.price.usd, "source": p.price.source or None,
                               "unknown": p.price.why or None} for p in self.parts],
                "choices": list(self.choices), "price_unknown": self.why_unknown or None,
                "counted": "instances only (on-demand prices; storage and data transfer are not counted)"}


def worst_case(specs, price_of) -> Estimate:
    """The launch's worst case; `specs`: its spec, or the spec of each of its choices (capacity.py's
    attempts, which hold one instance type each); `price_of(instance_type, region)` -> Price."""
    specs = list(specs) if isinstance(specs, (list, tuple)) else [specs]
    spec = specs[0]
    seconds = int(spec.max_run) + int(spec.keep_alive or 0)
    jobs, parallel = (spec.tune.max_jobs, spec.tune.parallel_jobs) if spec.tune else (1, 1)
    common = dict(seconds=seconds, jobs=jobs, parallel=parallel, spot=bool(spec.spot),
                  keep_alive=int(spec.keep_alive or 0))
    plan = getattr(spec, "training_plan", None)
    if plan:  # paid upfront: nothing to look up (aws/instances.py names the plan)
        unpriced = Price(None, "paid with the training plan")
        return Estimate((Part(spec.instance_count, spec.instance_type, unpriced),), plan=plan.split(
            ":training-plan/", 1)[-1], **common)
    if spec.instance_groups:
        parts = tuple(Part(count, kind, price_of(kind, spec.region), name)
                      for name, kind, count in spec.instance_groups)
        return Estimate(parts, **common)
    found = dict.fromkeys(choice for each in specs for choice in instance_choices(each))
    options = [(Part(count, kind, price_of(kind, spec.region)),) for kind, count in found]
    if all(o[0].price.known for o in options):
        options.sort(key=lambda o: -o[0].price.usd)
    else:  # the dearest cannot be told: show the first whose price is unknown
        options.sort(key=lambda o: o[0].price.known)
    choices = tuple(o[0].instance_type for o in options) if len(options) > 1 else ()
    return Estimate(options[0], choices=choices, **common)


def instance_choices(spec) -> list:
    """(type, count) of each choice an instance list offers: a spot list relaunched by the client
    (instance_fallbacks: (type, image[, count])) or an on-demand list SageMaker chooses from
    (instance_preferences: (type, count)); a count of None is --sagemaker-instance-count's."""
    found = [(spec.instance_type, spec.instance_count)]
    for entry in spec.instance_fallbacks:
        count = entry[2] if len(entry) > 2 else None
        found.append((entry[0], spec.instance_count if count is None else count))
    for kind, count in getattr(spec, "instance_preferences", ()) or ():
        found.append((kind, spec.instance_count if count is None else count))
    return list(dict.fromkeys(found))


def counted_list(spec) -> bool:
    """Whether --sagemaker-instance gave each type its own count (ml.p5.48xlarge:2,ml.p4d.24xlarge:4)."""
    return (any(count is not None for _, count in getattr(spec, "instance_preferences", ()) or ())
            or any(len(entry) > 2 and entry[2] is not None for entry in spec.instance_fallbacks))


def budget_refusal(spec, estimate: Estimate):
    """The UsageError that refuses a launch over --sagemaker-budget (or of unknown price without
    --sagemaker-budget-unknown-ok); None when it may go on."""
    if spec.budget is None:
        return None
    if estimate.usd is None:
        if spec.budget_unknown_ok:
            return None
        return UsageError("--sagemaker-budget", usd(spec.budget), f"the worst case cannot be priced "
                          f"({estimate.why_unknown})", "pass --sagemaker-budget-unknown-ok to launch anyway")
    if estimate.usd <= spec.budget:
        return None
    lower = ["--sagemaker-max-run" + (f" ({hours(spec.max_run)})" if spec.max_run else "")]
    if spec.instance_groups:
        lower.append("the instance groups' counts")
    elif counted_list(spec):  # TYPE:COUNT entries: --sagemaker-instance-count is refused beside them
        dearest = estimate.parts[0]
        if dearest.count > 1:
            lower.append(f"the counts in --sagemaker-instance ({dearest.instance_type}:{dearest.count})")
    elif spec.instance_count > 1:
        lower.append(f"--sagemaker-instance-count ({spec.instance_count})")
    if spec.tune:
        lower.append(f"the trials (max_jobs: {spec.tune.max_jobs})")
    if spec.keep_alive:
        lower.append("--sagemaker-keep-alive")
    if estimate.choices:
        lower.append(f"the dearer types of --sagemaker-instance ({estimate.choices[0]})")
    return UsageError("--sagemaker-budget", usd(spec.budget),
                      f"the worst case is {usd(estimate.usd)} ({estimate.formula()})",
                      f"lower {', '.join(lower)}, or raise the budget")


def check_launch_cost(specs, price_of, out) -> Estimate:
    """Print the worst case and hold the budget: raises UsageError before anything is created."""
    estimate = worst_case(specs, price_of)
    for line in estimate.lines():
        print(line, file=out)
    refusal = budget_refusal(specs[0] if isinstance(specs, (list, tuple)) else specs, estimate)
    if refusal is not None:
        raise refusal
    return estimate


# -- after: what a job cost ---------------------------------------------------------------------

@dataclass(frozen=True)
class JobCost:
    parts: tuple  # Parts of the job's instances
    billable: int  # BillableTimeInSeconds (None before SageMaker reports it)
    training: int  # TrainingTimeInSeconds
    spot: bool
    kept: int = 0  # seconds a warm pool kept the instances after the job, billed too

    plan: str = None  # the training plan it ran on: paid upfront, not by the hour

    @property
    def per_hour(self):
        if not self.parts or any(not p.price.known for p in self.parts):
            return None
        return sum(p.count * p.price.usd for p in self.parts)

    @property
    def usd(self):
        if self.per_hour is None or self.billable is None:
            return None
        return self.per_hour * (self.billable + self.kept) / 3600

    @property
    def on_demand_usd(self):
        """A spot job's training time at the on-demand price: what it would have cost."""
        if not self.spot or self.per_hour is None or self.training is None:
            return None
        return self.per_hour * (self.training + self.kept) / 3600

    @property
    def why_unknown(self) -> str:
        if self.plan:
            return f"the instances were paid upfront with training plan {self.plan}"
        if not self.parts:
            return "SageMaker has not chosen the instance type yet"
        if self.billable is None:
            return "SageMaker has not reported the billable time yet"
        return "; ".join(dict.fromkeys(p.price.why for p in self.parts if not p.price.known))

    def line(self) -> str:
        if self.plan:
            return f"cost: paid upfront with training plan {self.plan} (no charge by the hour for its instances)"
        if self.usd is None:
            return f"cost: unknown ({self.why_unknown})"
        text = f"cost: {usd(self.usd)} ({' + '.join(p.text() for p in self.parts)} x {self.billable} s billable"
        text += f" + {self.kept} s kept warm)" if self.kept else ")"
        if self.on_demand_usd is not None:
            text += f"; {usd(self.on_demand_usd)} on demand"
        return text

    def record(self) -> dict:
        return {"usd": None if self.usd is None else round(self.usd, 6),
                "on_demand_usd": None if self.on_demand_usd is None else round(self.on_demand_usd, 6),
                "usd_per_hour": self.per_hour, "billable_seconds": self.billable, "kept_warm_seconds": self.kept,
                "unknown": self.why_unknown or None}


def job_parts(desc: dict, price_of, region: str) -> tuple:
    """The job's instances priced: each group's, or the type SageMaker runs it on (its choice from
    an instance list: aws/instances.py); () before SageMaker has chosen."""
    from ..aws.instances import selected

    resources = desc.get("ResourceConfig") or {}
    if resources.get("InstanceGroups"):
        return tuple(Part(g["InstanceCount"], g["InstanceType"], price_of(g["InstanceType"], region),
                          g.get("InstanceGroupName", "")) for g in resources["InstanceGroups"])
    kind, count = selected(desc)
    return (Part(count or 1, kind, price_of(kind, region)),) if kind else ()


def job_cost(desc: dict, price_of, region: str) -> JobCost:
    """What a job cost (DescribeTrainingJob's answer): billable seconds x instances x price."""
    pool = desc.get("WarmPoolStatus") or {}
    plan = (desc.get("ResourceConfig") or {}).get("TrainingPlanArn")
    unpriced = lambda kind, region: Price(None, "")  # noqa: E731 - no billable time yet: no look-up either
    billed = desc.get("BillableTimeInSeconds") is not None
    parts = () if plan else job_parts(desc, price_of if billed else unpriced, region)
    return JobCost(parts, desc.get("BillableTimeInSeconds"), desc.get("TrainingTimeInSeconds"),
                   bool(desc.get("EnableManagedSpotTraining")),
                   int(pool.get("ResourceRetainedBillableTimeInSeconds") or 0),
                   plan.split(":training-plan/", 1)[-1] if plan else None)


def region_of(desc: dict, default: str) -> str:
    arn = desc.get("TrainingJobArn") or ""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else default


def trials_cost_line(costs: list) -> str:
    """A tuning job's cost: the sum over its trials."""
    known = [c.usd for c in costs if c.usd is not None]
    on_demand = [c.on_demand_usd for c in costs if c.on_demand_usd is not None]
    if not costs:
        return "cost: no trial ran"
    if len(known) < len(costs):
        missing = next(c.why_unknown for c in costs if c.usd is None)
        return (f"cost: {usd(sum(known))} for {len(known)} of {len(costs)} trials; the rest unknown ({missing})"
                if known else f"cost: unknown ({missing})")
    text = f"cost: {usd(sum(known))} for {len(costs)} trials"
    return text + (f"; {usd(sum(on_demand))} on demand" if on_demand else "")


def print_job_cost(desc: dict, session, environ, region: str, out, book=None) -> JobCost:
    """The cost line after a followed job's summary."""
    cost = job_cost(desc, book or PriceBook(session, environ, warn=lambda text: None), region_of(desc, region))
    print(cost.line(), file=out)
    out.flush()
    return cost


def print_trials_cost(sm, tuning_name: str, session, environ, region: str, out) -> str:
    """A tuning job's cost: each trial described (ListTrainingJobsForHyperParameterTuningJob has
    no billable time), summed."""
    from .tuning import list_trials

    book = PriceBook(session, environ, warn=lambda text: None)
    costs = [job_cost(sm.describe_training_job(TrainingJobName=row["TrainingJobName"]), book, region)
             for row in list_trials(sm, tuning_name)]
    line = trials_cost_line(costs)
    print(line, file=out)
    return line


def cost_column(rows: list, jobs: list, costs: dict) -> list:
    """The `list` table with a COST column before NAME (the last column): what each ended job cost,
    '-' for a job still running or whose price is unknown."""
    def cell(job):
        cost = costs.get(job["TrainingJobName"])
        return usd(cost.usd) if cost is not None and cost.usd is not None else "-"

    cells = [cell(job) for job in jobs]
    width = max([len("COST")] + [len(c) for c in cells])
    out = [rows[0][:-len("NAME")] + f"{'COST':<{width}}  NAME"]
    for row, job, text in zip(rows[1:], jobs, cells):
        name = job["TrainingJobName"]
        out.append(row[:-len(name)] + f"{text:>{width}}  {name}")
    return out


def cmd_price(session, types, region: str, environ, out=None) -> int:
    """`aws-train-remote price TYPE...`: each type's on-demand price and where it comes from."""
    from ..spec.compute import INSTANCE_TYPE

    out = out if out is not None else sys.stdout
    for kind in types:
        if not INSTANCE_TYPE.match(kind):
            raise UsageError("TYPE", kind, "not a SageMaker instance type", "e.g. ml.g5.xlarge")
    book = PriceBook(session, environ, warn=lambda text: None)
    unknown = 0
    for kind in types:
        price = book(kind, region)
        unknown += not price.known
        print(f"{kind} in {region}: " + (f"{hourly(price)} on demand ({price.source})" if price.known
                                          else f"price unknown: {price.why}"), file=out)
    return 1 if unknown else 0
