"""A W&B offline run lands in the run folder with the resolved recipe and every logged step."""

from __future__ import annotations

import csv
import json
import struct

from training_fixtures import tiny_recipe
from wandb.proto import wandb_internal_pb2

from gptground.training.run import train

_BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of framed chunks
_FILE_HEADER = 7  # ":W&B" magic, uint16 0xBEE1, uint8 version
_CHUNK_HEADER = 7  # uint32 crc, uint16 length, uint8 kind (1 full, 2 first, 3 middle, 4 last)


def read_wandb_records(path) -> list:
    """Every protobuf Record of an offline run file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos = [], b"", _FILE_HEADER
    while pos + _CHUNK_HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _CHUNK_HEADER:  # block trailer padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        pos += _CHUNK_HEADER
        pending += data[pos : pos + length]
        pos += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_offline_run_holds_config_and_history(world, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    recipe = tiny_recipe(1, world, tmp_path, "trainer.max_steps=3", "wandb.enabled=true", "wandb.tags=[test]")
    run_dir = train(recipe)

    (run_file,) = (tmp_path / run_dir).glob("wandb/offline-run-*/run-*.wandb")
    records = read_wandb_records(run_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["run"]["name"] == "tiny-stage1"
    assert config["trainer"]["max_steps"] == 3
    assert config["model"]["trainable"] == {
        "adapters": True, "decoder": False, "new_token_embeddings": True,
        "lora": config["model"]["trainable"]["lora"],
    }
    assert list(run.tags) == ["test"]

    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    logged = [(h["trainer/global_step"], h["train/loss"]) for h in history if "train/loss" in h]
    with open(f"{run_dir}/metrics.csv") as f:
        in_csv = [(int(r["step"]), float(r["train/loss"])) for r in csv.DictReader(f) if r["train/loss"]]
    assert logged == in_csv and len(logged) == 3
    assert any(r.WhichOneof("record_type") == "exit" for r in records)  # the run was finished
