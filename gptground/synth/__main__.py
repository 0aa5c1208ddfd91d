"""``python -m gptground.synth --out DIR [key=value ...]``: generate the synthetic world."""

import sys

from gptground.synth.cli import main

if __name__ == "__main__":
    sys.exit(main())
