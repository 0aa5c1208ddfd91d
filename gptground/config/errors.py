"""The one error type for bad recipes."""


class RecipeError(ValueError):
    """A recipe key is unknown, misspelt, of the wrong type or out of range.

    The message names the dotted key path and, where known, the file it came from.
    """
