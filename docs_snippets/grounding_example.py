"""Write boxes and spans the way grounding models do, and read them back from model output.

Run (after `pip install -e .`): python docs_snippets/grounding_example.py
"""

from gptground.grounding import Box, Span, available_formats, format_boxes, format_span, get_format, parse

image_size = (640, 480)  # (width, height) of the original image, in pixels
cat = Box(64, 48, 320, 240)  # x1, y1, x2, y2 in pixels

# Training targets: GroundingGPT writes 0-1 coordinates on the image padded to a square.
print("groundinggpt:", "The cat " + format_boxes([cat], image_size))
print("timestamp:   ", "The dog barks in " + format_span(Span(4.5, 9.0), duration=30.0))
for name in ("shikra", "minigptv2", "kosmos2", "ferret"):
    print(f"{name + ':':13}", get_format(name).write_phrase("the cat", [cat], image_size))

# Model output back to pixels and seconds; bad output is reported, never raised.
answer = "A cat [0.100, 0.200, 0.500, 0.500] and a dog [0.9, 0.3, 0.6, 0.7]. The dog barks in {0.15, 0.30}. [0.1, 0."
result = parse(answer, image_size=image_size, duration=30.0)
for phrase in result.phrases:
    flags = ", ".join(sorted(f.value for f in phrase.flags)) or "none"
    print(f"{phrase.phrase!r}: boxes={[b.as_list() for b in phrase.boxes]} spans={phrase.spans} repairs={flags}")
for failure in result.failures:
    print(f"failure at {failure.offset} ({failure.snippet!r}): {failure.reason}")

print("formats:", ", ".join(available_formats()))
