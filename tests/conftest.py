import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # before torch is imported (see instr_interp.engine)

import pytest  # noqa: E402

import instr_interp as ii  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    return ii.tiny_model(seed=0)


@pytest.fixture(scope="session")
def data():
    return ii.hexainst()


@pytest.fixture(scope="session")
def small_data(data):
    return data.sample(per_category=4, seed=1)
