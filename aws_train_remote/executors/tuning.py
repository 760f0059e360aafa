"""Hyperparameter tuning: the trials loop that local mode and the sandbox share (trials run on this
machine, the objective parsed from each trial's log, the median stopping rule applied), and the
launcher's side of a SageMaker tuning job: created exactly once (executors/create.py), then
followed (a table of trials, then the best one)."""
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


# -- --sagemaker-tune on SageMaker: create the tuning job (once), then follow it ------------------------

def launch_tuning(spec, environ, session, out, sleep) -> int:
    """--sagemaker-tune: upload what changed, CreateHyperParameterTuningJob (exactly once, or the
    tuning job an interrupted launch of the same request made: create.py), then a table of the
    trials until it ends, the best trial and its model."""
    import dataclasses

    from ..aws.jobs import exit_status, plural
    from ..aws.models import resolve_model_job
    from ..errors import JobFailed
    from ..launches import record_launch
    from ..plan.request import build_request, tuning_request
    from .create import Target, create_once, create_tuning_or_adopt, request_identity, resume_pending
    from .sagemaker import INTERRUPTED_BEFORE_CREATE, download_model, prepare

    sm = session.client("sagemaker")
    spec = resolve_model_job(spec, sm)
    def tuning_for(spec):
        request = build_request(spec, prepared.plan, account=prepared.account, bucket=prepared.bucket,
                                git=prepared.git, role=prepared.role_arn)
        return tuning_request(spec, request, prepared.plan, prepared.bucket)

    try:
        prepared = prepare(spec, session, environ, out, costed=[spec])  # checked as a whole: every trial
        identity = request_identity("tuning", tuning_for(spec),
                                    [spec.tuning_job_name] + ([] if spec.explicit_job_name else [spec.job_name]))
        resumed = resume_pending(session, environ, "tuning", identity, spec.region, out)
    except KeyboardInterrupt:
        print(INTERRUPTED_BEFORE_CREATE, file=sys.stderr)
        raise SystemExit(130) from None
    if resumed:
        spec = dataclasses.replace(spec, tuning_job_name=resumed[0].name, launch_token=resumed[0].token)
    tuning = tuning_for(spec)
    name = tuning["HyperParameterTuningJobName"]
    if not (resumed and resumed[1] is not None):
        target = Target("tuning", name, spec.launch_token, spec.region, identity)
        outcome = create_once(session, sm, target, lambda: create_tuning_or_adopt(sm, tuning, spec.launch_token),
                              environ)
        if outcome.how == "adopted" and not resumed:
            print(f"CreateHyperParameterTuningJob's reply was lost; {name} carries this launch's token, so it is "
                  "this launch's tuning job", file=out)
    record_launch(name, spec.region, environ)
    print(f"tuning job: {name} ({spec.tune.max_jobs} trials, {spec.tune.parallel_jobs} at a time)", file=out)
    if not environ.get("AWS_ENDPOINT_URL"):
        print(f"console: https://{spec.region}.console.aws.amazon.com/sagemaker/home?region={spec.region}"
              f"#/hyper-tuning-jobs/{name}", file=out)
    stop = f"aws sagemaker stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name {name}"
    if not spec.wait:
        print(f"the tuning job runs on; stop it: {stop}", file=out)
        return 0
    try:
        desc = follow_tuning(sm, name, spec.tune, out, sleep)
    except KeyboardInterrupt:
        print(f"\ndetached from {name}; it runs on. Stop it: {stop}", file=sys.stderr)
        raise SystemExit(130) from None
    status = desc["HyperParameterTuningJobStatus"]
    counters = desc.get("TrainingJobStatusCounters") or {}
    print(f"{status}: {name}, " + ", ".join(f"{plural(v, 'trial')} {k}" for k, v in counters.items() if v), file=out)
    from .cost import print_trials_cost
    from .notify import ring

    print_trials_cost(sm, name, session, environ, spec.region, out)
    ring(name, status, out)
    best = desc.get("BestTrainingJob") or {}
    if not best.get("TrainingJobName"):
        raise JobFailed(f"tuning job {name} ended {status} without a best trial"
                        + (f": {desc['FailureReason']}" if desc.get("FailureReason") else ""),
                        exit_code=exit_status(status) if status != "Completed" else 1)
    metric = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    values = ", ".join(f"{k}={v}" for k, v in (best.get("TunedHyperParameters") or {}).items())
    print(f"best: {best['TrainingJobName']} {metric.get('MetricName')}={metric.get('Value')} ({values})", file=out)
    trial = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    model = (trial.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if model:
        print(f"model: {model}", file=out)
    if spec.download and model:
        count = download_model(session.client("s3"), trial, spec.model_dir)
        print(f"model: {plural(count, 'file')} unpacked into {spec.model_dir}", file=out)
    return exit_status(status)
