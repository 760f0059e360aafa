"""PyTorch Lightning with `ModelCheckpoint(save_last="link")` (last.ckpt is a link to the newest
checkpoint) resuming with `trainer.fit(..., ckpt_path="last")`, as a spot user writes it: Lightning
turns SIGTERM into a clean stop at the next batch. The model folder gets the weights and, as users
often do, `last.ckpt`: a link to the checkpoint in the checkpoint folder (a link leaving it)."""
import os
import time

from aws_train_remote import training_main


def main(args):
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    class Regression(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    # the checkpoint folder travels across restarts: a marker in it counts the attempts
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    attempt = 1 + sum(name.startswith("attempt-") for name in os.listdir(args.checkpoint_dir))
    open(os.path.join(args.checkpoint_dir, f"attempt-{attempt}"), "w").close()
    last = os.path.join(args.checkpoint_dir, "last.ckpt")
    found = "link" if os.path.islink(last) else "file" if os.path.isfile(last) else "none"

    class Report(Callback):
        waited = False

        def on_train_start(self, trainer, pl_module):
            print(f"attempt {attempt}: last.ckpt={found} resumed at global_step={trainer.global_step}", flush=True)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            # ModelCheckpoint saved at the end of the previous batch: with --wait-after-step N, the
            # first attempt stops making progress once step N is saved, so the spot rehearsal's
            # interruption lands there whatever the machine's speed (bounded: a rehearsal that
            # never comes only makes the run slow)
            if attempt == 1 and args.wait_after_step and not self.waited \
                    and trainer.global_step >= args.wait_after_step:
                self.waited = True
                print(f"waiting at global_step={trainer.global_step}", flush=True)
                deadline = time.monotonic() + 180
                while not trainer.received_sigterm and time.monotonic() < deadline:
                    time.sleep(0.1)

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    checkpoints = ModelCheckpoint(dirpath=args.checkpoint_dir, filename="{step}", every_n_train_steps=2,
                                  save_last="link")
    trainer = pl.Trainer(max_steps=args.max_steps, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[checkpoints, Report()],
                         default_root_dir=args.output_dir)
    model = Regression()
    trainer.fit(model, loader, ckpt_path="last")
    print(f"finished at global_step={trainer.global_step}", flush=True)
    os.makedirs(args.model_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.model_dir, "weights.pt"))
    os.symlink(os.path.realpath(checkpoints.last_model_path), os.path.join(args.model_dir, "last.ckpt"))


if __name__ == "__main__":
    training_main(main, additional_arguments=[
        {"dest": "--max-steps", "type": int, "default": 12},
        {"dest": "--wait-after-step", "type": int, "default": 0}])
