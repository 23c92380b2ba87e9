import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # before torch is imported (see instr_interp.engine.passes)

import importlib  # noqa: E402
import pkgutil  # noqa: E402

import pytest  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

import tests.typecheck  # noqa: E402,F401  (the hook below resolves the checker by name)

# Every jaxtyping annotation in the package is checked at run time during the tests (beartype);
# all submodules are imported inside the hook so lazily imported ones are checked too.
with install_import_hook("instr_interp", "tests.typecheck.typechecker"):
    import instr_interp as ii  # noqa: E402

    for _module in pkgutil.walk_packages(ii.__path__, "instr_interp."):
        importlib.import_module(_module.name)


@pytest.fixture(scope="session")
def tiny():
    return ii.tiny_model(seed=0)


@pytest.fixture(scope="session")
def data():
    return ii.hexainst()


@pytest.fixture(scope="session")
def small_data(data):
    return data.sample(per_category=4, seed=1)
