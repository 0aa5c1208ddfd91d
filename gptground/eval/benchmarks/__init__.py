"""Readers for the grounding benchmarks in their published file layouts.

Each reader yields typed items (:mod:`gptground.eval.benchmarks.items`) with ground truth
in pixels (:class:`~gptground.grounding.types.Box`) or seconds
(:class:`~gptground.grounding.types.Span`). Files may be local paths or fsspec URLs. A
malformed record raises :class:`~gptground.eval.errors.EvalInputError` naming the file
and the line (or record).
"""

from gptground.eval.benchmarks.activitynet_captions import read_activitynet_captions
from gptground.eval.benchmarks.charades_sta import read_charades_durations, read_charades_sta
from gptground.eval.benchmarks.clotho import read_clotho
from gptground.eval.benchmarks.didemo import read_didemo
from gptground.eval.benchmarks.flickr30k_entities import read_flickr30k_entities
from gptground.eval.benchmarks.items import (
    AudioCaptionItem,
    GroundedPhrase,
    MomentItem,
    PhraseGroundingItem,
    RecItem,
    SoundSourceItem,
)
from gptground.eval.benchmarks.refcoco import read_minigptv2_ref, read_refer, read_shikra_rec
from gptground.eval.benchmarks.vggss import read_vggss

__all__ = [
    "AudioCaptionItem",
    "GroundedPhrase",
    "MomentItem",
    "PhraseGroundingItem",
    "RecItem",
    "SoundSourceItem",
    "read_activitynet_captions",
    "read_charades_durations",
    "read_charades_sta",
    "read_clotho",
    "read_didemo",
    "read_flickr30k_entities",
    "read_minigptv2_ref",
    "read_refer",
    "read_shikra_rec",
    "read_vggss",
]
