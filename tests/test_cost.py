"""Issue 20, what a job costs: on-demand prices from the Price List Query API only (parsed from the
answer's own format, as the sandbox gives it), kept a day on disk; the worst case of a launch
(count x price x max run; trials, groups, instance lists); the budget's one-line refusal; what an
ended job cost (billable seconds x instances x price, spot beside its on-demand equivalent)."""
import json
import os
from types import SimpleNamespace

import pytest
from conftest import REPO, run_python

from aws_train_remote.aws.pricing import Price, PriceCache, parse_price_list, product_filters
from aws_train_remote.executors.cost import PriceBook, budget_refusal, job_cost, trials_cost_line, usd, worst_case
from aws_train_remote.sandbox_events import SANDBOX_PRICES, product

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")


def prices(table):
    return lambda kind, region: Price(table[kind], source="test") if kind in table else Price(None, "not sold here")


def spec(**over):
    base = dict(region="us-east-1", instance_type="ml.g5.xlarge", instance_count=1, instance_fallbacks=(),
                instance_preferences=(), instance_groups=(), max_run=3600, keep_alive=0, spot=False, tune=None,
                budget=None, budget_unknown_ok=False, training_plan=None)
    return SimpleNamespace(**{**base, **over})


def test_the_price_list_format_is_parsed_and_checked_against_what_was_asked():
    item = product("ml.g5.xlarge", "eu-west-1", 1.5)
    assert parse_price_list([item], "ml.g5.xlarge", "eu-west-1").usd == 1.5
    assert "SKU SANDBOX" in parse_price_list([item], "ml.g5.xlarge", "eu-west-1").source
    # a product of another region or type, or a spot product, is never taken for the one asked for
    assert parse_price_list([item], "ml.g5.xlarge", "us-east-1").usd is None
    assert parse_price_list([item], "ml.g6.xlarge", "eu-west-1").usd is None
    spot = json.loads(item)
    spot["product"]["attributes"]["platoinstancetype"] = "SpotTraining"
    assert parse_price_list([json.dumps(spot)], "ml.g5.xlarge", "eu-west-1").usd is None
    empty = parse_price_list([], "ml.g5.xlarge", "eu-west-1")
    assert empty.usd is None and "no on-demand training price for ml.g5.xlarge in eu-west-1" in empty.why
    dearer = json.loads(product("ml.g5.xlarge", "eu-west-1", 2.0))
    assert parse_price_list([item, dearer], "ml.g5.xlarge", "eu-west-1").usd == 2.0  # a worst case: the higher
    assert {f["Field"] for f in product_filters("ml.g5.xlarge", "eu-west-1")} == {
        "productFamily", "regionCode", "instanceName", "platoinstancetype"}


def test_prices_come_from_get_products_once_and_are_kept_a_day(aws, tmp_path):
    from aws_train_remote.aws.session import AwsSession

    environ = {**os.environ, "AWS_TRAIN_REMOTE_CACHE_DIR": str(tmp_path)}
    book = PriceBook(AwsSession(region="eu-west-1"), environ)
    assert book("ml.m5.large", "eu-west-1").usd == SANDBOX_PRICES["ml.m5.large"]
    assert book("ml.m5.large", "eu-west-1").usd == SANDBOX_PRICES["ml.m5.large"]
    calls = [c for c in aws.calls() if c["op"] == "AWSPriceListService.GetProducts"]
    assert len(calls) == 1
    again = PriceBook(AwsSession(region="eu-west-1"), environ)("ml.m5.large", "eu-west-1")  # from disk
    assert again.usd == SANDBOX_PRICES["ml.m5.large"] and "fetched" in again.source
    assert len([c for c in aws.calls() if c["op"] == "AWSPriceListService.GetProducts"]) == 1
    day_later = PriceCache(environ, clock=lambda: __import__("time").time() + 86401)
    assert day_later.get("ml.m5.large", "eu-west-1") is None
    other = PriceCache({**environ, "AWS_ENDPOINT_URL": "http://elsewhere"})  # the sandbox's figures are its own
    assert other.get("ml.m5.large", "eu-west-1") is None


def test_no_pricing_permission_is_one_line_once_and_the_price_unknown(aws, tmp_path):
    from aws_train_remote.aws.session import AwsSession

    aws.inject("AWSPriceListService.GetProducts", status=400, code="AccessDeniedException", times=5)
    said = []
    book = PriceBook(AwsSession(region="us-east-1"), {**os.environ, "AWS_TRAIN_REMOTE_CACHE_DIR": str(tmp_path)},
                     warn=said.append)
    first, second = book("ml.m5.large", "us-east-1"), book("ml.g5.xlarge", "us-east-1")
    assert first.usd is None and second.usd is None and "pricing:GetProducts" in first.why
    assert len(said) == 1 and "pricing:GetProducts" in said[0]
    assert len([c for c in aws.calls() if c["op"] == "AWSPriceListService.GetProducts"]) == 1


def test_the_worst_case_of_each_kind_of_launch():
    table = prices({"ml.g5.xlarge": 1.0, "ml.c5.xlarge": 0.2, "ml.p4d.24xlarge": 30.0})
    assert worst_case(spec(instance_count=4, max_run=7200), table).usd == pytest.approx(8.0)
    groups = worst_case(spec(instance_groups=(("gpu", "ml.g5.xlarge", 2), ("cpu", "ml.c5.xlarge", 5))), table)
    assert groups.usd == pytest.approx(3.0) and "(gpu 2 x ml.g5.xlarge" in groups.lines()[0]
    listed = worst_case(spec(instance_fallbacks=(("ml.p4d.24xlarge", "img"),)), table)
    assert listed.usd == pytest.approx(30.0) and listed.choices[0] == "ml.p4d.24xlarge"
    preferred = worst_case(spec(instance_count=2, instance_preferences=(("ml.g5.xlarge", 2), ("ml.c5.xlarge", 9))),
                           table)  # an on-demand list SageMaker chooses from, each type with its count
    assert preferred.usd == pytest.approx(2.0) and preferred.choices == ("ml.g5.xlarge", "ml.c5.xlarge")
    tune = SimpleNamespace(max_jobs=10, parallel_jobs=4)
    tuned = worst_case(spec(tune=tune, max_run=1800), table)
    assert tuned.usd == pytest.approx(5.0)  # parallelism shortens the wall time, not the bill
    assert any("wall time up to 1.5 h (4 trials at a time)" in line for line in tuned.lines())
    spot = worst_case(spec(spot=True, keep_alive=1800), table)
    assert spot.usd == pytest.approx(1.5) and any(line.strip().startswith("spot:") for line in spot.lines())
    unknown = worst_case(spec(instance_type="ml.zz.large"), table)
    assert unknown.usd is None and "not sold here" in unknown.lines()[0] and "1 instance-hours" in unknown.lines()[0]
    record = tuned.record()
    assert record["worst_case_usd"] == 5.0 and record["jobs"] == 10 and record["instances"][0]["usd_per_hour"] == 1.0


def test_the_budget_refuses_in_one_line_naming_the_figures_and_what_to_lower():
    table = prices({"ml.g5.xlarge": 1.0})
    tune = SimpleNamespace(max_jobs=50, parallel_jobs=5)
    over = spec(tune=tune, instance_count=2, max_run=86400, budget=100.0)
    refusal = budget_refusal(over, worst_case(over, table))
    assert str(refusal).startswith("--sagemaker-budget=$100.00: the worst case is $2,400.00 (50 trials x 2 x "
                                   "ml.g5.xlarge at $1/h for up to 24 h)")
    for lower in ("--sagemaker-max-run (24 h)", "--sagemaker-instance-count (2)", "the trials (max_jobs: 50)"):
        assert lower in str(refusal)
    assert "\n" not in str(refusal) and refusal.exit_code == 2
    assert budget_refusal(spec(budget=1.0), worst_case(spec(budget=1.0), table)) is None  # exactly $1
    unknown = spec(instance_type="ml.zz.large", budget=10.0)
    assert "--sagemaker-budget-unknown-ok" in str(budget_refusal(unknown, worst_case(unknown, table)))
    allowed = spec(instance_type="ml.zz.large", budget=10.0, budget_unknown_ok=True)
    assert budget_refusal(allowed, worst_case(allowed, table)) is None


def test_what_an_ended_job_cost():
    table = prices({"ml.g5.xlarge": 1.0, "ml.c5.xlarge": 0.2})
    desc = {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/j", "ResourceConfig": {
        "InstanceType": "ml.g5.xlarge", "InstanceCount": 3}, "BillableTimeInSeconds": 1200}
    assert job_cost(desc, table, "us-east-1").usd == pytest.approx(1.0)
    spot = job_cost({**desc, "EnableManagedSpotTraining": True, "TrainingTimeInSeconds": 3600}, table, "us-east-1")
    assert spot.usd == pytest.approx(1.0) and spot.on_demand_usd == pytest.approx(3.0)
    assert spot.line() == "cost: $1.00 (3 x ml.g5.xlarge at $1/h x 1200 s billable); $3.00 on demand"
    groups = {"ResourceConfig": {"InstanceGroups": [
        {"InstanceGroupName": "gpu", "InstanceType": "ml.g5.xlarge", "InstanceCount": 1},
        {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 5}]}, "BillableTimeInSeconds": 3600}
    assert job_cost(groups, table, "us-east-1").usd == pytest.approx(2.0)
    running = job_cost({**desc, "BillableTimeInSeconds": None}, table, "us-east-1")
    assert running.usd is None and "not reported the billable time" in running.line()
    line = trials_cost_line([job_cost(desc, table, "us-east-1")] * 3)
    assert line == "cost: $3.00 for 3 trials"
    assert usd(0.00003) == "<$0.0001" and usd(0.0042) == "$0.0042" and usd(1234.5) == "$1,234.50"


@pytest.mark.parametrize("argv, line", [
    (["--sagemaker-budget", "lots"], "--sagemaker-budget=lots: not an amount of US dollars above zero"),
    (["--sagemaker-budget", "0"], "--sagemaker-budget=0: not an amount of US dollars above zero"),
    (["--sagemaker-budget-unknown-ok"], "--sagemaker-budget-unknown-ok=yes: says what a budget does"),
])
def test_bad_budget_flags_are_one_line(tmp_path, argv, line):
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", *argv], cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and line in result.stderr, result.stderr


def test_dry_run_of_the_demo_shows_an_estimate_offline_and_priced(tmp_path, aws):
    """Offline (nothing cached, no AWS call): the instance-hours and why the price is unknown; once
    `aws-train-remote price` looked it up, dollars, and the budget's verdict."""
    args = [DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
            "--sagemaker-region", "us-east-1", "--sagemaker-max-run", "2h", "--sagemaker-budget", "$1"]
    offline = run_python(args, cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    estimate = json.loads(offline.stdout)["estimate"]
    assert estimate["worst_case_usd"] is None and estimate["instance_hours"] == 2
    assert "a dry run makes no AWS call" in estimate["price_unknown"] and estimate["budget_refuses"] is True
    assert aws.calls() == []
    looked_up = run_python(["-m", "aws_train_remote.cli.main", "price", "ml.m5.large", "--region", "us-east-1"],
                           cwd=tmp_path)
    assert looked_up.returncode == 0 and "ml.m5.large in us-east-1: $0.1/h on demand" in looked_up.stdout
    priced = run_python(args, cwd=tmp_path)
    doc = json.loads(priced.stdout)
    assert doc["estimate"]["worst_case_usd"] == 0.2 and doc["estimate"]["budget_refuses"] is False
    assert "estimate: at most $0.20 on demand: 1 x ml.m5.large at $0.1/h for up to 2 h" in doc["notes"]
