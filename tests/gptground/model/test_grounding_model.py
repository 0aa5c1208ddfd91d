"""GroundingModel: scattering media tokens, the count check, declared trainability, LoRA."""

import pytest
import torch
from torch import nn

from gptground.config import DecoderConfig, LoraConfig, TinyDecoderConfig, TrainableConfig
from gptground.model.decoder import build_decoder
from gptground.model.grounding_model import GroundingModel, PlaceholderCountError
from gptground.model.lora import add_lora, merged_state_dict
from gptground.model.trainable import apply_trainable, param_groups
from modalities import Media, Modality

D_MODEL, N_TOKENS, VOCAB = 32, 3, 50
PATCH = VOCAB + 1  # ids VOCAB..VOCAB+2 are the new start/patch/end tokens


class FakeModality(Modality):
    """Encoder: a frozen linear over 4-d inputs; adapter: linear to d_model, N_TOKENS tokens."""

    name, record_key, placeholder, token_prefix, config_class = "fake", "fake", "<fake>", "fk", dict

    def __init__(self):
        super().__init__({}, D_MODEL)
        self.encoder = nn.Linear(4, 8)
        self.adapter = nn.Linear(8, D_MODEL)
        self.freeze_encoder()

    @property
    def num_tokens(self) -> int:
        return N_TOKENS

    def load(self, source):
        return Media(torch.zeros(4), str(source))

    def transform(self, media, train):
        return media.data

    def encode(self, x):  # (B, N_TOKENS, 4) -> (B, N_TOKENS, 8)
        with torch.no_grad():
            return self.encoder(x)


def make_model(decoder_cfg=None) -> GroundingModel:
    torch.manual_seed(0)
    cfg = decoder_cfg or DecoderConfig(tiny=TinyDecoderConfig(hidden_size=D_MODEL, num_heads=4, intermediate_size=64))
    decoder = build_decoder(cfg, VOCAB)
    decoder.resize_token_embeddings(VOCAB + 3, mean_resizing=False)
    return GroundingModel(decoder, {"fake": FakeModality()}, {"fake": PATCH}, [VOCAB, VOCAB + 1, VOCAB + 2])


def batch(patches_per_row=(N_TOKENS, N_TOKENS), with_media=(0, 1)):
    rows = []
    for n in patches_per_row:
        rows.append([1, VOCAB] + [PATCH] * n + [VOCAB + 2] + [5] * (8 - n))
    ids = torch.tensor(rows)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": ids.clone(),
        "media": {"fake": torch.randn(len(with_media), N_TOKENS, 4)},
        "media_index": {"fake": torch.tensor(with_media)},
        "sample_ids": [f"s{i}" for i in range(len(rows))],
    }


def test_media_tokens_replace_patch_embeddings():
    model = make_model()
    b = batch()
    tokens = model.media_tokens(b["media"])
    embeds = model.embed(b["input_ids"], tokens, b["media_index"])
    assert torch.equal(embeds[1, 2 : 2 + N_TOKENS], tokens["fake"][1])
    text = model.decoder.get_input_embeddings()(b["input_ids"])
    assert torch.equal(embeds[:, :2], text[:, :2])


def test_loss_on_labelled_positions_equals_the_full_logits_loss():
    model = make_model()
    b = batch()
    b["labels"][:, :6] = -100  # a prompt: no loss there
    out = model(**b)
    full = model(**{k: v for k, v in b.items() if k != "labels"}).logits  # (B, T, V)
    expected = torch.nn.functional.cross_entropy(full[:, :-1].flatten(0, 1), b["labels"][:, 1:].flatten())
    assert torch.allclose(out.loss, expected, atol=1e-6)
    kept = (b["labels"][:, 1:] != -100).sum().item()
    assert out.logits.shape == (kept, full.shape[-1])


def test_count_mismatch_names_sample():
    model = make_model()
    b = batch(patches_per_row=(N_TOKENS, N_TOKENS - 1))
    with pytest.raises(PlaceholderCountError, match=r"s1: 2 <fake> patch tokens, 3 expected"):
        model(**b)
    b = batch(with_media=(1,))  # row 0 has patch tokens but no media
    b["media"] = {"fake": torch.randn(1, N_TOKENS, 4)}
    with pytest.raises(PlaceholderCountError, match="s0"):
        model(**b)


def _train_steps(model, steps=3):
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.1), lr=1e-2)
    for _ in range(steps):
        loss = model(**batch()).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_frozen_parts_bit_identical_after_training():
    model = make_model()
    apply_trainable(model, TrainableConfig(adapters=True, decoder=False, new_token_embeddings=True))
    # The exported weights (what a model folder holds): the new rows merged into one matrix.
    before = {k: v.clone() for k, v in merged_state_dict(model).items()}
    _train_steps(model)
    after = merged_state_dict(model)
    emb = "decoder.model.embed_tokens.weight"
    for k, v in before.items():
        if k.startswith(("decoder.", "modalities.fake.encoder")) and k != emb:
            assert torch.equal(v, after[k]), k
    assert torch.equal(before[emb][:VOCAB], after[emb][:VOCAB])  # old rows untouched
    assert not torch.equal(before[emb][VOCAB:], after[emb][VOCAB:])  # new rows learned
    assert not torch.equal(before["modalities.fake.adapter.weight"], after["modalities.fake.adapter.weight"])


def test_adapters_frozen_decoder_trains():
    model = make_model()
    apply_trainable(model, TrainableConfig(adapters=False, decoder=True, new_token_embeddings=True))
    before = model.modalities["fake"].adapter.weight.clone()
    q = model.decoder.model.layers[0].self_attn.q_proj.weight.clone()
    _train_steps(model)
    assert torch.equal(before, model.modalities["fake"].adapter.weight)
    assert not torch.equal(q, model.decoder.model.layers[0].self_attn.q_proj.weight)


def test_lora_trains_only_lora_and_merges_exactly():
    model = make_model()
    add_lora(model.decoder, LoraConfig(enabled=True, rank=2))
    apply_trainable(model, TrainableConfig(decoder=False, new_token_embeddings=False, lora=LoraConfig(enabled=True, rank=2)))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "adapter" in n for n in trainable)
    _train_steps(model)
    model.eval()
    b = batch()
    expected = model(**b).logits
    plain = make_model()
    plain.load_state_dict(merged_state_dict(model))
    assert torch.allclose(plain.eval()(**b).logits, expected, atol=1e-5)
