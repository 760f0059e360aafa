"""A library of the project, installed editable (`-e ./libs/mylib`): its code is read where it lies."""
__version__ = "1.0"


def scale(values):
    return [2 * v for v in values]
