"""How the pack settings of the input store trade calls against re-sent bytes (plan/store.py).

Pure planning, no network: for each small-file threshold and pack target (the most a pack holds
is twice the target) it plans two inputs -- 10,000 x 1 KiB files, and 5,000 files with sizes
spread log-uniformly from 100 B to 8 MiB -- and prints the objects a first launch puts (each one
request, the large files' multipart parts not counted), the largest pack, and the bytes one
changed small file re-sends (its pack, averaged over 200 random files). On real S3 a request
costs 20-50 ms and 1 MB about 10-80 ms, which is what the chosen defaults balance.
Run: python bench/pack_sizes.py
"""
import hashlib
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aws_train_remote.plan import store  # noqa: E402

KIB, MIB = 1024, 1024 * 1024


def dataset(kind, rng):
    if kind == "10,000 x 1 KiB":
        sizes = [KIB] * 10000
    else:
        sizes = [int(10 ** rng.uniform(2, 6.92)) for _ in range(5000)]
    return [store.Member(f"d{i // 500:02d}/f{i:05d}.bin", "", size, hashlib.sha256(str(i).encode()).hexdigest(), 0o644)
            for i, size in enumerate(sizes)]


def measure(members, small, target, rng):
    runs = store.group(members, small, 2 * target, target=target)
    packs = [run for kind, run in runs if kind == "pack"]
    largest = max((sum(m.size for m in run) for run in packs), default=0)
    where = {m.relpath: sum(x.size for x in run) for run in packs for m in run}
    picks = rng.sample(sorted(where), min(200, len(where)))
    resent = sum(where[p] for p in picks) / max(1, len(picks))
    return len(runs) + 1, largest, resent  # + the tree


def main():
    rng = random.Random(11)
    rows = []
    for kind in ("10,000 x 1 KiB", "5,000 mixed"):
        members = dataset(kind, rng)
        for small in (256 * KIB, MIB, 4 * MIB):
            for target in (MIB, 4 * MIB, 16 * MIB):
                objects, largest, resent = measure(members, small, target, rng)
                chosen = small == store.SMALL_FILE and target == store.PACK_TARGET
                rows.append((kind, small, target, objects, largest, resent, chosen))
    print(f"{'input':<16}{'small <':>9}{'target':>8}{'objects':>9}{'largest pack':>14}{'re-sent per change':>20}")
    for kind, small, target, objects, largest, resent, chosen in rows:
        print(f"{kind:<16}{small // KIB:>7}Ki{target // MIB:>6}Mi{objects:>9}{largest / MIB:>12.1f}Mi"
              f"{resent / MIB:>18.2f}Mi" + ("   <- the defaults" if chosen else ""))


if __name__ == "__main__":
    main()
