"""The one error a conversion stops with."""


class ConversionError(ValueError):
    """The source checkpoint cannot be converted; the message names the file and keys."""
