"""A PyTorch DistributedDataParallel demo on generated data: a small linear regression, trained with
DDP, checkpointed every epoch (model, optimizer, epoch, RNG state) and resumed from the newest
checkpoint, so a spot interruption costs at most one epoch and ends with the same model.

It runs unchanged everywhere:
    python demo/ddp/train.py                                      # here, one process, no process group
    python demo/ddp/train.py --sagemaker-run local --sagemaker-instance-count 2 --sagemaker-nproc-per-node 2
    python demo/ddp/train.py --sagemaker-run yes --sagemaker-instance ml.g5.12xlarge --sagemaker-instance-count 2
The last one runs one process per GPU across both instances (nccl); on CPU it uses gloo.
"""
import glob
import os
import signal
import time

from aws_train_remote import training_main


def newest_checkpoint(folder):
    found = sorted(glob.glob(os.path.join(folder, "ckpt-*.pt")))
    return found[-1] if found else None


def main(args):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # torchrun sets it; a plain run does not
    cuda = torch.cuda.is_available()
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    torch.set_num_threads(1)

    # the same generated data on every rank; each rank trains on its shard of it
    data = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.samples, 8, generator=data)
    y = x @ torch.arange(1.0, 9.0).unsqueeze(1) + 0.1 * torch.randn(args.samples, 1, generator=data)
    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, sampler=sampler)

    torch.manual_seed(args.seed)
    model = torch.nn.Linear(8, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    start = 0
    newest = newest_checkpoint(args.checkpoint_dir)
    if newest:
        state = torch.load(newest, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start = state["epoch"]
        if rank == 0:
            print(f"resumed from {os.path.basename(newest)} (epoch {start})", flush=True)
    ddp = DistributedDataParallel(model) if distributed else model

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))  # spot interruption: finish the epoch
    for epoch in range(start + 1, args.epochs + 1):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(ddp(xb.to(device)), yb.to(device))
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            full = torch.nn.functional.mse_loss(model(x.to(device)), y.to(device)).item()
        if rank == 0:
            print(f"epoch={epoch} loss={full:.6f} world={world}", flush=True)
            os.makedirs(args.checkpoint_dir, exist_ok=True)
            path = os.path.join(args.checkpoint_dir, f"ckpt-{epoch:04d}.pt")
            torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": torch.get_rng_state()}, path + ".tmp")
            os.replace(path + ".tmp", path)  # a checkpoint is whole or absent
        if args.sleep:
            time.sleep(args.sleep)
        flag = torch.tensor([1.0 if stop["now"] else 0.0])
        if distributed:  # every rank stops after the same epoch, or none does
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            if rank == 0:
                print(f"stopping after epoch {epoch}; checkpoint saved", flush=True)
            if distributed:
                dist.barrier()  # all ranks leave together: gloo aborts a rank whose peers already tore down
                dist.destroy_process_group()
            raise SystemExit(143)

    if rank == 0:
        with torch.no_grad():  # also when the checkpoint was already the last epoch
            full = torch.nn.functional.mse_loss(model(x.to(device)), y.to(device)).item()
        os.makedirs(args.model_dir, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pt"))
        print(f"done: loss={full:.6f} model={os.path.join(args.model_dir, 'model.pt')}", flush=True)
    if distributed:
        dist.barrier()  # rank 0 was still saving the model
        dist.destroy_process_group()


if __name__ == "__main__":
    training_main(
        main,
        additional_arguments=[
            {"dest": "--epochs", "type": int, "default": 6, "help": "epochs to train in total"},
            {"dest": "--lr", "type": float, "default": 0.005, "help": "learning rate"},
            {"dest": "--batch-size", "type": int, "default": 32, "help": "batch size per process"},
            {"dest": "--samples", "type": int, "default": 512, "help": "generated samples"},
            {"dest": "--seed", "type": int, "default": 0, "help": "data, initialisation and shuffle seed"},
            {"dest": "--sleep", "type": float, "default": 0.0, "help": "pause after each epoch (seconds)"},
        ],
        distribution="torchrun",
        spot=True,
        metric={"loss": r"loss=([0-9.]+)"},
        base_job_name="ddp-demo",
    )
