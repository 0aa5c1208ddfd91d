"""Question and answer text for every task, and the ground truth kept for evaluation.

Each task has one function ``(scene, rng) -> Dialogue``. Boxes and spans in answers are
written with ``gptground.grounding`` in the GroundingGPT format (boxes 0-1 with 3
decimals on the padded square; spans ``{t1,t2}`` as fractions of the clip, 2 decimals).
Stage-2 answers are the bare box or span; stage-3 answers embed them in sentences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gptground.grounding import Box, Span, format_boxes, format_span
from gptground.synth.audio import AudioEvent, AudioScene
from gptground.synth.images import ImageScene
from gptground.synth.sound_source import SoundLocScene
from gptground.synth.videos import VideoScene
from gptground.synth.vocabulary import (
    audio_event_name,
    join_phrases,
    number_word,
    sentence,
)
from gptground.synth.world import Shape, noun_phrase

# In this order: the sound before the image, so that in a causal decoder the image's tokens
# can read the sound (sound_loc Acc@0.5 0.300 vs 0.275 with the image first, same trial).
PLACEHOLDERS = {"sound": "<sound>", "image": "<image>", "video": "<video>"}


@dataclass(frozen=True)
class Dialogue:
    """(human, gpt) turns without media placeholders, and the evaluation ground truth."""

    turns: tuple[tuple[str, str], ...]
    target: dict


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _box_text(shape: Shape, size: tuple[int, int]) -> str:
    return format_boxes([Box(*shape.box)], image_size=size)


def _span_text(span: Span, duration: float) -> str:
    return format_span(span, duration=duration)


def _box_target(task: str, size: tuple[int, int], shapes: list[Shape], phrases: list[str]) -> dict:
    """Ground truth of box answers: pixel boxes (x2, y2 exclusive) and the phrase of each."""
    return {"task": task, "boxes": [list(s.box) for s in shapes], "image_size": list(size), "phrases": phrases}


def _span_target(task: str, spans: list[Span], duration: float, phrases: list[str]) -> dict:
    """Ground truth of span answers: seconds from the clip start, and the phrase of each."""
    return {"task": task, "spans": [[round(s.start, 6), round(s.end, 6)] for s in spans],
            "duration": round(duration, 6), "phrases": phrases}


# ---- images -------------------------------------------------------------------------------

def _shape_phrases(scene: ImageScene) -> list[str]:
    return [_article(noun_phrase(s, scene.shapes)) for s in scene.shapes]


def image_caption(scene: ImageScene, rng: np.random.Generator) -> Dialogue:
    question = _pick(rng, ("Describe the image briefly.", "What is in this image?"))
    phrases = _shape_phrases(scene)
    return Dialogue(((question, sentence(join_phrases(phrases))),), {"task": "image_caption"})


def rec(scene: ImageScene, rng: np.random.Generator) -> Dialogue:
    shape = scene.shapes[rng.integers(len(scene.shapes))]
    query = "the " + noun_phrase(shape, scene.shapes)
    question = _pick(rng, ("Where is {}?", "Find {}.", "Give the box of {}.")).format(query)
    target = _box_target("rec", scene.size, [shape], [query])
    return Dialogue(((question, _box_text(shape, scene.size)),), {**target, "query": query})


def grounded_caption(scene: ImageScene, rng: np.random.Generator) -> Dialogue:
    question = _pick(rng, ("Describe the image and give the box of each shape.", "List the shapes with their boxes."))
    phrases = _shape_phrases(scene)
    grounded = [f"{p} {_box_text(s, scene.size)}" for p, s in zip(phrases, scene.shapes)]
    target = _box_target("grounded_caption", scene.size, list(scene.shapes), phrases)
    return Dialogue(((question, sentence(join_phrases(grounded))),), target)


def image_dialogue(scene: ImageScene, rng: np.random.Generator) -> Dialogue:
    """Which shapes -> where is one (box) -> how many -> where is another (box), if any."""
    shapes = list(scene.shapes)
    order = rng.permutation(len(shapes))
    first = shapes[order[0]]
    name = noun_phrase(first, shapes)
    n = len(shapes)
    turns = [
        ("What shapes are there?", sentence(join_phrases(_shape_phrases(scene)))),
        (f"Where is the {name}?", f"The {name} is at {_box_text(first, scene.size)}."),
        ("How many shapes are there?", "There is one shape." if n == 1 else f"There are {number_word(n)} shapes."),
    ]
    located, phrases = [first], ["the " + name]
    if n > 1:
        second = shapes[order[1]]
        other = noun_phrase(second, shapes)
        turns.append((f"And the {other}?", f"The {other} is at {_box_text(second, scene.size)}."))
        located.append(second)
        phrases.append("the " + other)
    return Dialogue(tuple(turns), _box_target("image_dialogue", scene.size, located, phrases))


# ---- videos -------------------------------------------------------------------------------

def _video_subject(scene: VideoScene) -> str:
    return noun_phrase(scene.event.shape, (scene.event.shape,) + scene.distractors)


def _video_event_sentence(scene: VideoScene, definite: bool = False) -> str:
    """'a red circle appears' / 'moves' / 'turns yellow' (no capital, no stop); 'the ...' if definite."""
    verb = {"appear": "appears", "move": "moves", "change_colour": f"turns {scene.event.new_colour}"}
    subject = _video_subject(scene)
    return f"{'the ' + subject if definite else _article(subject)} {verb[scene.event.kind]}"


def _video_caption_text(scene: VideoScene) -> str:
    still = "".join(f" {sentence(_article(noun_phrase(d, scene.distractors)) + ' stays still')}"
                    for d in scene.distractors)
    return sentence(_video_event_sentence(scene)) + still


def _video_question(scene: VideoScene, rng: np.random.Generator) -> str:
    subject, ev = _video_subject(scene), scene.event
    if ev.kind == "appear":
        return _pick(rng, ("When does the {} appear?", "When is the {} visible?")).format(subject)
    if ev.kind == "move":
        return _pick(rng, ("When does the {} move?", "When is the {} moving?")).format(subject)
    return _pick(rng, (f"When does the {subject} turn {ev.new_colour}?",
                       f"When is the {ev.shape.kind} {ev.new_colour}?"))


def video_caption(scene: VideoScene, rng: np.random.Generator) -> Dialogue:
    question = _pick(rng, ("What happens in the video?", "Describe the video briefly."))
    return Dialogue(((question, _video_caption_text(scene)),), {"task": "video_caption"})


def video_tg(scene: VideoScene, rng: np.random.Generator) -> Dialogue:
    question = _video_question(scene, rng)
    target = _span_target("video_tg", [scene.span], scene.duration, [_video_event_sentence(scene)])
    return Dialogue(((question, _span_text(scene.span, scene.duration)),), {**target, "query": question})


def video_dialogue(scene: VideoScene, rng: np.random.Generator) -> Dialogue:
    """What happens -> when (span in a sentence) -> does the distractor move, if any."""
    event = _video_event_sentence(scene, definite=True)
    turns = [
        ("What happens in the video?", _video_caption_text(scene)),
        (_video_question(scene, rng), sentence(f"{event} in {_span_text(scene.span, scene.duration)}")),
    ]
    for d in scene.distractors:
        other = noun_phrase(d, scene.distractors)
        turns.append((f"Does the {other} move?", f"No, the {other} stays still the whole time."))
    return Dialogue(tuple(turns), _span_target("video_dialogue", [scene.span], scene.duration, [event]))


# ---- audio --------------------------------------------------------------------------------

def _audio_phrase(event: AudioEvent) -> str:
    """'a high beep', 'someone saying "stop"': how a caption lists an event."""
    if event.kind == "spoken_word":
        return f'someone saying "{event.word}"'
    return _article(audio_event_name(event.kind, event.word))


def _audio_caption_text(scene: AudioScene) -> str:
    return sentence(", then ".join(_audio_phrase(e) for e in scene.events))


def _audio_question(event: AudioEvent, rng: np.random.Generator) -> str:
    name = audio_event_name(event.kind, event.word)
    return _pick(rng, ("When do you hear the {}?", "When is the {} heard?")).format(name)


def audio_caption(scene: AudioScene, rng: np.random.Generator) -> Dialogue:
    question = _pick(rng, ("What do you hear?", "Describe the sound briefly."))
    return Dialogue(((question, _audio_caption_text(scene)),), {"task": "audio_caption"})


def audio_tg(scene: AudioScene, rng: np.random.Generator) -> Dialogue:
    event = scene.target_event
    question = _audio_question(event, rng)
    target = _span_target("audio_tg", [event.span], scene.duration, ["the " + audio_event_name(event.kind, event.word)])
    return Dialogue(((question, _span_text(event.span, scene.duration)),), {**target, "query": question})


def audio_dialogue(scene: AudioScene, rng: np.random.Generator) -> Dialogue:
    """What do you hear -> when is the queried sound -> and the other one, if any."""
    events = [scene.target_event] + [e for i, e in enumerate(scene.events) if i != scene.target]
    names = ["the " + audio_event_name(e.kind, e.word) for e in events]
    where = [sentence(f"{name} is in {_span_text(e.span, scene.duration)}") for e, name in zip(events, names)]
    turns = [("What do you hear?", _audio_caption_text(scene)), (_audio_question(events[0], rng), where[0])]
    turns += [(f"And {name}?", answer) for name, answer in zip(names[1:], where[1:])]
    return Dialogue(tuple(turns), _span_target("audio_dialogue", [e.span for e in events], scene.duration, names))


# ---- image + sound ------------------------------------------------------------------------

def sound_loc(scene: SoundLocScene, rng: np.random.Generator) -> Dialogue:
    source, image = scene.source_shape, scene.image
    question = _pick(rng, ("Which object makes this sound?", "Which shape makes this sound?",
                           "Where is the object that makes this sound?"))
    query = "the " + noun_phrase(source, image.shapes)
    target = _box_target("sound_loc", image.size, [source], [query])
    return Dialogue(((question, _box_text(source, image.size)),), {**target, "query": query})


def sound_source_caption(scene: SoundLocScene, rng: np.random.Generator) -> Dialogue:
    """The sound alone, named by the shape that makes it: stage-1 alignment of the audio
    tokens with the colour and kind words that sound_loc must match in the image."""
    question = _pick(rng, ("What makes this sound?", "What kind of shape sounds like this?"))
    source = scene.source_shape
    return Dialogue(((question, sentence(f"a {source.colour} {source.kind}")),), {"task": "sound_source_caption"})


TASK_TEXT: dict[str, Callable[[object, np.random.Generator], Dialogue]] = {
    "image_caption": image_caption, "rec": rec, "grounded_caption": grounded_caption,
    "image_dialogue": image_dialogue, "video_caption": video_caption, "video_tg": video_tg,
    "video_dialogue": video_dialogue, "audio_caption": audio_caption, "audio_tg": audio_tg,
    "audio_dialogue": audio_dialogue, "sound_loc": sound_loc,
    "sound_source_caption": sound_source_caption,
}


def build_record(record_id: str, media: dict[str, str], dialogue: Dialogue, with_target: bool) -> dict:
    """A GroundingGPT annotation record.

    Args:
        media: modality key ('image', 'video', 'sound') -> path relative to the world folder.
        with_target: keep the ground truth under ``"target"`` (val and test splits).
    """
    unknown = set(media) - set(PLACEHOLDERS)
    if unknown:
        raise KeyError(f"record {record_id}: unknown media keys {sorted(unknown)}")
    prefix = "".join(f"{tag}\n" for key, tag in PLACEHOLDERS.items() if key in media)
    conversations = []
    for i, (human, gpt) in enumerate(dialogue.turns):
        conversations.append({"from": "human", "value": (prefix if i == 0 else "") + human})
        conversations.append({"from": "gpt", "value": gpt})
    record = {"id": record_id, **{k: media[k] for k in PLACEHOLDERS if k in media}, "conversations": conversations}
    if with_target:
        record["target"] = dialogue.target
    return record
