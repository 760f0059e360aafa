"""Links in the checkpoint, model and output folders (issue 18.2) and checkpoint sync as real
trainers use it (issue 18.11 a, b). One rule in every mode: a link that stays inside its folder
stays a link (a copy where the storage holds no links: the checkpoint location); a link that
leaves it is replaced by what it points at before the folder leaves the machine; a dangling link
is skipped with one line naming it; files that vanish or change during a sync are normal."""
import os
import tarfile
import threading
import time

import pytest
from conftest import run_python, write_script

from aws_train_remote.runtime import links

LOCAL_ENV = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # any AWS call would fail

# A trainer's habits in one script: a folder link `latest` re-pointed every step (replaced the way
# Lightning replaces last.ckpt: whatever is there is removed first, a restored copy included), a
# link that dangles, and a model folder holding links inside it, to a file outside it (a tokenizer
# in a cache) and to a folder outside it.
LINKED_FOLDERS = """
    import json, os, shutil, signal, time
    from aws_train_remote import training_main

    def relink(target, link):
        if os.path.islink(link) or os.path.isfile(link):
            os.remove(link)
        elif os.path.isdir(link):
            shutil.rmtree(link)
        os.symlink(target, link)

    def main(args):
        ck = args.checkpoint_dir
        latest = os.path.join(ck, "latest")
        step = 0
        if os.path.isdir(latest):
            with open(os.path.join(latest, "state.json")) as fh:
                step = json.load(fh)["step"]
            print("resumed at step", step, flush=True)
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        relink("gone.ckpt", os.path.join(ck, "broken"))
        while step < args.steps and not stop:
            step += 1
            os.makedirs(os.path.join(ck, f"step-{step}"))
            with open(os.path.join(ck, f"step-{step}", "state.json"), "w") as fh:
                json.dump({"step": step}, fh)
            relink(f"step-{step}", latest)
            if step > 2:
                shutil.rmtree(os.path.join(ck, f"step-{step - 2}"))
            time.sleep(args.pause)
        if stop:
            print("stopping at step", step, flush=True)
            return
        cache = os.path.join(os.path.dirname(os.path.abspath(args.model_dir)), "hf-cache")
        os.makedirs(os.path.join(cache, "tok"), exist_ok=True)
        with open(os.path.join(cache, "tokenizer.json"), "w") as fh:
            fh.write('{"vocab": 3}')
        with open(os.path.join(cache, "tok", "merges.txt"), "w") as fh:
            fh.write("a b")
        with open(os.path.join(args.model_dir, "weights.bin"), "w") as fh:
            fh.write(f"weights at step {step}")
        os.symlink("weights.bin", os.path.join(args.model_dir, "best.bin"))
        os.symlink(os.path.join(cache, "tokenizer.json"), os.path.join(args.model_dir, "tokenizer.json"))
        os.symlink(os.path.join(cache, "tok"), os.path.join(args.model_dir, "tok"))
        os.symlink("nowhere.bin", os.path.join(args.model_dir, "dangling.bin"))
        print("finished at step", step, flush=True)

    if __name__ == "__main__":
        training_main(main, additional_arguments=[{"dest": "--steps", "type": int, "default": 6},
                                                  {"dest": "--pause", "type": float, "default": 0.0}])
    """


def test_local_mode_keeps_a_folder_link_resumes_skips_a_dangling_link_and_packs_links_leaving_the_model(tmp_path):
    """Before: the folder link `latest` was dropped at sync (the resumed run started fresh), the
    dangling link raised FileNotFoundError in scan_changes after the script succeeded, and the
    model's link to a tokenizer outside it raised UnsafeArchive."""
    write_script(tmp_path, LINKED_FOLDERS)
    result = run_python(["train.py", "--sagemaker-run", "local", "--steps", "12", "--pause", "0.25",
                         "--sagemaker-simulate-interruption", "2", "--sagemaker-job-name", "links-1"],
                        cwd=tmp_path, env=LOCAL_ENV, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    stopped = int(out.split("[algo-1] stopping at step ")[1].split()[0])
    assert stopped >= 1 and f"[algo-1] resumed at step {stopped}" in out
    assert "[algo-1] finished at step 12" in out and "Traceback" not in out
    assert out.count("skipped dangling link broken -> gone.ckpt") == 2  # once per attempt, at its end
    assert "skipped dangling link dangling.bin -> nowhere.bin" in out
    model = tmp_path / "output" / "model"
    assert sorted(os.listdir(model)) == ["best.bin", "tok", "tokenizer.json", "weights.bin"]
    assert os.readlink(model / "best.bin") == "weights.bin"  # inside: still a link
    assert (model / "best.bin").read_text() == "weights at step 12"
    assert not os.path.islink(model / "tokenizer.json") and (model / "tokenizer.json").read_text() == '{"vocab": 3}'
    assert not os.path.islink(model / "tok") and (model / "tok" / "merges.txt").read_text() == "a b"


# Each host writes its own per-rank state (transformers' rng_state_<rank>.pth, accelerate's
# random_states_<rank>.pkl); algo-1 also writes the shared state. Resumed, every host must find
# its own file again.
PER_HOST = """
    import json, os, signal, time
    from aws_train_remote import training_main

    def main(args):
        host = os.environ["SM_CURRENT_HOST"]
        mine = os.path.join(args.checkpoint_dir, f"rng_state_{host}.json")
        if os.path.exists(os.path.join(args.checkpoint_dir, "trainer_state.json")):
            with open(mine) as fh:
                print(host, "restored its own state at step", json.load(fh)["step"], flush=True)
            print(host, "sees", sorted(os.listdir(args.checkpoint_dir)), flush=True)
            return
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        step = 0
        while not stop:
            step += 1
            with open(mine, "w") as fh:
                json.dump({"step": step}, fh)
            if host == "algo-1":
                with open(os.path.join(args.checkpoint_dir, "trainer_state.json"), "w") as fh:
                    json.dump({"step": step}, fh)
            time.sleep(0.1)

    if __name__ == "__main__":
        training_main(main)
    """


def test_every_hosts_checkpoint_folder_reaches_the_location_and_comes_back_to_every_host(tmp_path):
    """Issue 18.11b: only algo-1's folder was synced, so algo-2's per-rank files were lost."""
    write_script(tmp_path, PER_HOST)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-instance-count", "2",
                         "--sagemaker-distribution", "none", "--sagemaker-simulate-interruption", "1",
                         "--sagemaker-job-name", "per-host-1"], cwd=tmp_path, env=LOCAL_ENV, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    both = "['rng_state_algo-1.json', 'rng_state_algo-2.json', 'trainer_state.json']"
    for host in ("algo-1", "algo-2"):
        assert f"[{host}] {host} restored its own state at step " in out
        assert f"[{host}] {host} sees {both}" in out
    location = [os.path.join(d, n) for d, _, names in os.walk(tmp_path / "home") for n in names
                if "local-s3" in d and "checkpoints" in d]
    assert sorted(os.path.basename(p) for p in location) == ["rng_state_algo-1.json", "rng_state_algo-2.json",
                                                              "trainer_state.json"], location


# --- the rule, unit by unit -------------------------------------------------------------------

def trainer_folder(root, outside):
    """Every link shape a trainer leaves, in `root`; `outside` is a cache beside it."""
    os.makedirs(root / "step-3")
    (root / "step-3" / "state.json").write_text('{"step": 3}')
    (root / "epoch=0-step=3.ckpt").write_text("ckpt 3")
    os.symlink("epoch=0-step=3.ckpt", root / "last.ckpt")  # Lightning's save_last="link"
    os.symlink("step-3", root / "latest")  # a folder link inside
    os.symlink("gone.ckpt", root / "broken")  # dangling
    os.symlink(".", root / "step-3" / "loop")  # a loop
    os.makedirs(outside / "tok")
    (outside / "tokenizer.json").write_text("tokenizer")
    (outside / "tok" / "merges.txt").write_text("merges")
    os.symlink(str(outside / "tokenizer.json"), root / "tokenizer.json")  # a file outside
    os.symlink(str(outside / "tok"), root / "tok")  # a folder outside
    os.symlink(str(root / "epoch=0-step=3.ckpt"), root / "best.ckpt")  # inside, but absolute


def test_a_storage_without_links_gets_every_link_followed_loops_cut_and_dangling_ones_named(tmp_path):
    """Before: scan_changes dropped the folder link and raised FileNotFoundError on the dangling one."""
    from aws_train_remote.executors.local_job import scan_changes

    trainer_folder(tmp_path / "ck", tmp_path / "cache")
    seen, skipped = {}, []
    changed, removed = scan_changes(str(tmp_path / "ck"), seen)
    assert changed == ["best.ckpt", "epoch=0-step=3.ckpt", "last.ckpt", "latest/state.json", "step-3/state.json",
                       "tok/merges.txt", "tokenizer.json"] and removed == []
    assert scan_changes(str(tmp_path / "ck"), seen, skipped) == ([], [])
    assert skipped == ["dangling link broken -> gone.ckpt", "link loop latest/loop -> . (a folder that holds it)",
                       "link loop step-3/loop -> . (a folder that holds it)"]
    os.remove(tmp_path / "ck" / "epoch=0-step=3.ckpt")  # last.ckpt dangles now: gone from the location
    assert scan_changes(str(tmp_path / "ck"), seen) == ([], ["best.ckpt", "epoch=0-step=3.ckpt", "last.ckpt"])


def test_packing_keeps_links_inside_relative_and_copies_what_links_outside_point_at(tmp_path):
    """Before: the model's link to a tokenizer outside it made local mode's unpack raise UnsafeArchive."""
    from aws_train_remote.executors.local_job import LocalJob
    from aws_train_remote.runtime.safe_tar import extract_into

    work = tmp_path / "work"
    model = work / "algo-1" / "opt" / "ml" / "model"
    trainer_folder(model, tmp_path / "cache")
    os.makedirs(model / "empty")
    os.symlink("empty", model / "to-empty")
    os.symlink(str(work), model / "up")  # a folder that holds the model: a loop, not a copy of everything
    lines = []
    job = LocalJob({"TrainingJobName": "t"}, None, workdir=str(work), on_line=lambda host, text: lines.append((host, text)))
    assert job._pack([str(model)], str(tmp_path / "model.tar.gz"))
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        links_in = {m.name: m.linkname for m in tar if m.issym()}
    assert links_in == {"best.ckpt": "epoch=0-step=3.ckpt", "last.ckpt": "epoch=0-step=3.ckpt", "latest": "step-3",
                        "step-3/loop": ".", "to-empty": "empty"}
    assert lines == [("algo-1", "[aws-train-remote] model.tar.gz: skipped dangling link broken -> gone.ckpt"),
                     ("algo-1", f"[aws-train-remote] model.tar.gz: skipped link loop up -> {work} (a folder that holds it)")]
    dest = tmp_path / "unpacked"
    assert extract_into(str(tmp_path / "model.tar.gz"), str(dest)) == 9  # 4 files, 5 links
    assert (dest / "latest" / "state.json").read_text() == '{"step": 3}'
    assert (dest / "tokenizer.json").read_text() == "tokenizer" and not os.path.islink(dest / "tok")
    assert (dest / "tok" / "merges.txt").read_text() == "merges" and os.path.isdir(dest / "to-empty")


def test_the_runtime_seals_the_model_in_place_and_never_raises(tmp_path):
    """What SageMaker packs is self-contained too: links out become copies, an absolute link inside
    becomes relative, a dangling one is removed and named."""
    model = tmp_path / "model"
    trainer_folder(model, tmp_path / "cache")
    os.symlink("../..", model / "step-3" / "up")
    lines = []
    assert sorted(links.seal(str(model), lines.append)) == ["tok", "tokenizer.json"]
    assert lines == ["skipped dangling link broken -> gone.ckpt (removed, so the archive holds only what can be read)",
                     "skipped link loop step-3/up -> ../.. (a folder that holds it; removed)"]
    assert not os.path.lexists(model / "step-3" / "up")
    assert os.readlink(model / "best.ckpt") == "epoch=0-step=3.ckpt" and os.readlink(model / "latest") == "step-3"
    assert os.readlink(model / "last.ckpt") == "epoch=0-step=3.ckpt" and os.readlink(model / "step-3" / "loop") == "."
    assert not os.path.islink(model / "tok") and (model / "tok" / "merges.txt").read_text() == "merges"
    assert not os.path.islink(model / "tokenizer.json") and (model / "tokenizer.json").read_text() == "tokenizer"
    assert (tmp_path / "cache" / "tokenizer.json").exists()  # the target is copied, never moved
    assert sorted(n for n in os.listdir(model) if n.startswith(".atr")) == []

    layout = type("Layout", (), {"model_dir": str(tmp_path / "no-such"), "output_data_dir": 42})()
    said = []
    links.seal_outputs(layout, said.append)  # a folder missing, a path that is no path: said, not raised
    assert len(said) == 1 and said[0].startswith("output: links left as they are (TypeError")


def two_host_job(tmp_path, storage):
    from aws_train_remote.executors.local_job import LocalJob

    request = {"TrainingJobName": "t", "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
               "CheckpointConfig": {"S3Uri": "s3://bucket/ck"}}
    lines = []
    job = LocalJob(request, storage, workdir=str(tmp_path / "work"), on_line=lambda host, text: lines.append(text))
    return job, lines


def test_every_host_syncs_its_own_folder_and_never_sends_back_a_stale_restored_copy(tmp_path):
    """Issue 18.11b, unit by unit: algo-2's own files reach the location; its restored copy of a file
    that algo-1 then rewrote is not sent back over algo-1's."""
    from aws_train_remote.executors.local_mode import MirrorStorage

    mirror = tmp_path / "s3"
    os.makedirs(mirror / "bucket" / "ck")
    (mirror / "bucket" / "ck" / "trainer_state.json").write_text("step 1")
    job, _ = two_host_job(tmp_path, MirrorStorage(str(mirror), {}))
    for host in job.hosts():
        job._stage(host, job.hosts())
    first, second = (job._checkpoint_dir(h) for h in job.hosts())
    with open(os.path.join(first, "trainer_state.json"), "w") as fh:
        fh.write("step 2")
    with open(os.path.join(second, "rng_state_1.pth"), "w") as fh:
        fh.write("rank 1")
    job._sync_checkpoints(final=True)
    assert sorted(os.listdir(mirror / "bucket" / "ck")) == ["rng_state_1.pth", "trainer_state.json"]
    assert (mirror / "bucket" / "ck" / "trainer_state.json").read_text() == "step 2"


def churn(folder, stop, steps):
    """Lightning saving every step, hard: a new checkpoint, the old one deleted, last.ckpt and a
    folder link re-pointed, an old folder removed -- as fast as it can."""
    step = 0
    while not stop.is_set():
        step += 1
        os.makedirs(folder / f"step-{step}")
        (folder / f"step-{step}" / "state.json").write_text(str(step))
        (folder / f"epoch=0-step={step}.ckpt").write_bytes(b"x" * (step % 7 + 1))
        for name, target in (("last.ckpt", f"epoch=0-step={step}.ckpt"), ("latest", f"step-{step}")):
            if os.path.lexists(folder / name):
                os.remove(folder / name)
            os.symlink(target, folder / name)
        if step > 1:
            os.remove(folder / f"epoch=0-step={step - 1}.ckpt")
            for sub in (folder / f"step-{step - 1}",):
                os.remove(sub / "state.json")
                os.rmdir(sub)
    steps.append(step)


def sync_while_churning(folder, sync, seconds=1.0):
    """sync() again and again while a writer churns `folder` (bounded); then once more, still."""
    os.makedirs(folder, exist_ok=True)
    stop, steps, passes = threading.Event(), [], 0
    writer = threading.Thread(target=churn, args=(folder, stop, steps), daemon=True)
    writer.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            sync()
            passes += 1
    finally:
        stop.set()
        writer.join(10)
    sync()
    return steps[0], passes


def test_files_vanishing_and_links_repointed_during_a_sync_are_never_an_error(tmp_path):
    """Issue 18.11a: a file deleted or re-linked between listing and os.stat raised FileNotFoundError
    and crashed local mode's driver. After the writer stops, one more pass leaves the location
    exactly as the folder is."""
    from aws_train_remote.executors.local_mode import MirrorStorage

    mirror, folder, seen = tmp_path / "s3", tmp_path / "ck", {}
    storage = MirrorStorage(str(mirror), {})
    steps, passes = sync_while_churning(folder, lambda: storage.sync_up(str(folder), "s3://bucket/ck", seen))
    assert steps > 20 and passes > 5, (steps, passes)
    held = {os.path.relpath(os.path.join(d, n), mirror / "bucket" / "ck"): open(os.path.join(d, n)).read()
            for d, _, names in os.walk(mirror) for n in names}
    assert held == {f"epoch=0-step={steps}.ckpt": "x" * (steps % 7 + 1), "last.ckpt": "x" * (steps % 7 + 1),
                    f"step-{steps}/state.json": str(steps), "latest/state.json": str(steps)}


def test_the_sandbox_storage_tolerates_the_same_churn(tmp_path, aws):
    """The same through S3Storage over the loopback S3 (the sandbox's checkpoint sync)."""
    import boto3
    from botocore.config import Config

    from aws_train_remote.executors.local_job import S3Storage

    # short timeouts: a PutObject whose body came out shorter than its declared size waits forever
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(read_timeout=10, retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="churn")
    folder, seen = tmp_path / "ck", {}
    storage = S3Storage(s3)
    steps, _ = sync_while_churning(folder, lambda: storage.sync_up(str(folder), "s3://churn/ck", seen), 1.5)
    keys = {obj["Key"]: s3.get_object(Bucket="churn", Key=obj["Key"])["Body"].read()
            for obj in s3.list_objects_v2(Bucket="churn")["Contents"]}
    data = b"x" * (steps % 7 + 1)
    assert keys == {f"ck/epoch=0-step={steps}.ckpt": data, "ck/last.ckpt": data,
                    f"ck/step-{steps}/state.json": str(steps).encode(), "ck/latest/state.json": str(steps).encode()}


LIGHTNING = """
    import os, time
    import torch
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from aws_train_remote import training_main

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Report(Callback):
        def on_train_start(self, trainer, _):
            print("starting at global step", trainer.global_step, flush=True)

        def on_train_batch_start(self, trainer, *_):
            # the first attempt waits at step 5 for the platform's SIGTERM (30 s at most: never hang)
            waited = time.monotonic()
            while trainer.global_step == 5 and not trainer.received_sigterm and not self.resumed \
                    and time.monotonic() - waited < 30:
                time.sleep(0.05)

    def main(args):
        torch.manual_seed(0)
        data = torch.utils.data.TensorDataset(torch.randn(64, 2), torch.randn(64, 1))
        loader = torch.utils.data.DataLoader(data, batch_size=4)
        last = ModelCheckpoint(dirpath=args.checkpoint_dir, every_n_train_steps=1, save_top_k=2,
                               monitor="step", mode="max", save_last="link")
        report = Report()
        report.resumed = os.path.exists(os.path.join(args.checkpoint_dir, "last.ckpt"))
        trainer = pl.Trainer(max_steps=12, callbacks=[last, report], logger=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", devices=1)
        trainer.fit(Tiny(), loader, ckpt_path="last")
        print("finished at global step", trainer.global_step, flush=True)
        print("checkpoints", sorted(os.listdir(args.checkpoint_dir)), flush=True)

    if __name__ == "__main__":
        training_main(main)
    """


def test_lightning_save_last_link_interrupted_resumes_from_last_in_local_mode(tmp_path):
    """PyTorch Lightning's ModelCheckpoint(save_last="link") saving every step, interrupted once and
    resumed with ckpt_path="last": last.ckpt comes back (a copy, as from S3) and the run goes on."""
    pytest.importorskip("lightning")
    write_script(tmp_path, LIGHTNING)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-simulate-interruption", "15",
                         "--sagemaker-job-name", "lightning-1"], cwd=tmp_path, env=LOCAL_ENV, timeout=150)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # 15 s: Lightning's import and setup take 3-10 s on a busy machine; the first attempt waits at step 5
    starts = [int(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("[algo-1] starting at ")]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] in (5, 6), out  # 6: saved as SIGTERM came
    assert "[algo-1] finished at global step 12" in out and "Traceback" not in out
    last = next(line for line in out.splitlines() if line.startswith("[algo-1] checkpoints "))
    assert "'last.ckpt'" in last and "'epoch=0-step=12.ckpt'" in last


def test_through_the_sandbox_the_folder_link_resumes_and_the_downloaded_model_is_whole(tmp_path, sandbox):
    """The same rule over the loopback S3: before, the dangling link failed the job and
    --sagemaker-download refused the whole model for its link to a tokenizer outside it."""
    write_script(tmp_path, LINKED_FOLDERS)
    role = "arn:aws:iam::123456789012:role/DemoRole"
    launch = ["train.py", "--sagemaker-run", "yes", "--sagemaker-role", role, "--sagemaker-base-job-name", "links"]
    first = run_python(launch + ["--steps", "3"], cwd=tmp_path, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[algo-1] [aws-train-remote] checkpoint sync: skipped dangling link broken -> gone.ckpt" in first.stdout
    sandbox.clear_faults()
    second = run_python(launch + ["--steps", "5", "--sagemaker-download", "--model-dir", str(tmp_path / "got")],
                        cwd=tmp_path, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "[algo-1] resumed at step 3" in second.stdout and "[algo-1] finished at step 5" in second.stdout
    got = tmp_path / "got"
    assert sorted(os.listdir(got)) == ["best.bin", "tok", "tokenizer.json", "weights.bin"]
    assert os.readlink(got / "best.bin") == "weights.bin" and (got / "tok" / "merges.txt").read_text() == "a b"


def test_a_checkpoint_sync_that_fails_is_one_line_never_the_end_of_the_job(tmp_path):
    """Our own copying never turns a job into a traceback: a location that cannot be written is
    said once per host, and every pass still runs."""
    from aws_train_remote.executors.local_mode import MirrorStorage

    (tmp_path / "s3").write_text("a file where the mirror's folder should be")
    job, lines = two_host_job(tmp_path, MirrorStorage(str(tmp_path / "s3"), {}))
    for host in job.hosts():
        os.makedirs(job._checkpoint_dir(host))
        with open(os.path.join(job._checkpoint_dir(host), "state.json"), "w") as fh:
            fh.write(host)
    job._sync_checkpoints()
    job._sync_checkpoints(final=True)
    assert len(lines) == 2 and all(line.startswith("[aws-train-remote] checkpoint sync failed (NotADirectoryError")
                                   and line.endswith("; trying again") for line in lines), lines


def test_checkpoint_initial_seeds_the_local_location_by_the_same_rule(tmp_path):
    """--checkpoint-initial in local mode: before, a dangling link refused the whole seed folder."""
    from aws_train_remote.executors.local_mode import MirrorStorage

    trainer_folder(tmp_path / "seed", tmp_path / "cache")
    skipped = []
    count = MirrorStorage(str(tmp_path / "s3"), {}).seed("s3://bucket/ck", str(tmp_path / "seed"), skipped)
    assert count == 7 and skipped[0] == "dangling link broken -> gone.ckpt"
    assert (tmp_path / "s3" / "bucket" / "ck" / "latest" / "state.json").read_text() == '{"step": 3}'
    assert (tmp_path / "s3" / "bucket" / "ck" / "last.ckpt").read_text() == "ckpt 3"
