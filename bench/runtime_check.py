"""What checking every byte costs the runtime when it lays a File channel out (runtime/input_tree.py).

Builds two inputs of `--gib` GiB each: large files of 256 MiB (moved into place), and 64 KiB files
(cut out of packs). Places their objects as SageMaker does (hard links into a fresh channel folder
each run) and times lay_out side by side with the layout of the commit before the check (moves
and cuts only; `git show <rev>:aws_train_remote/runtime/input_tree.py`), alternating, on a hot
page cache; and, alone, the hashing the check adds (each large object read and hashed as lay_out
does, each pack member's bytes hashed), which is its price: creating thousands of small files
varies by more than that from run to run on a shared machine.
Run: python bench/runtime_check.py [--gib 1] [--runs 3] [--rev 3bb5899]
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from aws_train_remote.plan.store import read_pack  # noqa: E402
from aws_train_remote.plan.uploads import plan_input  # noqa: E402
from aws_train_remote.runtime import input_tree  # noqa: E402

MIB = 1024 * 1024


def old_layout(rev: str, where: str):
    source = subprocess.run(["git", "-C", REPO, "show", f"{rev}:aws_train_remote/runtime/input_tree.py"],
                            capture_output=True, text=True, check=True).stdout
    path = os.path.join(where, "old_input_tree.py")
    with open(path, "w") as fh:
        fh.write(source.replace("from .. import contract", "from aws_train_remote import contract"))
    spec = importlib.util.spec_from_file_location("old_input_tree", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(root: str, gib: float, kind: str):
    data = os.path.join(root, kind, "data")
    os.makedirs(data)
    total = int(gib * 1024 * MIB)
    size = 256 * MIB if kind == "large" else 64 * 1024
    for i in range(max(1, total // size)):
        with open(os.path.join(data, f"{i:05d}.bin"), "wb") as fh:
            for _ in range(max(1, size // MIB)):
                fh.write(os.urandom(min(size, MIB)))
    item = plan_input("train", data, "p")
    objects = os.path.join(root, kind, "objects")
    os.makedirs(objects)
    for obj in item.unique_objects():
        target = os.path.join(objects, obj.sha256)
        if obj.kind == "file":
            os.link(obj.members[0].local, target)
        else:
            with open(target, "wb") as fh:
                fh.write(obj.body if obj.kind == "tree" else read_pack(obj))
    return item, objects, sum(m.size for m in item.files)


def run_once(module, item, objects: str, root: str) -> float:
    channel = os.path.join(root, "channel")
    shutil.rmtree(channel, ignore_errors=True)
    where = os.path.join(channel, "p", "store", "objects")
    os.makedirs(where)
    for name in os.listdir(objects):
        os.link(os.path.join(objects, name), os.path.join(where, name))
    started = time.perf_counter()
    module.lay_out(channel, item.tree.sha256)
    return time.perf_counter() - started


def hash_once(item, objects: str) -> float:
    """The check's own work: what lay_out hashes, and nothing else."""
    import hashlib

    started = time.perf_counter()
    for obj in item.unique_objects():
        path = os.path.join(objects, obj.sha256)
        if obj.kind == "file":
            input_tree._sha256_file(path)
        elif obj.kind == "pack":
            with open(path, "rb") as fh:
                data, offset = fh.read(), 0
            for m in obj.members:
                hashlib.sha256(data[offset:offset + m.size]).hexdigest()
                offset += m.size
        else:
            with open(path, "rb") as fh:
                hashlib.sha256(fh.read()).hexdigest()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rev", default="3bb5899", help="a commit before the check")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        old = old_layout(args.rev, root)
        for kind in ("large", "small"):
            item, objects, size = build(root, args.gib, kind)
            times = {"checked": [], "unchecked": [], "hashing": []}
            for _ in range(args.runs):
                times["unchecked"].append(run_once(old, item, objects, os.path.join(root, kind)))
                times["checked"].append(run_once(input_tree, item, objects, os.path.join(root, kind)))
                times["hashing"].append(hash_once(item, objects))
            gb = size / 1e9
            best = {k: min(v) for k, v in times.items()}
            print(f"{kind} files: {len(item.files)} files, {gb:.2f} GB "
                  f"({sum(o.kind == 'pack' for o in item.objects)} packs), best of {args.runs}: "
                  + ", ".join(f"{k} {best[k]:.2f} s ({best[k] / gb:.2f} s/GB)" for k in ("unchecked", "checked"))
                  + f"; the check's hashing alone {best['hashing'] / gb:.2f} s/GB")


if __name__ == "__main__":
    main()
