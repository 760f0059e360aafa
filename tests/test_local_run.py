"""--sagemaker-run no: main(args) runs here, unchanged, with no AWS import."""
import json
import os

from conftest import REPO, run_python, write_script

SCRIPT = """
import json, sys
from aws_train_remote import training_main

def main(args):
    heavy = sorted(m for m in ("boto3", "botocore", "yaml", "smart_open", "sagemaker") if m in sys.modules)
    print(json.dumps({"train": args.train, "epochs": args.epochs, "model_dir": args.model_dir,
                      "heavy": heavy, "dep": __import__("mylib").VALUE}))
    return 0

if __name__ == "__main__":
    training_main(main, inputs={"train": "data"}, dependencies={"mylib": "libs/mylib"},
                  additional_arguments=[{"dest": "--epochs", "type": int, "default": 2}])
"""


def make_project(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "libs" / "mylib").mkdir(parents=True)
    (tmp_path / "libs" / "mylib" / "__init__.py").write_text("VALUE = 'from mylib'\n")


def test_local_run_calls_main_with_local_paths_and_no_heavy_imports(tmp_path):
    make_project(tmp_path)
    result = run_python(["train.py", "--epochs", "4", "--model-dir", "out/m"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload == {"train": "data", "epochs": 4, "model_dir": "out/m", "heavy": [], "dep": "from mylib"}
    for folder in ("out/m", "output/data", "output/checkpoints"):
        assert (tmp_path / folder).is_dir()


def test_import_alone_loads_nothing_heavy(tmp_path):
    code = ("import sys, aws_train_remote; "
            "print(sorted(m for m in ('boto3','botocore','yaml','smart_open','sagemaker','argparse') if m in sys.modules))")
    result = run_python(["-c", code], cwd=tmp_path)
    assert result.stdout.strip() == "[]", result.stderr


def test_config_file_needs_yaml_but_still_no_boto3(tmp_path):
    make_project(tmp_path)
    (tmp_path / "aws-train-remote.yaml").write_text("instance: ml.g5.xlarge\n")
    result = run_python(["train.py"], cwd=tmp_path)
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["heavy"] == ["yaml"]


def test_decorator_form_shares_the_implementation(tmp_path):
    write_script(tmp_path, """
        from aws_train_remote import training_job

        @training_job(inputs={"train": "d"}, additional_arguments=[{"dest": "--lr", "type": float, "default": 0.1}])
        def main(args):
            print(args.train, args.lr, args.sagemaker_instance)

        if __name__ == "__main__":
            main()
        """)
    (tmp_path / "d").mkdir()  # a plain run checks its input folders exist (one line otherwise)
    result = run_python(["train.py", "--lr", "0.5", "--sagemaker-instance", "ml.c5.xlarge"], cwd=tmp_path)
    assert result.stdout.split() == ["d", "0.5", "ml.c5.xlarge"], result.stderr


def test_old_entry_point_name_works(tmp_path):
    write_script(tmp_path, """
        from aws_train_remote import sagemaker_training_main
        def main(args):
            print("ran", args.input)
        sagemaker_training_main(main=main, inputs={"input": "x"}, training_instance="ml.c5.xlarge")
        """)
    (tmp_path / "x").mkdir()
    result = run_python(["train.py"], cwd=tmp_path)
    assert result.stdout.strip() == "ran x", result.stderr


def test_help_shows_common_flags_and_help_all_every_group(tmp_path):
    make_project(tmp_path)
    result = run_python(["train.py", "--help"], cwd=tmp_path)
    assert result.returncode == 0
    assert "--epochs" in result.stdout and "--sagemaker-spot" in result.stdout
    assert "aws-train-remote: storage" not in result.stdout and "--sagemaker-kms-key" not in result.stdout
    full = run_python(["train.py", "--help-all"], cwd=tmp_path)
    assert full.returncode == 0 and "aws-train-remote: storage" in full.stdout and "--sagemaker-kms-key" in full.stdout
    assert "--epochs" in full.stdout


def test_demo_trains_checkpoints_and_resumes(tmp_path):
    demo = os.path.join(REPO, "demo", "train.py")
    dirs = ["--model-dir", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "c"),
            "--output-dir", str(tmp_path / "o")]
    first = run_python([demo, "--epochs", "2", *dirs], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(os.listdir(tmp_path / "c")) == ["epoch-0001.json", "epoch-0002.json"]
    second = run_python([demo, "--epochs", "3", *dirs], cwd=tmp_path)
    assert "resumed from checkpoint epoch 2" in second.stdout
    assert "epoch=1 " not in second.stdout and "epoch=3 " in second.stdout
    model = json.loads((tmp_path / "m" / "model.json").read_text())
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert len(model["weights"]) == 3 and metrics["accuracy"] > 0.85
