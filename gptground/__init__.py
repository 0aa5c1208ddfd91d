"""GPTGround: train and query multimodal grounding models."""

__version__ = "0.1.0"
