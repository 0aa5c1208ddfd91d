"""The nine media tokens of the release, on the embedding rows it trained.

``lego/model/builder.py::load_pretrained_model`` loads the release's tokenizer and then adds
``<im_patch>``, ``<im_start>``, ``<im_end>``, ``<vi_patch>``, ``<vi_start>``, ``<vi_end>``,
``<so_patch>``, ``<so_start>``, ``<so_end>`` in that order (``add_tokens`` skips a token the
tokenizer already has); the id each one gets indexes its trained rows of ``embed_tokens`` and
``lm_head``. GPTGround's own order (``processor.add_modality_tokens``: modalities by name,
start/patch/end) differs, so the converted tokenizer is saved with the nine tokens already
in it, at the release's ids; loading it adds nothing.
"""

from __future__ import annotations

from tokenizers import AddedToken

from gptground.convert.errors import ConversionError
from gptground.tokenizer import load_tokenizer

RELEASED_TOKENS = (
    "<im_patch>", "<im_start>", "<im_end>",
    "<vi_patch>", "<vi_start>", "<vi_end>",
    "<so_patch>", "<so_start>", "<so_end>",
)


def released_tokenizer(folder: str, rows: int):
    """The release's tokenizer with the nine tokens at the ids the released model used.

    Args:
        folder: the release's folder (its tokenizer files).
        rows: rows of the checkpoint's ``embed_tokens`` and ``lm_head``.

    Raises:
        ConversionError: the tokenizer's size then differs from ``rows``: its ids would not
            index the trained rows.
    """
    tokenizer = load_tokenizer(folder, recipe_key="SRC")
    had = [t for t in RELEASED_TOKENS if t in tokenizer.get_vocab()]
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in RELEASED_TOKENS], special_tokens=True)
    if len(tokenizer) != rows:
        raise ConversionError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens with the nine media tokens "
            f"({len(had)} of them already in it), but the checkpoint's embeddings have {rows} rows: "
            "its ids would not index the rows the model was trained with"
        )
    return tokenizer
