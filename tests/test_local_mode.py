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


PLAIN_TWO_HOSTS = """
    import os
    from aws_train_remote import training_main
    def main(args):
        print("plain on", os.environ["SM_CURRENT_HOST"], "RANK" in os.environ)
    if __name__ == "__main__":
        training_main(main)
    """

TORCH_DDP = """
    import os
    from aws_train_remote import training_main
    def main(args):
        import torch, torch.distributed as dist
        dist.init_process_group("gloo")
        t = torch.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(t)
        print("rank", dist.get_rank(), "of", dist.get_world_size(), "sum", t.item(), flush=True)
        dist.destroy_process_group()
    if __name__ == "__main__":
        training_main(main, distribution="torchrun")
    """


def test_two_hosts_by_default_run_one_plain_process_each(tmp_path):
    """Issue 8.2/8.3: no torchrun unless asked (a numpy script failed with "cannot start torchrun")."""
    write_script(tmp_path, PLAIN_TWO_HOSTS)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-instance-count", "2"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[algo-1] plain on algo-1 False" in result.stdout and "[algo-2] plain on algo-2 False" in result.stdout
    assert "note: 2 instances: one plain process per instance" in result.stdout
    assert "--sagemaker-distribution torchrun" in result.stdout


def test_two_torch_ddp_jobs_at_once_without_the_venv_on_path(tmp_path):
    """Issue 8.2: torchrun is found beside the interpreter (PATH lacks it here), and two local jobs
    at once each get their own master port instead of both taking 7777."""
    import subprocess
    import sys

    pytest = __import__("pytest")
    pytest.importorskip("torch", reason="torch==2.13.0 could not be installed (scripts/test.sh installs it)")
    env = dict(os.environ, PYTHONPATH=REPO, PATH="/usr/bin:/bin", OMP_NUM_THREADS="1")
    procs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        write_script(folder, TORCH_DDP)
        procs.append(subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "local",
                                       "--sagemaker-instance-count", "2"], cwd=folder, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, out + err
        assert "rank 0 of 2 sum 3.0" in out and "rank 1 of 2 sum 3.0" in out


def test_inside_the_job_args_sagemaker_are_the_jobs_real_settings(tmp_path):
    """Issue 8.6: an ml.m5.xlarge job used to see args.sagemaker_instance == 'ml.m5.large' (the default)."""
    write_script(tmp_path, """
        import json
        from aws_train_remote import training_main
        def main(args):
            keys = ("instance", "instance_count", "region", "job_name", "spot", "max_run", "distribution", "run")
            print("settings", json.dumps({k: getattr(args, "sagemaker_" + k) for k in keys}))
        if __name__ == "__main__":
            training_main(main, instance="ml.c5.xlarge")
        """)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-instance", "ml.m5.xlarge",
                         "--sagemaker-instance-count", "2", "--sagemaker-job-name", "real-settings-1",
                         "--sagemaker-spot", "--sagemaker-max-run", "2h", "--sagemaker-region", "eu-west-1",
                         "--sagemaker-distribution", "none"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for host in ("algo-1", "algo-2"):
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(f"[{host}] settings "))
        seen = json.loads(line.split("settings ", 1)[1])
        assert seen == {"instance": "ml.m5.xlarge", "instance_count": 2, "region": "eu-west-1",
                        "job_name": "real-settings-1", "spot": True, "max_run": 7200, "distribution": "none",
                        "run": "no"}


def test_two_hosts_one_model_without_duplicates_first_host_wins(tmp_path):
    """Issue 8.7: both hosts wrote model.json; the archive held it twice ("2 files unpacked")."""
    import tarfile

    write_script(tmp_path, """
        import os
        from aws_train_remote import training_main
        def main(args):
            host = os.environ["SM_CURRENT_HOST"]
            with open(os.path.join(args.model_dir, "model.json"), "w") as fh:
                fh.write(host)
            with open(os.path.join(args.model_dir, f"only-{host}.txt"), "w") as fh:
                fh.write(host)
        if __name__ == "__main__":
            training_main(main)
        """)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-instance-count", "2",
                         "--sagemaker-job-name", "two-host-model"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(3 files unpacked into" in result.stdout
    assert (tmp_path / "output" / "model" / "model.json").read_text() == "algo-1"
    archive = next(line.split("model: ", 1)[1].split(" (", 1)[0] for line in result.stdout.splitlines()
                   if line.startswith("model: ") and "unpacked" in line)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names == ["model.json", "only-algo-1.txt", "only-algo-2.txt"]


def test_checkpoint_initial_restore_line_and_fresh_start_in_local_mode(tmp_path):
    """Issue 8.8: --checkpoint-initial was ignored in local mode; restoring says so; a fresh start
    needs no new base job name and loses nothing."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "epoch-0002.json").write_text(json.dumps({"epoch": 2, "weights": [0.0, 0.0, 0.0], "bias": 0.0}))
    first = local("--epochs", "3", "--sagemaker-base-job-name", "ck", "--checkpoint-initial", str(seed), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"checkpoint location seeded with 1 file from {seed}" in first.stdout
    assert "[algo-1] [aws-train-remote] restored 1 checkpoint file into" in first.stdout
    assert "[algo-1] resumed from checkpoint epoch 2" in first.stdout
    again = local("--epochs", "4", "--sagemaker-base-job-name", "ck", cwd=tmp_path)
    assert "[algo-1] [aws-train-remote] restored" in again.stdout and "[algo-1] epoch=1 " not in again.stdout
    fresh = local("--epochs", "2", "--sagemaker-base-job-name", "ck", "--sagemaker-fresh-start", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    moved = next(line for line in fresh.stdout.splitlines() if line.startswith("fresh start: "))
    assert "earlier checkpoint files moved to s3://" in moved and "-archived-" in moved
    assert "[algo-1] epoch=1 " in fresh.stdout and "restored" not in fresh.stdout
    assert int(moved.split()[2]) >= 1


def test_spot_rehearsal_several_interruptions_give_the_same_model_byte_for_byte(tmp_path):
    """Issue 8.9: several interruption times, counted from the script's start; each reported; the
    demo keeps its random state in the checkpoint, so 0, 1 and 3 interruptions end identically."""
    models = {}
    for times in ("", "1", "1,1,1"):
        cwd = tmp_path / (times.replace(",", "-") or "none")
        cwd.mkdir()
        args = ["--epochs", "16", "--sleep", "0.25", "--sagemaker-spot", "--sagemaker-base-job-name",
                f"rehearsal-{cwd.name}"]
        if times:
            args += ["--sagemaker-simulate-interruption", times]
        result = local(*args, cwd=cwd)
        assert result.returncode == 0, result.stdout + result.stderr
        wanted = len(times.split(",")) if times else 0
        assert result.stdout.count("status: Interrupted - Simulated spot interruption") == wanted
        if times:
            assert f"spot rehearsal: {wanted} of {wanted} simulated interruptions happened" in result.stdout
        models[times] = (cwd / "output" / "model" / "model.json").read_bytes()
    assert models[""] == models["1"] == models["1,1,1"]


def test_sharded_input_gives_each_host_its_share(tmp_path):
    """Issue 8.10: --<input>-distribution sharded (ShardedByS3Key): each host gets about 1/N of the
    files, none twice, all of them once; the script's args say sharded."""
    write_script(tmp_path, """
        import os
        from aws_train_remote import training_main
        def main(args):
            print("shard", os.environ["SM_CURRENT_HOST"], args.train_distribution, sorted(os.listdir(args.train)))
        if __name__ == "__main__":
            training_main(main, inputs={"train": "data"})
        """)
    (tmp_path / "data").mkdir()
    for i in range(7):
        (tmp_path / "data" / f"part-{i}.csv").write_text(str(i))
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-instance-count", "3",
                         "--train-distribution", "sharded"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shares = {}
    for line in result.stdout.splitlines():
        if "] shard algo-" in line:
            _, host, spread, files = line.split(" ", 3)[0], line.split()[2], line.split()[3], line.split(" ", 4)[4]
            shares[host] = __import__("ast").literal_eval(files)  # the printed Python list
            assert spread == "sharded"
    assert sorted(shares) == ["algo-1", "algo-2", "algo-3"]
    every = [f for files in shares.values() for f in files]
    assert sorted(every) == [f"part-{i}.csv" for i in range(7)] and all(2 <= len(v) <= 3 for v in shares.values())
    dry = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role",
                      "arn:aws:iam::123456789012:role/R", "--sagemaker-region", "us-east-1",
                      "--train-distribution", "sharded"], cwd=tmp_path)
    channel = next(c for c in json.loads(dry.stdout)["request"]["InputDataConfig"] if c["ChannelName"] == "train")
    assert channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
