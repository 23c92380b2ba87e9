"""Strict validators (instr_interp.checks) and the public functions that now use them: no modulo
wrap-around, no float truncation, no duplicates, errors before any forward pass."""

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp.checks import check_fraction, check_index, check_layer, check_layers, check_units
from instr_interp.interventions.neurons import ablate_neurons
from instr_interp.shift.concepts import concept_shares, down_projection, ffn_concepts
from instr_interp.shift.wordpairs import head_qk, head_word_pairs, model_word_pairs
from instr_interp.sparcom.experts import ablate_experts, find_ises
from instr_interp.sparcom.firing import NeuronFiring
from instr_interp.sparcom.selection import find_isns
from instr_interp.vectors.heads import head_effects
from instr_interp.vectors.instruction import add_vector, instruction_vector, sweep_layers, vector_from_heads
from instr_interp.vectors.tasks import Task

TASK = Task(
    name="caps",
    instruction="Capitalise the word.",
    pairs=[(w, w.upper()) for w in "cat dog sun tree moon sky red hat cup pen box car".split()],
)
WORDS = ["cat", "dog", "sun", "moon"]


@pytest.fixture(scope="module")
def moe():
    return ii.tiny_model(moe=True)


# ------------------------------------------------------------------------------------------------
# The validators


def test_check_layer(tiny):
    assert check_layer(tiny, 0) == 0 and check_layer(tiny, 1) == 1
    assert check_layer(tiny, -1) == 1 and check_layer(2, -2) == 0  # counted from the end, as hook_site does
    assert check_layer(2, np.int64(1)) == 1 and check_layer(2, torch.tensor(1)) == 1
    assert type(check_layer(2, np.int64(1))) is int
    for bad in (2, 5, 7, -3, 100):
        with pytest.raises(
            ValueError, match=r"layer must be an integer in \[-2, 2\) \(the model has 2 layers\)"
        ):
            check_layer(tiny, bad)
    for bad in (1.0, 0.5, True, False, torch.tensor(1.0), torch.tensor(True), "1", None, np.float32(1)):
        with pytest.raises(TypeError, match="must be an integer layer index"):
            check_layer(tiny, bad)
    with pytest.raises(ValueError, match="^injection layer must"):
        check_layer(2, 2, what="injection layer")
    with pytest.raises(TypeError, match="cfg.n_layers"):
        check_layer("model", 0)


def test_check_layers(tiny):
    assert check_layers(tiny, [1, 0]) == [1, 0]
    assert check_layers(tiny, (-1,)) == [1] and check_layers(tiny, range(2)) == [0, 1]
    assert check_layers(tiny, torch.tensor([0, 1])) == [0, 1] and check_layers(tiny, []) == []
    with pytest.raises(ValueError, match="duplicates: layer 1"):
        check_layers(tiny, [1, -1])
    with pytest.raises(ValueError, match="duplicates: layer 0"):
        check_layers(tiny, [0, 0])
    with pytest.raises(ValueError, match=r"in \[-2, 2\)"):
        check_layers(tiny, [0, 5])
    with pytest.raises(TypeError, match="integer layer index"):
        check_layers(tiny, [0, 1.0])
    for bad in (1, "01", 1.0, True):
        with pytest.raises(TypeError, match="sequence of layer indices"):
            check_layers(tiny, bad)
    with pytest.raises(TypeError, match="one-dimensional"):
        check_layers(tiny, torch.zeros(1, 2, dtype=torch.long))


def test_check_units_accepts_exact_integer_indices():
    want = torch.tensor([[0, 3], [1, 5]])
    for given in (
        want,
        want.int(),
        [[0, 3], [1, 5]],
        [(0, 3), (1, 5)],
        np.array([[0, 3], [1, 5]]),
        [[np.int64(0), 3], [1, torch.tensor(5)]],
        [torch.tensor([0, 3]), torch.tensor([1, 5])],
    ):
        got = check_units(given, (2, 8), names=("layer", "neuron"))
        assert got.dtype == torch.long and torch.equal(got, want)
    assert check_units([], (2, 8)).shape == (0, 2)
    assert check_units(torch.zeros(0, 2, dtype=torch.long), (2, 8)).shape == (0, 2)
    assert torch.equal(check_units([3, 1], (4,), names=("head",)), torch.tensor([3, 1]))
    assert torch.equal(check_units([torch.tensor(3), np.int64(1)], (4,)), torch.tensor([3, 1]))
    assert torch.equal(check_units([np.array([0, 3])], (2, 8)), torch.tensor([[0, 3]]))


def test_check_units_rejects_anything_inexact():
    shape, names = (2, 8), ("layer", "neuron")
    for bad in (
        torch.tensor([[0.0, 3.0]]),
        torch.tensor([[0.9, 3.2]]),
        torch.tensor([[True, False]]),
        np.array([[0.0, 3.0]]),
        [[0, 3.0]],
        [[0, True]],
        [[0, 3.7]],
        [[0, "3"]],
        [[0, torch.tensor(3.0)]],
    ):
        with pytest.raises(TypeError, match="integer"):
            check_units(bad, shape, names=names)
    with pytest.raises(TypeError, match="integer tensor or a list"):
        check_units("0,3", shape)
    with pytest.raises(ValueError, match=r"neuron -1 is out of range \[0, 8\) \(row 1\)"):
        check_units([[0, 3], [1, -1]], shape, names=names)  # no negative wrap-around
    with pytest.raises(ValueError, match=r"layer 2 is out of range \[0, 2\) \(row 0\)"):
        check_units([[2, 3]], shape, names=names)
    with pytest.raises(ValueError, match=r"must have shape \[n, 2\] \(layer, neuron\); got \(1, 3\)"):
        check_units([[0, 3, 4]], shape, names=names)  # no truncation to the first two columns
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        check_units(torch.tensor([0, 3]), shape, names=names)  # one flat pair is not a list of pairs
    with pytest.raises(ValueError, match=r"shape \[n\]"):
        check_units([[3]], (4,), names=("head",))
    with pytest.raises(ValueError, match=r"duplicates: \{'layer': 1, 'neuron': 5\}"):
        check_units([[1, 5], [0, 2], [1, 5]], shape, names=names)
    with pytest.raises(ValueError, match="one entry per column"):
        check_units([[0, 1]], shape, names=("layer",))


def test_check_fraction_and_index():
    assert (
        check_fraction(0.01) == 0.01 and check_fraction(1) == 1.0 and check_fraction(np.float64(0.5)) == 0.5
    )
    for bad in (0, 0.0, -0.1, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"top must be a fraction in \(0, 1\]"):
            check_fraction(bad)
    for bad in (True, False, "0.1", None, torch.tensor(0.5)):
        with pytest.raises(TypeError, match=r"fraction in \(0, 1\]"):
            check_fraction(bad)
    assert check_index(3, 4) == 3 and check_index(10**6) == 10**6
    with pytest.raises(ValueError, match=r"head must be in \[0, 4\); got 4"):
        check_index(4, 4, what="head")
    with pytest.raises(ValueError, match="got -1"):
        check_index(-1)
    for bad in (1.0, True, "1"):
        with pytest.raises(TypeError):
            check_index(bad, 4)


# ------------------------------------------------------------------------------------------------
# Public functions that validate (on the 2-layer tiny model). A float where an int is annotated is
# caught by the test-time type checker first (jaxtyping + beartype); the validators catch it for users.


def test_head_effects_rejects_layers_that_used_to_wrap(tiny):
    # layers=[5] used to become layer 1 (5 % 2) silently; it must raise, before any forward pass
    with pytest.raises(ValueError, match=r"layers entry must be an integer in \[-2, 2\)"):
        head_effects(tiny, TASK, layers=[5])
    with pytest.raises(ValueError, match="duplicates"):
        head_effects(tiny, TASK, layers=[1, -1])
    with pytest.raises(TypeError):
        head_effects(tiny, TASK, layers=[0.0])


def test_instruction_vector_rejects_layers_that_used_to_wrap(tiny):
    means = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(0))
    # layer=7 used to become layer 1 (7 % 2) silently
    with pytest.raises(ValueError, match=r"layer must be an integer in \[-2, 2\)"):
        instruction_vector(tiny, TASK, layer=7, progress=False)
    with pytest.raises(TypeError):
        instruction_vector(tiny, TASK, layer=1.0, progress=False)
    with pytest.raises(ValueError, match="candidate_layers"):
        instruction_vector(tiny, TASK, candidate_layers=[0, 3], progress=False)
    with pytest.raises(TypeError):
        instruction_vector(tiny, TASK, means=means, heads=[[1, 2.0]], layer=0, sweep=False, progress=False)
    with pytest.raises(ValueError, match="duplicates"):
        instruction_vector(
            tiny, TASK, means=means, heads=[[1, 2], [1, 2]], layer=0, sweep=False, progress=False
        )
    with pytest.raises(ValueError, match="head 4 is out of range"):
        instruction_vector(tiny, TASK, means=means, heads=[[1, 4]], layer=0, sweep=False, progress=False)
    # valid negative layer: the last layer, the same vector as layer=1
    a = instruction_vector(tiny, TASK, means=means, heads=[[1, 2]], layer=-1, sweep=False, progress=False)
    b = instruction_vector(tiny, TASK, means=means, heads=[[1, 2]], layer=1, sweep=False, progress=False)
    assert a.layer == b.layer == 1 and torch.equal(a.vector, b.vector)
    with pytest.raises(TypeError):
        vector_from_heads(tiny, means, torch.tensor([[1.0, 2.0]]))


def test_add_vector_and_sweep_validate_the_layer(tiny):
    vec = torch.ones(64)
    for bad in (2, -3):
        with pytest.raises(ValueError, match="layer must be"):
            with add_vector(tiny, vec, layer=bad):
                pass
    with pytest.raises(TypeError):
        with add_vector(tiny, vec, layer=1.0):
            pass
    with pytest.raises(ValueError, match="layers entry must be"):
        sweep_layers(tiny, vec, TASK, layers=[0, 2], progress=False)


def test_ablate_neurons_rejects_float_bool_duplicate_and_wrapping_indices(tiny):
    for bad in (
        torch.tensor([[0.0, 3.0]]),
        torch.tensor([[0, 3.9]]),
        [[0, 3.0]],
        torch.tensor([[True, True]]),
    ):
        with pytest.raises(TypeError):
            with ablate_neurons(tiny, bad):
                pass
    for bad, match in (
        ([[0, -1]], "neuron -1 is out of range"),
        ([[2, 0]], "layer 2 is out of range"),
        ([[0, 128]], "neuron 128 is out of range"),
        ([[0, 1], [0, 1]], "duplicates"),
        ([[0, 1, 2]], r"shape \[n, 2\]"),
    ):
        with pytest.raises(ValueError, match=match):
            with ablate_neurons(tiny, bad):
                pass
    # a list of int pairs acts exactly as the tensor
    tokens = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad(), ablate_neurons(tiny, [[0, 3], [1, 5]]):
        from_list = tiny(tokens)
    with torch.no_grad(), ablate_neurons(tiny, torch.tensor([[0, 3], [1, 5]])):
        from_tensor = tiny(tokens)
    torch.testing.assert_close(from_list, from_tensor, atol=0, rtol=0)
    assert not [n for n, hp in tiny.hook_dict.items() if hp.has_hooks()]


def test_ablate_experts_validates(moe):
    for bad in (torch.tensor([[0.0, 1.0]]), [[0, True]]):
        with pytest.raises(TypeError):
            with ablate_experts(moe, bad):
                pass
    for bad, match in (
        ([[0, 4]], "expert 4 is out of range"),
        ([[0, -1]], "expert -1"),
        ([[0, 1], [0, 1]], "duplicates"),
    ):
        with pytest.raises(ValueError, match=match):
            with ablate_experts(moe, bad):
                pass


def test_top_fractions_are_checked_before_the_pass(tiny, moe, data):
    for bad in (0, 1.5, -0.01):
        with pytest.raises(ValueError, match=r"top must be a fraction in \(0, 1\]"):
            find_isns(tiny, data, top=bad, progress=False)
        with pytest.raises(ValueError, match=r"top must be a fraction in \(0, 1\]"):
            find_ises(moe, data, top=bad, progress=False)
    with pytest.raises(TypeError):
        find_isns(tiny, data, top=True, progress=False)


def test_neuron_firing_layers(tiny, data):
    with pytest.raises(TypeError):
        NeuronFiring(layers=[0.5])
    with pytest.raises(ValueError, match="got -1"):
        NeuronFiring(layers=[-1])
    with pytest.raises(ValueError, match="layers entry must be"):
        ii.run(tiny, data.sample(per_category=1), [NeuronFiring(layers=[2])], progress=False)
    with pytest.raises(ValueError, match="duplicates"):
        ii.run(tiny, data.sample(per_category=1), [NeuronFiring(layers=[1, 1])], progress=False)


def test_shift_functions_validate_layers_and_heads(tiny):
    for bad in (2, 7):
        with pytest.raises(ValueError, match="layer must be"):
            down_projection(tiny, bad)
        with pytest.raises(ValueError, match="layer must be"):
            ffn_concepts(tiny, bad, n_components=2, vocabulary=WORDS)
        with pytest.raises(ValueError, match="layer must be"):
            head_qk(tiny, bad)
    with pytest.raises(TypeError):
        down_projection(tiny, 1.0)
    # a negative layer counts from the end: the same weights as the last layer
    for a, b in zip(head_qk(tiny, -1), head_qk(tiny, 1)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(down_projection(tiny, -1), down_projection(tiny, 1), atol=0, rtol=0)
    with pytest.raises(ValueError, match="heads must be valid indices: head 4 is out of range"):
        head_word_pairs(tiny, 0, 4, vocabulary=WORDS, reference=WORDS)
    with pytest.raises(TypeError):
        head_word_pairs(tiny, 0, 1.0, vocabulary=WORDS, reference=WORDS)
    with pytest.raises(ValueError, match="duplicates"):
        model_word_pairs(tiny, heads=[1, 1], vocabulary=WORDS, reference=WORDS, progress=False)
    with pytest.raises(ValueError, match="duplicates"):
        model_word_pairs(tiny, layers=[0, -2], vocabulary=WORDS, reference=WORDS, progress=False)
    with pytest.raises(ValueError, match="layers entry must be"):
        concept_shares(tiny, [0, 3], vocabulary=WORDS, progress=False)
