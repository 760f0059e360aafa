"""Hyperparameter tuning: the trials loop that local mode and the sandbox share (trials run on this
machine, the objective parsed from each trial's log, the median stopping rule applied), and the
launcher's follow of a SageMaker tuning job (a table of trials, then the best one)."""
from __future__ import annotations

import hashlib
import re
import sys
import threading
import time
from dataclasses import dataclass, field

from ..spec.tuning import better, candidates, should_stop

TERMINAL_TUNING = ("Completed", "Failed", "Stopped")


@dataclass
class Trial:
    name: str
    values: dict
    status: str = "Pending"  # InProgress, Completed, Failed, Stopped
    series: list = field(default_factory=list)  # the objective metric as the log printed it
    stopped_early: bool = False
    failure: str = None
    handle: object = None

    @property
    def objective(self):
        return self.series[-1] if self.series else None


def trial_name(tuning_name: str, number: int, values: dict) -> str:
    digest = hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:8]
    return f"{tuning_name}-{number:03d}-{digest}"


def run_trials(tune, tuning_name: str, metric_regex: str, launch, on_change=lambda trial: None) -> list:
    """Run the trials `parallel_jobs` at a time. `launch(name, values, on_line)` starts one trial
    and returns a handle with wait() -> (status, failure reason) and stop(). With Auto early
    stopping, a trial whose objective falls below the median of the finished trials at the same
    step is stopped (SageMaker's rule)."""
    pattern = re.compile(metric_regex)
    trials = [Trial(trial_name(tuning_name, i + 1, values), values) for i, values in enumerate(candidates(tune))]
    lock = threading.Lock()
    slots = threading.Semaphore(tune.parallel_jobs)

    def finished_series():
        return [t.series for t in trials if t.status == "Completed" and t.series]

    def on_line(trial, text):
        match = pattern.search(text or "")
        if not match:
            return
        try:
            value = float(match.group(1))
        except (IndexError, ValueError):
            return
        with lock:
            trial.series.append(value)
            stop = (tune.early_stopping == "Auto" and trial.status == "InProgress" and not trial.stopped_early
                    and should_stop(trial.series, finished_series(), tune.objective))
            if stop:
                trial.stopped_early = True
        if stop:
            trial.handle.stop()

    def run(trial):
        try:
            with lock:
                trial.status = "InProgress"
                trial.handle = launch(trial.name, trial.values, lambda text: on_line(trial, text))
            on_change(trial)
            status, failure = trial.handle.wait()
            with lock:
                trial.status, trial.failure = status, failure
            on_change(trial)
        finally:
            slots.release()

    threads = []
    for trial in trials:
        slots.acquire()
        thread = threading.Thread(target=run, args=(trial,), daemon=True, name=f"trial-{trial.name}")
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return trials


def best_trial(trials, objective: str):
    done = [t for t in trials if t.status == "Completed" and t.objective is not None]
    best = None
    for t in done:
        if best is None or better(t.objective, best.objective, objective):
            best = t
    return best


class TrialTable:
    """The live table of trials: one header, then a row whenever a trial starts or ends."""

    def __init__(self, tune, out=None):
        self.out = out if out is not None else sys.stdout
        self.names = [p.name for p in tune.params]
        self.metric = tune.metric
        self.lock = threading.Lock()
        self.header = False

    def row(self, name: str, status: str, objective, values: dict, note: str = "") -> None:
        with self.lock:
            if not self.header:
                self.out.write(f"{'TRIAL':<40} {'STATUS':<10} {self.metric.upper():>10}  "
                               + "  ".join(self.names) + "\n")
                self.header = True
            shown = "-" if objective is None else f"{objective:.6g}"
            self.out.write(f"{name:<40} {status:<10} {shown:>10}  "
                           + "  ".join(f"{n}={values.get(n)}" for n in self.names) + (f"  {note}" if note else "")
                           + "\n")
            self.out.flush()

    def trial(self, trial: Trial) -> None:
        status = "Stopped" if trial.stopped_early and trial.status in ("Stopped", "Completed") else trial.status
        self.row(trial.name, status, trial.objective, trial.values, "(stopped early)" if trial.stopped_early else "")


def summary(trials, tune) -> list:
    counts = {s: sum(1 for t in trials if t.status == s) for s in ("Completed", "Failed", "Stopped")}
    early = sum(1 for t in trials if t.stopped_early)
    lines = [f"trials: {counts['Completed']} completed, {counts['Stopped']} stopped ({early} early), "
             f"{counts['Failed']} failed"]
    best = best_trial(trials, tune.objective)
    if best is not None:
        values = ", ".join(f"{k}={v}" for k, v in best.values.items())
        lines.append(f"best: {best.name} {tune.metric}={best.objective:.6g} ({values})")
    return lines


# -- the launcher's follow of a SageMaker tuning job -------------------------------------------------

def follow_tuning(sm, name: str, tune, out, sleep=time.sleep, fast=5.0, slow=30.0) -> dict:
    """Poll DescribeHyperParameterTuningJob and its trials until the tuning job ends; print a row
    whenever a trial changes. Returns the last description."""
    table = TrialTable(tune, out)
    seen = {}
    interval = fast
    while True:
        desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        changed = False
        for summary_row in list_trials(sm, name):
            key = (summary_row.get("TrainingJobStatus"), (summary_row.get("FinalHyperParameterTuningJobObjectiveMetric")
                                                         or {}).get("Value"))
            if seen.get(summary_row["TrainingJobName"]) != key:
                seen[summary_row["TrainingJobName"]] = key
                changed = True
                table.row(summary_row["TrainingJobName"], summary_row.get("TrainingJobStatus", "?"), key[1],
                          summary_row.get("TunedHyperParameters") or {})
        if desc["HyperParameterTuningJobStatus"] in TERMINAL_TUNING:
            return desc
        interval = fast if changed else min(interval * 1.5, slow)
        sleep(interval)


def list_trials(sm, name: str) -> list:
    rows, kwargs = [], {"HyperParameterTuningJobName": name, "MaxResults": 100}
    while True:
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
        rows += page.get("TrainingJobSummaries", [])
        if not page.get("NextToken"):
            return sorted(rows, key=lambda r: r["TrainingJobName"])
        kwargs["NextToken"] = page["NextToken"]
