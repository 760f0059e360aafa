"""--sagemaker-run local: the same request executed here through the container contract,
with no AWS call (no endpoint is even reachable) and no role or region needed."""
import json
import os

from conftest import REPO, run_python, write_script

DEMO = os.path.join(REPO, "demo", "train.py")


def local(*args, cwd):
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # any AWS call would fail
    return run_python([DEMO, "--sagemaker-run", "local", *args], cwd=cwd, env=env, timeout=240)


def test_local_job_runs_unpacks_model_and_resumes(tmp_path):
    first = local("--epochs", "2", "--sagemaker-base-job-name", "demo-local", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "[algo-1] epoch=2 " in first.stdout and "Completed: demo-local-" in first.stdout
    assert json.loads((tmp_path / "output" / "model" / "model.json").read_text())["weights"]
    second = local("--epochs", "3", "--sagemaker-base-job-name", "demo-local", cwd=tmp_path)
    assert "[algo-1] resumed from checkpoint epoch 2" in second.stdout
    assert "[algo-1] epoch=1 " not in second.stdout


def test_local_job_sees_the_container_contract(tmp_path):
    write_script(tmp_path, """
        import os
        from aws_train_remote import training_main
        def main(args):
            channel = os.environ["SM_CHANNEL_TRAIN"]
            print("train", args.train == os.path.join(channel, "data.csv"), os.listdir(channel))
            print("hosts", os.environ["SM_HOSTS"], os.environ["SM_CURRENT_HOST"])
        if __name__ == "__main__":
            training_main(main, inputs={"train": "data.csv"})
        """)
    (tmp_path / "data.csv").write_text("a,b\n")
    result = run_python(["train.py", "--sagemaker-run", "local", "--train", "data.csv",
                         "--sagemaker-instance-count", "2", "--sagemaker-distribution", "none"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[algo-1] train True ['data.csv']" in result.stdout  # a single-file input: the flag names the file
    assert '[algo-2] hosts ["algo-1","algo-2"] algo-2' in result.stdout


def test_local_job_failure_exit_status(tmp_path):
    write_script(tmp_path, """
        from aws_train_remote import training_main
        def main(args):
            raise RuntimeError("boom in local mode")
        if __name__ == "__main__":
            training_main(main)
        """)
    result = run_python(["train.py", "--sagemaker-run", "local"], cwd=tmp_path)
    assert result.returncode == 1
    assert "ended Failed: AlgorithmError: RuntimeError: boom in local mode" in result.stderr


def test_simulated_spot_interruption_resumes_from_the_checkpoint(tmp_path):
    result = local("--epochs", "8", "--sleep", "0.3", "--sagemaker-spot", "--sagemaker-simulate-interruption", "1",
                   "--sagemaker-base-job-name", "spot-sim", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status: Interrupted - Simulated spot interruption" in out
    stopped = next(line for line in out.splitlines() if "stopping after epoch" in line)
    epoch = int(stopped.split("stopping after epoch ")[1].split(";")[0])
    assert f"[algo-1] resumed from checkpoint epoch {epoch}" in out
    assert "[algo-1] epoch=8 " in out and "Completed: spot-sim-" in out
