"""Regenerate the shipped tiny tokenizer (``gptground/assets/tokenizer``).

Usage::

    python scripts/train_tokenizer.py [--out gptground/assets/tokenizer] [--vocab-size 2000] [--seed 0]

Training is deterministic: the same arguments write byte-identical files, which
``tests/gptground/test_tokenizer.py`` checks against the shipped copy.
"""

from __future__ import annotations

import argparse

from gptground.tokenizer import BUILTIN_DIR, write_tiny_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(BUILTIN_DIR), help="folder to write the tokenizer files to")
    parser.add_argument("--vocab-size", type=int, default=2000, help="BPE vocabulary size (upper bound)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated training corpus")
    args = parser.parse_args()
    files = write_tiny_tokenizer(args.out, vocab_size=args.vocab_size, seed=args.seed)
    print(f"wrote {', '.join(files)} to {args.out}")


if __name__ == "__main__":
    main()
