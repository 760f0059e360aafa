"""Issue 9.5 and 9.6: a script written as aws-sagemaker-remote's documentation (seed 004) shows it,
run with every one of its old training flags: locally, in local mode and through the sandbox;
the old flags we cannot honour are refused in one line; definition-time mistakes are one line."""
import json
import os

import boto3
from conftest import run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/DemoRole"

SEED_004_SCRIPT = """
    import json
    import os
    from argparse import ArgumentParser

    from aws_train_remote import sagemaker_training_main


    def argparse_callback(parser: ArgumentParser):
        parser.add_argument('--filter-height', default=32, help='Filter height')


    def main(args):
        from my_module.myfile import myfunction

        source = args.input
        files = sorted(os.listdir(source)) if os.path.isdir(source) else [os.path.basename(source)]
        os.makedirs(args.model_dir, exist_ok=True)
        with open(os.path.join(args.model_dir, "model.json"), "w") as fh:
            json.dump({"files": files, "width": args.filter_width, "height": args.filter_height,
                       "depth": args.filter_depth, "helper": myfunction()}, fh)
        print(f"files={files} width={args.filter_width} depth={args.filter_depth} helper={myfunction()}")
        print(f"loss=0.25")


    if __name__ == '__main__':
        sagemaker_training_main(
            main=main,
            inputs={'input': 'data'},
            dependencies={'my_module': 'lib/my_module'},
            additional_arguments=[
                {'dest': '--filter-width', 'default': 32, 'type': int, 'help': 'Filter width'},
                (['--filter-depth'], {'default': 3, 'type': int, 'help': 'Filter depth'}),
            ],
            argparse_callback=argparse_callback,
            metrics={'loss': 'loss=([0-9.]+)'},
            training_instance='ml.m5.large',
            output_json=None,
            experiment_name=None,
            enable_sagemaker=True,
            workers=2,
        )
"""


def project(tmp_path):
    write_script(tmp_path, SEED_004_SCRIPT)
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "a.txt").write_text("a\n")
    (tmp_path / "data" / "b.txt").write_text("b\n")
    package = tmp_path / "lib" / "my_module"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "myfile.py").write_text("def myfunction():\n    return 'helped'\n")
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "step-1.json").write_text("{}")
    return tmp_path


OLD_FLAGS = [
    "--sagemaker-wait", "yes", "--sagemaker-spot-instances", "yes", "--sagemaker-script", "train.py",
    "--sagemaker-source", ".", "--sagemaker-training-instance", "ml.m5.large",
    "--sagemaker-training-role", ROLE, "--sagemaker-base-job-name", "seed-style",
    "--sagemaker-volume-size", "20", "--sagemaker-max-run", "3600", "--sagemaker-max-wait", "7200",
    "--sagemaker-output-json", "out/job.json", "--sagemaker-checkpoint-s3", "default",
    "--sagemaker-checkpoint-container", "/opt/ml/checkpoints", "--checkpoint-initial", "seed",
    "--sagemaker-experiment-name", "seed-experiment", "--sagemaker-trial-name", "seed-trial",
    "--input", "data", "--input-mode", "File", "--input-suffix", "sub", "--input-repeat", "1",
    "--input-shuffle", "no", "--my-module", "lib/my_module", "--model-dir", "out/model",
    "--output-dir", "out/output", "--checkpoint-dir", "out/checkpoints", "--filter-width", "7",
]


def test_seed_004_script_runs_locally_with_its_old_flags(tmp_path):
    root = project(tmp_path)
    result = run_python(["train.py", "--sagemaker-run", "no", "--sagemaker-profile", "nobody", *OLD_FLAGS],
                        cwd=root)
    assert result.returncode == 0, result.stderr
    # locally the input and the suffix are used as given (aws-sagemaker-remote's meaning)
    assert "files=['b.txt', 'sub'] width=7 depth=3 helper=helped" in result.stdout


def test_seed_004_script_in_local_mode_and_the_suffix_points_inside_the_input(tmp_path):
    root = project(tmp_path)
    flags = [f for f in OLD_FLAGS]
    for name in ("--sagemaker-spot-instances", "--sagemaker-max-wait", "--sagemaker-experiment-name",
                 "--sagemaker-trial-name", "--sagemaker-output-json"):
        i = flags.index(name)
        del flags[i:i + 2]
    result = run_python(["train.py", "--sagemaker-run", "local", *flags, "--filter-depth", "5"], cwd=root,
                        timeout=240)
    assert result.returncode == 0, result.stderr
    assert "files=['a.txt'] width=7 depth=5 helper=helped" in result.stdout
    assert json.loads((root / "out" / "model" / "model.json").read_text())["files"] == ["a.txt"]


def test_seed_004_script_through_the_sandbox_with_every_old_flag(tmp_path, sandbox):
    root = project(tmp_path)
    result = run_python(["train.py", "--sagemaker-run", "yes", *OLD_FLAGS], cwd=root, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "files=['a.txt'] width=7 depth=3 helper=helped" in result.stdout
    described = json.loads((root / "out" / "job.json").read_text())
    assert described["TrainingJobStatus"] == "Completed" and described["TrainingJobName"].startswith("seed-style-")
    [request] = [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert request["ExperimentConfig"] == {"ExperimentName": "seed-experiment", "TrialName": "seed-trial"}
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [{"Name": "loss", "Regex": "loss=([0-9.]+)"}]
    assert request["EnableManagedSpotTraining"] is True and request["ResourceConfig"]["VolumeSizeInGB"] == 20
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["CheckpointConfig"]["S3Uri"].endswith("/checkpoints/seed-style/")
    sm = boto3.client("sagemaker", region_name="us-east-1")
    assert sm.describe_trial(TrialName="seed-trial")["ExperimentName"] == "seed-experiment"
    s3 = boto3.client("s3", region_name="us-east-1")
    seeded = s3.list_objects_v2(Bucket="sagemaker-us-east-1-123456789012",
                                Prefix="aws-train-remote/checkpoints/seed-style/")["Contents"]
    assert any(o["Key"].endswith("step-1.json") for o in seeded)


def test_old_flags_we_cannot_honour_are_refused_in_one_line(tmp_path):
    root = project(tmp_path)
    for flags, expected in (
            (["--sagemaker-training-image-path", "docker/"], "--sagemaker-image URI"),
            (["--sagemaker-training-image-accounts", "123456789012"], "--sagemaker-image URI"),
            (["--input-repeat", "3"], "loop over the data in the script"),
            (["--input-shuffle", "yes"], "shuffle in the script's data loader"),
            (["--sagemaker-trial-name", "t1"], "add --sagemaker-experiment-name"),
    ):
        result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                             "--sagemaker-region", "us-east-1", *flags], cwd=root)
        assert result.returncode == 2, (flags, result.stderr)
        assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr


def test_enable_sagemaker_false_keeps_only_the_local_flags(tmp_path):
    write_script(tmp_path, """
        from aws_train_remote import sagemaker_training_main
        def main(args):
            print("ran", args.model_dir)
        sagemaker_training_main(main=main, enable_sagemaker=False)
        """)
    assert run_python(["train.py", "--model-dir", "m"], cwd=tmp_path).stdout.strip() == "ran m"
    refused = run_python(["train.py", "--sagemaker-run", "yes"], cwd=tmp_path)
    assert refused.returncode == 2 and "unrecognized argument" in refused.stderr


def test_definition_mistakes_are_one_line(tmp_path):
    cases = {
        "def main():\n    pass\ntraining_main(main)\n": "main() must take one argument, the parsed args",
        "def main(args):\n    pass\ntraining_main(main, inputs={'my data': 'x'})\n": "input name 'my data'",
        "def main(args):\n    pass\ntraining_main(main, inputs={'train-set': 'x'})\n": "input name 'train-set'",
        "def main(args):\n    pass\ntraining_main(main, additional_arguments=['--lr'])\n": "additional_arguments",
    }
    for body, expected in cases.items():
        (tmp_path / "train.py").write_text("from aws_train_remote import training_main\n" + body)
        result = run_python(["train.py"], cwd=tmp_path)
        assert result.returncode == 2, (body, result.stderr)
        assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr


def test_a_notebook_cell_runs_main_locally_and_refuses_to_launch(tmp_path):
    """Issue 9.6: under ipykernel argv is the kernel's (-f kernel.json) and main has no file."""
    program = """
import sys, types
sys.modules["ipykernel"] = types.ModuleType("ipykernel")  # what a Jupyter kernel has loaded
sys.argv = ["/usr/lib/python3/site-packages/ipykernel_launcher.py", "-f", "/tmp/kernel-1.json"]
from aws_train_remote import training_main
def main(args):
    print("ran locally", args.model_dir)
training_main(main)
training_main(main, argv=["--sagemaker-run", "yes", "--sagemaker-role", "r"])
"""
    result = run_python(["-c", program], cwd=tmp_path)
    assert "ran locally output/model" in result.stdout, result.stderr
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "a job cannot be launched from a notebook cell" in result.stderr and "%%writefile" in result.stderr
    assert not os.path.exists(tmp_path / "notebook.py")
