import pytest
import torch

from instr_interp.engine import last_token_logits, pad_rows
from instr_interp.vectors.tasks import (
    ICL_TASKS,
    Task,
    TaskScore,
    answer_token,
    evaluate_task,
    icl_task,
)
from tests.typecheck import bad_input

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}


def number_words(n: int) -> str:
    if n == 100:
        return "one hundred"
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + (f"-{ONES[ones]}" if ones else "")


IRREGULAR_PLURALS = {
    "child": "children",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "person": "people",
    "ox": "oxen",
}
F_TO_VES = {"knife", "leaf", "wolf", "life", "wife", "half", "shelf", "thief"}
O_TO_OES = {"potato", "tomato", "hero"}


def plural(word: str) -> str:
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in F_TO_VES:
        return word[:-2] + "ves" if word.endswith("fe") else word[:-1] + "ves"
    if word in O_TO_OES:
        return word + "es"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def test_builtin_tasks_are_verified():
    assert len(ICL_TASKS) >= 8
    for name in ICL_TASKS:
        task = icl_task(name)
        # at least 40 pairs, except where answers that share a first token with another answer under
        # the bundled tokenizers were removed (number words share their tens: 19 remain)
        assert len(task.pairs) >= (
            19 if name == "number_word" else 30 if name == "lowercase_uppercase" else 40
        ), name
        xs = [x for x, _ in task.pairs]
        assert len(set(xs)) == len(xs), name
        assert all(x.strip() == x and y.strip() == y and x and y for x, y in task.pairs), name
    assert all(y == x.upper() and x == x.lower() for x, y in icl_task("lowercase_uppercase").pairs)
    assert all(y == number_words(int(x)) for x, y in icl_task("number_word").pairs)
    assert all(y == plural(x) for x, y in icl_task("singular_plural").pairs)
    regular = [(x, y) for x, y in icl_task("present_past").pairs if y.endswith("ed")]
    assert len(regular) >= 8 and all(y in (x + "ed", x + "d") for x, y in regular)
    assert dict(icl_task("antonym").pairs)["hot"] == "cold"
    assert dict(icl_task("country_capital").pairs)["Japan"] == "Tokyo"
    with pytest.raises(ValueError, match="No built-in task"):
        icl_task("nope")


def test_prompt_forms_hand_written():
    task = Task(name="t", instruction="Do it.", pairs=[("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")])
    assert task.zero_shot("x") == "Q: x\nA:"
    assert task.instructed("x") == "Do it.\n\nQ: x\nA:"
    text = task.few_shot("a", 3, seed=1)
    blocks = text.split("\n\n")
    assert blocks[-1] == "Q: a\nA:" and len(blocks) == 4
    demos = [tuple(line[3:] for line in b.split("\n")) for b in blocks[:-1]]
    assert all(y == x.upper() for x, y in demos) and "a" not in [x for x, _ in demos]
    assert text == task.few_shot("a", 3, seed=1)  # deterministic
    # corrupt: same demonstration inputs, labels permuted so no demo keeps its own
    for seed in range(20):
        clean = task.demonstrations("a", 3, seed=seed)
        bad = task.demonstrations("a", 3, seed=seed, corrupt=True)
        assert [x for x, _ in bad] == [x for x, _ in clean]
        assert sorted(y for _, y in bad) == sorted(y for _, y in clean)
        assert all(y != x.upper() for x, y in bad)
    with pytest.raises(ValueError, match="at least 2"):
        task.few_shot("a", 1, seed=0, corrupt=True)
    with pytest.raises(ValueError, match="cannot draw"):
        task.few_shot("a", 4, seed=0)
    with pytest.raises(ValueError, match="duplicate"):
        Task(name="t", instruction="x", pairs=[("a", "b"), ("a", "c")])


def test_split_and_records():
    task = icl_task("antonym")
    train, val = task.split(seed=3, n_val=10)
    assert len(val) == 10 and len(train) == len(task) - 10
    assert sorted(train.pairs + val.pairs) == sorted(task.pairs)
    assert train.split(seed=3, n_val=5)[1].pairs == train.split(seed=3, n_val=5)[1].pairs
    recs = val.records()
    assert len(recs) == 10 and recs[0].instruction == task.instruction
    assert (recs[0].input, recs[0].response) == val.pairs[0]
    assert recs.categories == ("antonym",) and recs[0].source == "icl"
    with pytest.raises(ValueError, match="n_val"):
        task.split(n_val=len(task))


def test_answer_token_is_space_prefixed(tiny):
    tok = tiny.tokenizer
    # byte-level: the first token of " cold" is the space byte
    assert tok.decode([answer_token(tiny, "cold")]) == " "
    assert answer_token(tiny, "cold") == tok(" cold", add_special_tokens=False)["input_ids"][0]


def test_last_token_logits_equal_full_forward(tiny):
    ids = [tiny.tokenizer(p)["input_ids"] for p in ["Q: hot\nA:", "Q: a much longer one\nA:", "x"]]
    tokens, last = pad_rows(ids, [0, 1, 2], 32, 0, "cpu")
    with torch.no_grad():
        got = last_token_logits(tiny, tokens, last)
        for r, seq in enumerate(ids):
            ref = tiny(torch.tensor([seq]))[0, -1]  # unpadded, independent of the helper
            torch.testing.assert_close(got[r], ref, atol=1e-5, rtol=1e-5)


def test_evaluate_task_matches_plain_loop_and_batch_size(tiny):
    task = Task(
        name="caps",
        instruction="Capitalise.",
        pairs=[(w, w.upper()) for w in ["cat", "dog", "sun", "tree", "moon", "sky", "red"]],
    )
    a = evaluate_task(tiny, task, shots=2, batch_size=1, progress=False)
    b = evaluate_task(tiny, task, shots=2, batch_size=5, progress=False)
    assert (a.frame["correct"] == b.frame["correct"]).all()
    torch.testing.assert_close(
        torch.tensor(a.frame["p_target"].values), torch.tensor(b.frame["p_target"].values), atol=1e-6, rtol=0
    )
    # independent: one unpadded forward per prompt
    for i, (x, y) in enumerate(task.pairs):
        prompt = task.few_shot(x, 2, seed=i)
        assert a.frame["prompt"][i] == prompt
        with torch.no_grad():
            probs = tiny(torch.tensor([tiny.tokenizer(prompt)["input_ids"]]))[0, -1].softmax(-1)
        target = tiny.tokenizer(" " + y, add_special_tokens=False)["input_ids"][0]
        assert a.frame["p_target"][i] == pytest.approx(float(probs[target]), abs=1e-6)
        assert bool(a.frame["correct"][i]) == (int(probs.argmax()) == target)
    assert a.accuracy == pytest.approx(float(a.frame["correct"].mean()))


def test_greedy_generation_matches_hf_generate(tiny):
    task = Task(name="caps", instruction="Capitalise.", pairs=[("cat", "CAT"), ("a longer input", "X")])
    score = evaluate_task(tiny, task, max_new_tokens=4, batch_size=2, progress=False)
    for i, (x, _) in enumerate(task.pairs):
        ids = torch.tensor([tiny.tokenizer(task.zero_shot(x))["input_ids"]])
        seq = ids
        with torch.no_grad():
            for _ in range(4):
                seq = torch.cat([seq, tiny(seq)[:, -1].argmax(-1, keepdim=True)], 1)
        assert score.frame["generation"][i] == tiny.tokenizer.decode(seq[0, ids.shape[1] :])
    assert score.exact_match == pytest.approx(float(score.frame["exact"].mean()))


def test_task_score_round_trip_and_errors(tiny, tmp_path):
    task = icl_task("number_word")
    score = evaluate_task(tiny, task, n=5, progress=False)
    score.save(tmp_path / "s")
    back = TaskScore.load(tmp_path / "s")
    assert back.accuracy == score.accuracy and list(back.frame["x"]) == list(score.frame["x"])
    assert score.plot().data
    with pytest.raises(ValueError, match="shots >= 1"):
        evaluate_task(tiny, task, form="few_shot", progress=False)
    with bad_input("Unknown form"):
        evaluate_task(tiny, task, form="chat", progress=False)
