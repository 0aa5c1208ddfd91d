"""NewTokenEmbedding: stage 1's split input embedding behaves as the plain one and exports as one."""

import torch
from test_grounding_model import VOCAB, _train_steps, batch, make_model

from gptground.config import TrainableConfig
from gptground.model.lora import merged_state_dict
from gptground.model.new_token_embedding import NewTokenEmbedding
from gptground.model.trainable import apply_trainable, param_groups, parameter_table

STAGE1 = TrainableConfig(adapters=True, decoder=False, new_token_embeddings=True)
EMBED = "decoder.model.embed_tokens.weight"


def _stage1_model():
    model = make_model()
    apply_trainable(model, STAGE1)
    return model


def test_split_embeds_as_the_plain_matrix_and_only_new_rows_train():
    plain = make_model()
    model = _stage1_model()
    split = model.decoder.get_input_embeddings()
    assert isinstance(split, NewTokenEmbedding) and model.d_model == split.embedding_dim
    ids = batch()["input_ids"]
    assert torch.equal(split(ids), plain.decoder.get_input_embeddings()(ids))
    trainable = {n for n, p in model.decoder.named_parameters() if p.requires_grad}
    assert trainable == {"model.embed_tokens.new_rows"}
    assert split.new_rows.shape == (3, split.embedding_dim)  # (K new tokens, d_model)


def test_new_rows_get_no_weight_decay():
    model = _stage1_model()
    new_rows = model.decoder.get_input_embeddings().new_rows
    decay, no_decay = param_groups(model, weight_decay=0.1)
    assert any(p is new_rows for p in no_decay["params"])
    assert not any(p is new_rows for p in decay["params"])


def test_parameter_table_counts_new_rows_as_the_decoder_trainable_part():
    model = _stage1_model()
    decoder = dict((part, (t, f)) for part, t, f in parameter_table(model))["decoder"]
    d = model.d_model
    assert decoder[0] == 3 * d  # the three new tokens' rows, nothing else of the decoder


def test_export_is_one_plain_embedding_that_loads_into_a_plain_model():
    model = _stage1_model()
    _train_steps(model)
    state = merged_state_dict(model)
    assert EMBED in state and not any("new_rows" in k or "embed_tokens.base" in k for k in state)
    trained = model.decoder.get_input_embeddings().new_rows.detach()
    assert torch.equal(state[EMBED][VOCAB:], trained)
    plain = make_model()
    plain.load_state_dict(state)  # strict: same keys as a model without the split
    b = batch()
    model.eval(), plain.eval()
    assert torch.equal(plain(**b).logits, model(**b).logits)


def test_generation_runs_through_the_split_embedding():
    model = _stage1_model().eval()
    b = batch()
    tokens = model.media_tokens(b["media"])
    out = model.generate(b["input_ids"], b["attention_mask"], tokens, b["media_index"], max_new_tokens=4,
                         pad_token_id=0)
    plain = make_model().eval()
    assert torch.equal(out, plain.generate(b["input_ids"], b["attention_mask"], plain.media_tokens(b["media"]),
                                           b["media_index"], max_new_tokens=4, pad_token_id=0))
