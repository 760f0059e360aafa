"""What the runtime refuses is refused at launch (issue 18.7): the entry point's name, and a plain
local run's missing input or dependency folder, each one line before anything happens."""
import pytest
from conftest import run_python, write_script

from aws_train_remote.contract import entry_point_problem

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
SCRIPT = """
    import os
    from aws_train_remote import training_main

    def main(args):
        print("ran", os.path.basename(__file__), sorted(os.listdir(args.train)))

    training_main(main, inputs={"train": "data"}, dependencies={"mylib": "lib/mylib"})
"""


def project(tmp_path, name="train.py"):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    (tmp_path / "lib" / "mylib").mkdir(parents=True)
    (tmp_path / "lib" / "mylib" / "__init__.py").write_text("")
    write_script(tmp_path, SCRIPT, name=name)


@pytest.mark.parametrize("name", ["train.py", "my train.py", "it's (v2).py", "dir/tr$ain.py", "ünï.py"])
def test_names_a_shell_would_mind_are_fine_entry_points(name):
    assert entry_point_problem(name) is None


@pytest.mark.parametrize("name", ["", "-x.py", "/abs.py", "../up.py", "a/./b.py", "a//b.py", "new\nline.py", "tab\t.py"])
def test_names_that_leave_the_folder_or_read_as_options_are_not(name):
    assert entry_point_problem(name)


def test_a_script_with_a_space_runs_as_a_job(tmp_path, sandbox):
    project(tmp_path, "my train.py")
    result = run_python(["my train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE], cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "[algo-1] ran my train.py ['a.txt']" in result.stdout


def test_a_script_the_runtime_would_refuse_is_refused_before_anything_is_created(tmp_path, aws):
    project(tmp_path, "-x.py")
    result = run_python(["--", "-x.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "--sagemaker-script" in result.stderr and "'-'" in result.stderr
    assert not [c for c in aws.calls() if c["op"].startswith(("s3.Put", "s3.Create", "SageMaker.Create"))]


@pytest.mark.parametrize("flag,missing", [("--train", "no-such-data"), ("--mylib", "no/such/lib")])
def test_a_plain_run_with_a_missing_folder_says_so_in_one_line(tmp_path, flag, missing):
    project(tmp_path)
    result = run_python(["train.py", flag, missing], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and flag in result.stderr and missing in result.stderr, result.stderr
    assert "ran" not in result.stdout


def test_a_plain_run_with_its_folders_runs(tmp_path):
    project(tmp_path)
    result = run_python(["train.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ran train.py ['a.txt']" in result.stdout
