"""Loading the decoder's tokenizer, and the small tokenizer shipped for offline runs.

``load_tokenizer(spec)`` takes what the recipe key ``model.tokenizer`` holds:

- ``"builtin:tiny"``: the byte-level BPE tokenizer shipped in ``gptground/assets/tokenizer``
  (about 2,000 tokens, trained by ``train_tiny_tokenizer`` on generated grounding Q&A text).
  It needs no network and encodes any text; the embedded default recipe uses it.
- a local folder holding a Hugging Face tokenizer (e.g. a Vicuna-7B v1.5 download);
- a hub id such as ``lmsys/vicuna-7b-v1.5``: used from the local Hugging Face cache, or
  downloaded when the machine is online. Offline and not cached it fails at once with
  ``TokenizerNotFoundError`` naming the id and the recipe key.

Every loaded tokenizer has a pad token (Vicuna has none: its ``<unk>`` is reused, as the
reference does) and pads on the right.
"""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from modalities.checkpoints import hub_offline, looks_like_path
from modalities.errors import CheckpointNotFoundError

TOKENIZER_KEY = "model.tokenizer"
BUILTIN_PREFIX = "builtin:"
BUILTIN_DIR = Path(__file__).parent / "assets" / "tokenizer"
BUILTIN_NAMES = ("tiny",)

# LLaMA's order for the first ids; <pad> is added because the tiny tokenizer has no reason
# to reuse <unk> for padding.
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


class TokenizerNotFoundError(CheckpointNotFoundError):
    """The tokenizer folder or hub id cannot be reached; names the recipe key to change."""


def load_tokenizer(spec: str, recipe_key: str = TOKENIZER_KEY) -> PreTrainedTokenizerFast:
    """The tokenizer a recipe names.

    Args:
        spec: ``"builtin:tiny"``, a local folder, or a hub id.
        recipe_key: the recipe key that set ``spec``, quoted in errors.

    Raises:
        TokenizerNotFoundError: unknown builtin name, missing folder, or a hub id that is
            neither cached nor (when online) downloadable.
    """
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_NAMES:
            detail = f"known builtin tokenizers: {[BUILTIN_PREFIX + n for n in BUILTIN_NAMES]}"
            raise TokenizerNotFoundError(spec, recipe_key, detail)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(BUILTIN_DIR)
    else:
        tokenizer = _load_pretrained(spec, recipe_key)
    return _prepare(tokenizer)


def _load_pretrained(spec: str, recipe_key: str) -> PreTrainedTokenizerFast:
    if os.path.isdir(spec):
        _check_folder(spec, recipe_key)
        return AutoTokenizer.from_pretrained(spec, local_files_only=True)
    if looks_like_path(spec):
        raise TokenizerNotFoundError(spec, recipe_key, "no such folder")
    try:
        return AutoTokenizer.from_pretrained(spec, local_files_only=hub_offline())
    except OSError as e:  # not cached while offline, unknown id, or no network
        mode = "offline (HF_HUB_OFFLINE=1) and not in the cache" if hub_offline() else str(e)
        raise TokenizerNotFoundError(spec, recipe_key, mode) from e


def _check_folder(path: str, recipe_key: str) -> None:
    """A tokenizer folder needs tokenizer.json, or tokenizer.model plus ``sentencepiece``.

    Vicuna's release ships only the SentencePiece ``tokenizer.model``; transformers converts
    it on load, which needs the ``sentencepiece`` package.
    """
    files = set(os.listdir(path))
    if "tokenizer.json" in files:
        return
    if "tokenizer.model" not in files:
        raise TokenizerNotFoundError(path, recipe_key, "folder has neither tokenizer.json nor tokenizer.model")
    if importlib.util.find_spec("sentencepiece") is None:
        raise ImportError(
            f"{path} holds a SentencePiece tokenizer.model and no tokenizer.json: reading it needs the "
            "'sentencepiece' package (pip install sentencepiece). Or convert it once where it is installed: "
            "AutoTokenizer.from_pretrained(path).save_pretrained(path) writes tokenizer.json."
        )


def _prepare(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Pad on the right with a pad token; Vicuna's missing pad token becomes its <unk>."""
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is None:
            raise ValueError("tokenizer has neither a pad token nor an unk token to pad with")
        tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


# --- the shipped tiny tokenizer ------------------------------------------------------------
def _words(text: str) -> list[str]:
    return text.split()


# Words of grounding questions, answers and captions. The generated corpus mixes them with
# boxes, spans and the conversation templates' own text, so those split into few tokens.
_COLOURS = _words("red green blue yellow black white orange purple pink brown grey gray golden silver dark light")
_SHAPES = _words("square round circle triangle rectangle striped small large big tall short long tiny little")
_OBJECTS = _words(
    "man woman boy girl child person people dog cat horse bird cow sheep car bus truck bike "
    "bicycle motorcycle train plane boat chair table sofa couch bed tv laptop phone cup bottle "
    "glass plate bowl pizza cake banana apple orange sandwich umbrella bag backpack ball kite "
    "frisbee skateboard surfboard racket bench sign light tree grass road street building "
    "window door wall floor sky cloud water river sea beach mountain snow hat shirt jacket "
    "dress shoe helmet glasses camera guitar piano book clock vase toilet sink oven knife "
    "fork spoon player team crowd baby hand head face hair dish box food field fence pole"
)
_RELATIONS = _words(
    "on in under above below behind beside near next to left right of the top bottom middle "
    "center front back corner side between holding wearing riding sitting standing walking "
    "running looking playing eating drinking"
)
_VERBS = _words(
    "turns around looks at the camera jumps runs walks opens closes picks up puts down throws "
    "catches sits stands falls speaks sings laughs cries smiles waves points pours cuts "
    "drives rides enters leaves starts stops begins ends appears disappears barks meows rings"
)
_WORDS = _words(
    "a an the is are was were be it this that these those there here what where when which "
    "who how why can could would should do does did please provide give describe tell me "
    "find locate detect ground show answer question image video audio sound clip frame "
    "picture scene caption region box bounding coordinates timestamp time moment segment "
    "event happens happen during before after while and or with without for from by as "
    "yes no not one two three four five six seven eight nine ten first second third last "
    "some many all each every other another same different color colour shape size number "
    "object thing part area place position location start end beginning duration seconds "
    "he she they his her their its him them we you i my your our very also just only then "
    "brief short detailed description summary sentence phrase word referring expression"
)
_SCENES = _words(
    "kitchen bathroom bedroom living room office street park garden forest desert lake ocean "
    "city town village market store shop restaurant cafe airport station stadium court pool "
    "playground farm zoo museum library school classroom hospital church bridge tunnel highway "
    "parking lot sidewalk crosswalk traffic intersection tower castle house home apartment roof "
    "balcony stairs hallway yard lawn hill valley island harbor dock shore wave sand rock stone "
    "wood metal plastic paper cloth leather wooden glass brick concrete grassy snowy sunny "
    "cloudy rainy foggy night day morning evening sunset sunrise indoor outdoor inside outside"
)
_SOUNDS = _words(
    "music speech voice talking singing whistle siren engine motor horn bell alarm applause "
    "clapping footsteps knocking door slam thunder rain wind birds chirping dog barking cat "
    "meowing baby crying laughter crowd cheering typing keyboard drum violin flute trumpet "
    "vehicle passing helicopter airplane train whistle water running splashing dripping "
    "frying sizzling chopping ticking buzzing humming loud quiet soft noise silence echo"
)
_ACTIONS = _words(
    "holds carries pushes pulls lifts drops kicks hits swings climbs crawls dances plays "
    "reads writes draws paints cooks washes cleans brushes combs folds ties wraps fills "
    "empties turns on off slowly quickly again together alone towards away into onto out "
    "over through across along around against upon within person's man's woman's dog's "
    "someone something nothing everything another each other himself herself themselves"
)
_TEMPLATE_TEXT = (
    (
        "A chat between a curious human and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the human's questions."
    ),
    (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions."
    ),
    "### Human:",
    "### Assistant:",
    "USER:",
    "ASSISTANT:",
)


def _number(rng: random.Random, decimals: int) -> str:
    return f"{rng.random():.{decimals}f}"


def _box(rng: random.Random) -> str:
    return "[" + ", ".join(_number(rng, 3) for _ in range(4)) + "]"


def _span(rng: random.Random) -> str:
    sep = rng.choice((",", ", "))  # the reference data writes both
    return "{" + _number(rng, 2) + sep + _number(rng, 2) + "}"


def _sentence(rng: random.Random) -> str:
    """One line of generated grounding Q&A text."""
    thing = f"{rng.choice(_COLOURS)} {rng.choice(_SHAPES)} {rng.choice(_OBJECTS)}"
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
    relation = " ".join(rng.choice(_RELATIONS) for _ in range(rng.randint(1, 3)))
    choices = (
        f"Where is the {thing} {relation} the {rng.choice(_OBJECTS)}?",
        f"The {thing} is at {_box(rng)}.",
        f"When does the {rng.choice(_OBJECTS)} {rng.choice(_VERBS)}?",
        f"The {rng.choice(_OBJECTS)} {rng.choice(_VERBS)} {words} in {_span(rng)}.",
        f"{thing.capitalize()} {relation} {words} {_box(rng)}{_box(rng)}, {rng.randint(0, 2024)}.",
        f"<image>\n{words.capitalize()}, {thing}?",
        (
            f"In the {rng.choice(_SCENES)}, {rng.choice(_SOUNDS)} {rng.choice(_SOUNDS)} while the "
            f"{rng.choice(_OBJECTS)} {rng.choice(_ACTIONS)} {words}."
        ),
        rng.choice(_TEMPLATE_TEXT) + " " + words,
    )
    return rng.choice(choices)


def tiny_tokenizer_corpus(n_lines: int = 20_000, seed: int = 0) -> list[str]:
    """The generated training text of the shipped tokenizer (deterministic for ``seed``)."""
    rng = random.Random(seed)
    vocabulary = _COLOURS + _SHAPES + _OBJECTS + _RELATIONS + _VERBS + _WORDS + _SCENES + _SOUNDS + _ACTIONS
    lines = [_sentence(rng) for _ in range(n_lines)]
    # every word also alone and capitalised, so rare ones still get whole-word tokens
    return lines + [f"{w} {w.capitalize()}" for w in vocabulary] + list(_TEMPLATE_TEXT)


def train_tiny_tokenizer(vocab_size: int = 2000, seed: int = 0) -> PreTrainedTokenizerFast:
    """Train the shipped tokenizer: byte-level BPE, digits split one per token like LLaMA's.

    The full byte alphabet is in the vocabulary, so any text encodes and decodes exactly.
    The BOS token is added by ``tokenizer(text)`` (as LLaMA's does); the processor builds
    ids itself and adds it explicitly.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),  # "2024" -> 2 0 2 4, as in LLaMA
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(tiny_tokenizer_corpus(seed=seed), trainer)
    unk, bos, eos, pad = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        add_bos_token=True,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,  # exact round trip: "[0.1 , 0.2]" stays as is
        model_max_length=4096,  # Vicuna v1.5's context, so recipes can swap tokenizers freely
        padding_side="right",
    )


def write_tiny_tokenizer(out_dir: str | os.PathLike = BUILTIN_DIR, vocab_size: int = 2000, seed: int = 0) -> list[str]:
    """Train the tiny tokenizer and save it to ``out_dir``; returns the written file names."""
    tokenizer = train_tiny_tokenizer(vocab_size=vocab_size, seed=seed)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = tokenizer.save_pretrained(str(out_dir))
    return sorted(os.path.basename(p) for p in written)
