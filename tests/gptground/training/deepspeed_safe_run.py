"""Run in a child process by test_deepspeed_safe_load (DeepSpeed needs a process group):
a real ZeRO-2/3 engine on DeepSpeed's CPU accelerator saves a folder checkpoint where a
run's last.ckpt goes; ``resume_from=last`` finds it, it loads with data-only reads, and a
file of it holding pickled code is refused.

Usage: python deepspeed_safe_run.py OUT PORT; prints one line per check, exits 0 when all hold.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def main(out: str, port: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=0, world_size=1)
    import deepspeed
    from lightning.pytorch.strategies import DeepSpeedStrategy

    from gptground.training.deepspeed_checkpoint import weights_only_reads
    from gptground.training.run_folder import find_last_checkpoint
    from gptground.training.safe_load import UnsafeCheckpointError

    for stage in (2, 3):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        model[0].weight.requires_grad_(False)  # frozen, as the encoders are
        trainable = [p for p in model.parameters() if p.requires_grad]
        config = {**DeepSpeedStrategy(stage=stage).config, "train_micro_batch_size_per_gpu": 1}
        engine, *_ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=0), config=config, model=model, model_parameters=trainable,
            optimizer=torch.optim.AdamW(trainable, lr=1e-2), dist_init_required=False,
        )
        engine.backward(engine(torch.randn(1, 4)).sum())
        engine.step()
        run = os.path.join(out, f"stage{stage}")
        path = os.path.join(run, "version_0", "checkpoints", "last.ckpt")
        engine.save_checkpoint(path, client_state={"global_step": 1, "gptground_counts": {"skipped_batches": 0}},
                               tag="checkpoint", exclude_frozen_parameters=True)
        assert find_last_checkpoint(out, f"stage{stage}") == path, "resume_from=last misses the folder"
        with weights_only_reads(engine.checkpoint_engine):
            _, client = engine.load_checkpoint(path, tag="checkpoint", load_module_strict=False)
        assert client["global_step"] == 1, client
        print(f"stage {stage}: found and loaded with data-only reads", flush=True)

        marker = os.path.join(out, f"code-ran-{stage}")
        states = [f for f in os.listdir(os.path.join(path, "checkpoint")) if "model_states" in f][0]
        torch.save({"global_step": 1, "payload": Payload(marker)}, os.path.join(path, "checkpoint", states))
        with weights_only_reads(engine.checkpoint_engine):
            try:
                engine.load_checkpoint(path, tag="checkpoint", load_module_strict=False)
            except UnsafeCheckpointError as e:
                assert "open" in str(e), e
            else:
                raise AssertionError("a checkpoint holding pickled code was loaded")
        assert not os.path.exists(marker), "the payload ran"
        print(f"stage {stage}: pickled code refused", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
