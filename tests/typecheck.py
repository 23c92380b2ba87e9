"""The run-time type checker the tests install on the package (see conftest.py): beartype, with
ints accepted where a float is annotated (PEP 484's numeric tower), checking every jaxtyping
shape and dtype annotation."""

import pytest
from beartype import BeartypeConf, beartype

typechecker = beartype(conf=BeartypeConf(is_pep484_tower=True))


def bad_input(match: str):
    """``pytest.raises`` for invalid arguments: the function's own ValueError, or the type checker's
    TypeCheckError when the annotation (a Literal, a shape) already rules the value out."""
    return pytest.raises((ValueError, TypeError), match=f"{match}|Type-check error")
