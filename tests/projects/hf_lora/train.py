"""A Hugging Face Trainer fine-tuning a LoRA adapter (PEFT) on a tiny causal LM built from a
config in code (no download): seed 002's workload in miniature. Checkpoints every 2 steps with
save_total_limit=2 into --checkpoint-dir, resumes from the Trainer's last checkpoint, reports to
MLflow when MLFLOW_TRACKING_URI is set, saves the adapter into --model-dir."""
import json
import os
import time

from aws_train_remote import training_main


def main(args):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    torch.manual_seed(0)
    with open(os.path.join(args.train, "tokens.json")) as fh:
        rows = json.load(fh)
    dataset = [{"input_ids": torch.tensor(r), "labels": torch.tensor(r)} for r in rows]
    config = GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=1, n_head=2)
    model = get_peft_model(GPT2LMHeadModel(config), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"],
                                                                 task_type="CAUSAL_LM"))
    last = get_last_checkpoint(args.checkpoint_dir) if os.path.isdir(args.checkpoint_dir) else None
    rank = int(os.environ.get("RANK", "0"))
    # each rank marks its first attempt in the checkpoint folder, which travels across restarts
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    marker = os.path.join(args.checkpoint_dir, f"started-rank{rank}")
    first_attempt = not os.path.exists(marker)
    open(marker, "w").close()

    class WaitForTheInterruption(TrainerCallback):
        """With --wait-after-step N, the first attempt stops making progress once checkpoint-N is
        saved, so the spot rehearsal's interruption lands there whatever the machine's speed."""

        def on_save(self, training_args, state, control, **kwargs):
            if rank == 0:
                print(f"saved checkpoint-{state.global_step}", flush=True)
            if first_attempt and args.wait_after_step and state.global_step >= args.wait_after_step:
                time.sleep(180)  # bounded: a rehearsal that never comes only makes the run slow

    training = TrainingArguments(
        output_dir=args.checkpoint_dir, max_steps=args.max_steps, per_device_train_batch_size=2, learning_rate=1e-3,
        save_strategy="steps", save_steps=2, save_total_limit=2, logging_steps=1, use_cpu=True,
        report_to=["mlflow"] if os.environ.get("MLFLOW_TRACKING_URI") else [], dataloader_num_workers=0,
        disable_tqdm=True, seed=0, ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None)
    trainer = Trainer(model=model, args=training, train_dataset=dataset, callbacks=[WaitForTheInterruption()])
    if rank == 0:
        print(f"world={training.world_size} resume_from={os.path.basename(last) if last else None}", flush=True)
    trainer.train(resume_from_checkpoint=last)
    if rank == 0:
        print(f"finished at global_step={trainer.state.global_step}", flush=True)
        model.save_pretrained(args.model_dir)


if __name__ == "__main__":
    training_main(main, inputs={"train": "data"}, additional_arguments=[
        {"dest": "--max-steps", "type": int, "default": 12},
        {"dest": "--wait-after-step", "type": int, "default": 0}])
