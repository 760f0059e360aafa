"""A plain PyTorch loop fed by DataLoader workers (num_workers=2) that saves a checkpoint when
SIGTERM comes (a spot interruption): the handler only sets a flag; the loop finishes the batch it
is on, takes the next one from its workers, saves and exits; the next attempt resumes there."""
import os
import signal
import time

from aws_train_remote import training_main

STOP = []


def main(args):
    signal.signal(signal.SIGTERM, lambda signum, frame: STOP.append(signum))  # first: torch takes a while
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    os.makedirs(args.checkpoint_dir, exist_ok=True)
    marker = os.path.join(args.checkpoint_dir, "started-rank0")  # travels across restarts
    first_attempt = not os.path.exists(marker)
    open(marker, "w").close()
    path = os.path.join(args.checkpoint_dir, "state.pt")
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    step = 0
    if os.path.exists(path):
        state = torch.load(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    print(f"resumed at step={step}", flush=True)
    x = torch.randn(256, 8)
    loader = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8, shuffle=True, num_workers=2)

    def save(why):
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, path)
        print(f"saved step={step} ({why})", flush=True)

    while step < args.max_steps:
        for inputs, targets in loader:
            if STOP:  # this batch came from the workers after the signal: they are still serving
                save("SIGTERM")
                return
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs), targets).backward()
            optimizer.step()
            step += 1
            if step >= args.max_steps:
                break
            if first_attempt and step == args.wait_after_step:
                # with --wait-after-step N, the first attempt stops making progress at step N (its
                # workers prefetching), so the spot rehearsal's interruption lands there whatever the
                # machine's speed; bounded: a rehearsal that never comes only makes the run slow
                print(f"waiting at step={step}", flush=True)
                deadline = time.monotonic() + 180
                while not STOP and time.monotonic() < deadline:
                    time.sleep(0.1)
    save("finished")
    os.makedirs(args.model_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pt"))
    print(f"finished at step={step}", flush=True)


if __name__ == "__main__":
    training_main(main, additional_arguments=[
        {"dest": "--max-steps", "type": int, "default": 40},
        {"dest": "--wait-after-step", "type": int, "default": 0}])
