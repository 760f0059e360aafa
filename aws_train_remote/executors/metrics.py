"""`aws-train-remote metrics`: the metrics a job defined (--sagemaker-metric NAME=REGEX, its
request's MetricDefinitions) read from its log as SageMaker reads them, whatever ran it: a
SageMaker or sandbox job's CloudWatch log, a local-mode job's kept log (local_jobs.py). Shown as a
table with a sparkline per metric, as JSON, or drawn into an image with matplotlib."""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

from ..errors import UsageError
from .style import SPARKS

ASCII_SPARKS = "_.,-=+*#"
PLOT_HINT = "pip install 'aws-train-remote[plot]' (matplotlib), or drop --plot"


@dataclass(frozen=True)
class Series:
    name: str
    regex: str
    points: tuple = field(default=())  # (timestamp ms, value), in log order
    host: str = None  # the instance whose log gave the values (SageMaker keeps a series per host too)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host})" if self.host else self.name

    @property
    def values(self) -> list:
        return [v for _, v in self.points]


def definitions_of(desc: dict) -> list:
    """(name, regex) of each MetricDefinition of a DescribeTrainingJob answer (or a request)."""
    found = (desc.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
    return [(d["Name"], d["Regex"]) for d in found if d.get("Name") and d.get("Regex")]


def extract(lines, definitions) -> list:
    """The Series of each definition from (timestamp, host, message) triples, one per host when
    several hosts' logs match (each host's training loop prints its own). As SageMaker does: each
    match of the regex in a line is a value, its first group if it has one; text that is not a
    number is skipped."""
    found = []
    for name, regex in definitions:
        try:
            pattern = re.compile(regex)
        except re.error:
            found.append(Series(name, regex))  # AWS accepted it; Python's re does not: no values
            continue
        by_host = {}
        for timestamp, host, message in lines:
            for match in pattern.finditer(message or ""):
                try:
                    value = float(match.group(1) if pattern.groups else match.group(0))
                except (TypeError, ValueError):
                    continue
                by_host.setdefault(host, []).append((timestamp, value))
        if len(by_host) > 1:
            found += [Series(name, regex, tuple(by_host[h]), h) for h in sorted(by_host, key=_host_order)]
        else:
            found.append(Series(name, regex, tuple(next(iter(by_host.values()), ()))))
    return found


def _host_order(host: str):
    """algo-2 before algo-10."""
    number = re.search(r"(\d+)$", host or "")
    return (host[:number.start()], int(number.group(1))) if number else (host or "", 0)


def sparkline(values, width: int = 40, blocks: bool = True) -> str:
    """`values` as at most `width` characters, each the mean of its share of the values, scaled
    from the smallest (lowest bar) to the largest."""
    values = [v for v in values if v == v]  # NaN has no height
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [sum(chunk) / len(chunk) for chunk in
                  (values[int(i * step):max(int((i + 1) * step), int(i * step) + 1)] for i in range(width))]
    marks = SPARKS if blocks else ASCII_SPARKS
    low, high = min(values), max(values)
    if high == low:
        return marks[len(marks) // 2] * len(values)
    return "".join(marks[round((v - low) / (high - low) * (len(marks) - 1))] for v in values)


def _number(value) -> str:
    return "-" if value is None else f"{value:.6g}"


def table_lines(series, blocks: bool = True) -> list:
    """A header, then one row per metric: values read, first, last, min, max and the sparkline."""
    rows = [("METRIC", "COUNT", "FIRST", "LAST", "MIN", "MAX", "TREND")]
    for s in series:
        v = s.values
        rows.append((s.label, str(len(v)), _number(v[0] if v else None), _number(v[-1] if v else None),
                     _number(min(v) if v else None), _number(max(v) if v else None), sparkline(v, blocks=blocks)))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    return [("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r[:6]))
             + "  " + r[6]).rstrip() for r in rows]


def json_record(job: str, series) -> dict:
    """`metrics --json`: stable keys, documented in docs/cli.md."""
    return {"job": job, "metrics": [{
        "name": s.name, "host": s.host, "regex": s.regex, "count": len(s.points),
        "last": s.values[-1] if s.points else None, "min": min(s.values) if s.points else None,
        "max": max(s.values) if s.points else None,
        "values": [{"timestamp": t, "value": v} for t, v in s.points]} for s in series]}


def check_plot(path) -> None:
    """--plot FILE: matplotlib importable and the folder there, before anything is read."""
    import importlib.util
    import os

    if path is None:
        return
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot", path, "drawing needs matplotlib, which is not installed", PLOT_HINT)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError("--plot", path, f"no folder {folder}", "create it, or write the image elsewhere")


def plot(job: str, series, path: str) -> None:
    """One panel per metric (and host), against the time since the first value of any, in
    seconds, minutes or hours as the job's length asks."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    drawn = [s for s in series if s.points]
    times = [t for s in drawn for t, _ in s.points] or [0]
    span = (max(times) - min(times)) / 1000
    unit, scale = ("hours", 3600.0) if span > 7200 else ("minutes", 60.0) if span > 120 else ("seconds", 1.0)
    fig, axes = plt.subplots(max(1, len(drawn)), 1, figsize=(8, 2.6 * max(1, len(drawn))), squeeze=False,
                             sharex=True)
    for ax, s in zip(axes[:, 0], drawn):
        ax.plot([(t - min(times)) / 1000 / scale for t, _ in s.points], s.values,
                marker="." if len(s.points) < 50 else None)
        ax.set_ylabel(s.label)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"{unit} since the first value")
    axes[0, 0].set_title(job if drawn else f"{job}: no metric values in the log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def show(job: str, definitions, lines, args, out=None) -> int:
    """Print (or draw) the metrics of `job` from its log `lines` ((timestamp, host, message))."""
    import json

    from .style import blocks_ok

    out = out if out is not None else sys.stdout
    if not definitions:
        raise UsageError("JOB", job, "defined no metrics (its launch had no --sagemaker-metric)",
                         "launch with e.g. --sagemaker-metric 'loss=loss: ([0-9.eE+-]+)'")
    series = extract(lines, definitions)
    if args.json:
        out.write(json.dumps(json_record(job, series), indent=2) + "\n")
    else:
        out.write("\n".join(table_lines(series, blocks_ok(out))) + "\n")
    if args.plot:
        plot(job, series, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr if args.json else out)
    return 0


def check_instances(hosts, count: int = None) -> None:
    """--instance names hosts the job has (algo-1 .. algo-<count>): a table of zero counts for one
    it does not have would read as a job that logged nothing."""
    for host in hosts or ():
        match = re.match(r"^algo-([1-9][0-9]*)$", host)
        if not match:
            raise UsageError("--instance", host, "not a host name", "use algo-1, algo-2, ... (the job's instances)")
        if count is not None and int(match.group(1)) > count:
            raise UsageError("--instance", host, f"the job has {count} instance{'' if count == 1 else 's'}",
                             f"use one of algo-1..algo-{count}")


def cmd_metrics_local(kept: dict, args) -> int:
    """A local-mode job: its kept log (local_jobs.py) and the definitions its request had."""
    from ..local_jobs import read_log

    check_instances(args.instance)
    lines = [line for line in read_log(kept) if not args.instance or line[1] in args.instance]
    definitions = [(d["Name"], d["Regex"]) for d in kept.get("metric_definitions") or []]
    return show(kept["job"], definitions, lines, args)


def cmd_metrics(session, job: str, args, sleep=None) -> int:
    """A SageMaker (or sandbox) job: its definitions from DescribeTrainingJob, its whole
    CloudWatch log, every instance (or those of --instance). A read cut short by throttling is
    resumed where it stopped, a few times, before it fails."""
    import time

    from ..aws.logs import LogTail
    from ..errors import AwsError
    from .follow import what_failed
    from .manage import describe
    from .shell import _instances

    desc = describe(session.client("sagemaker"), job)
    check_instances(args.instance, _instances(desc))
    definitions = definitions_of(desc)
    if not definitions:
        return show(job, definitions, [], args)
    tail = LogTail(session.client("logs"), job, hosts=args.instance)
    lines = tail.poll()
    for wait in (1, 2, 4, 8):
        if tail.failure is None:
            break
        (sleep or time.sleep)(wait)
        lines += tail.retry_unread()
    if tail.failure is not None:
        raise AwsError(f"the log of {job} could not be read whole ({what_failed(tail.failure)}); try again")
    lines.sort(key=lambda line: line.timestamp)
    return show(job, definitions, [(line.timestamp, line.host, line.message) for line in lines], args)
