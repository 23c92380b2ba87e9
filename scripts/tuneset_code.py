"""Code families of the tuning set (see build_tuneset.py). Each record carries ``check``: tests that
the response must pass (``kind="function"``) or, for programs in the input, ``kind="stdout"``."""

from __future__ import annotations

import contextlib
import io
import string
import textwrap

FRAMES = [
    "Implement `{sig}`: a Python function that {d}.",
    "Define `{sig}` in Python so that it {d}.",
    "Create a Python function named `{name}` that {d}.",
    "Code up `{sig}`, which {d}.",
    "In Python, give me `{sig}`; it {d}.",
]
WORDS = ["apple", "river", "candle", "mango", "tiger", "pepper", "window", "banana", "orbit", "lemon",
         "garden", "rocket", "violet", "cactus", "anchor", "parrot", "marble", "zebra", "pillow", "kettle"]  # fmt: skip


def _fn(rng, name, sig, d, code, tests):
    ins = rng.choice(FRAMES).format(sig=sig, name=name, d=d)
    return ins, "", textwrap.dedent(code).strip("\n"), {"kind": "function", "tests": "\n".join(tests)}


def count_letter(rng):
    c = rng.choice(string.ascii_lowercase[:20])
    name = f"count_{c}"
    samples = ["Banana bread", "Carrot Cake", "Hello World", "Mississippi", "a quick brown fox", ""]
    tests = [f"assert {name}({s!r}) == {sum(ch == c for ch in s.lower())}" for s in samples]
    code = f"""
    def {name}(text):
        return text.lower().count({c!r})
    """
    return _fn(
        rng,
        name,
        f"{name}(text)",
        f"returns how many times the letter '{c}' occurs in text, ignoring case",
        code,
        tests,
    )


def long_words(rng):
    n = rng.randint(2, 9)
    lists = [["a", "tree", "elephant", "sky", "mountain", "in"], [], ["abcdefghij", "xy"]]
    tests = [f"assert longer_than_{n}({w!r}) == {[x for x in w if len(x) > n]!r}" for w in lists]
    code = f"""
    def longer_than_{n}(words):
        return [w for w in words if len(w) > {n}]
    """
    return _fn(
        rng,
        f"longer_than_{n}",
        f"longer_than_{n}(words)",
        f"returns the words in the list words that have more than {n} letters, keeping their order",
        code,
        tests,
    )


def sum_multiples(rng):
    k = rng.randint(2, 13)
    tests = [
        f"assert sum_multiples_of_{k}({lim}) == {sum(x for x in range(1, lim) if x % k == 0)}"
        for lim in (1, k, k + 1, 50, 101)
    ]
    code = f"""
    def sum_multiples_of_{k}(limit):
        return sum(range({k}, limit, {k}))
    """
    return _fn(
        rng,
        f"sum_multiples_of_{k}",
        f"sum_multiples_of_{k}(limit)",
        f"returns the sum of the positive multiples of {k} that are smaller than limit",
        code,
        tests,
    )


def every_nth(rng):
    n = rng.randint(2, 6)
    lists = [list(range(10)), [], ["a", "b", "c"]]
    tests = [f"assert every_{n}th({x!r}) == {[v for i, v in enumerate(x) if i % n == 0]!r}" for x in lists]
    code = f"""
    def every_{n}th(items):
        return items[::{n}]
    """
    return _fn(
        rng,
        f"every_{n}th",
        f"every_{n}th(items)",
        f"returns every {n}th element of the list items, starting with the first one",
        code,
        tests,
    )


def divisible(rng):
    k = rng.randint(2, 13)
    tests = [f"assert divisible_by_{k}({v}) is {v % k == 0}" for v in (0, k, k + 1, 7 * k, 100)]
    code = f"""
    def divisible_by_{k}(n):
        return n % {k} == 0
    """
    return _fn(
        rng,
        f"divisible_by_{k}",
        f"divisible_by_{k}(n)",
        f"returns True if the integer n is a multiple of {k} and False otherwise",
        code,
        tests,
    )


def repeat_word(rng):
    n = rng.randint(2, 7)
    tests = [f"assert repeat_{n}({w!r}) == {' '.join([w] * n)!r}" for w in ("hi", "go", "x")]
    code = f"""
    def repeat_{n}(word):
        return " ".join([word] * {n})
    """
    return _fn(
        rng,
        f"repeat_{n}",
        f"repeat_{n}(word)",
        f"returns word written {n} times, separated by single spaces",
        code,
        tests,
    )


def add_k(rng):
    k = rng.randint(2, 20)
    lists = [[1, 2, 3], [], [-5, 0, 10]]
    tests = [f"assert add_{k}({x!r}) == {[v + k for v in x]!r}" for x in lists]
    tests.append(f"xs = [1]\nadd_{k}(xs)\nassert xs == [1]")
    code = f"""
    def add_{k}(nums):
        return [x + {k} for x in nums]
    """
    return _fn(
        rng,
        f"add_{k}",
        f"add_{k}(nums)",
        f"returns a new list with {k} added to every number in nums, leaving nums unchanged",
        code,
        tests,
    )


def count_above(rng):
    t = rng.randint(0, 50)
    lists = [[t - 1, t, t + 1, t + 10], [], list(range(0, 100, 7))]
    tests = [f"assert count_above_{t}({x!r}) == {sum(v > t for v in x)}" for x in lists]
    code = f"""
    def count_above_{t}(nums):
        return sum(1 for x in nums if x > {t})
    """
    return _fn(
        rng,
        f"count_above_{t}",
        f"count_above_{t}(nums)",
        f"returns how many numbers in nums are strictly greater than {t}",
        code,
        tests,
    )


def starting_with(rng):
    c = rng.choice("abcdefghlmprstw")
    lists = [WORDS, [], ["Apple", c + "x", c.upper() + "y"]]
    tests = [f"assert starts_with_{c}({x!r}) == {[w for w in x if w[:1] == c]!r}" for x in lists]
    code = f"""
    def starts_with_{c}(words):
        return [w for w in words if w.startswith({c!r})]
    """
    return _fn(
        rng,
        f"starts_with_{c}",
        f"starts_with_{c}(words)",
        f"returns the words in words that begin with the lowercase letter '{c}'",
        code,
        tests,
    )


def zero_pad(rng):
    w = rng.randint(2, 8)
    tests = [f"assert pad_to_{w}({v}) == {str(v).zfill(w)!r}" for v in (7, 42, 12345678, 0)]
    code = f"""
    def pad_to_{w}(n):
        return str(n).zfill({w})
    """
    return _fn(
        rng,
        f"pad_to_{w}",
        f"pad_to_{w}(n)",
        f"returns the non-negative integer n as a string with leading zeros up to width {w}",
        code,
        tests,
    )


def clip(rng):
    lo = rng.randint(-10, 10)
    hi = lo + rng.randint(1, 30)
    lists = [[lo - 5, lo, (lo + hi) // 2, hi, hi + 5], []]
    tests = [f"assert clip_values({x!r}) == {[min(max(v, lo), hi) for v in x]!r}" for x in lists]
    code = f"""
    def clip_values(nums):
        return [min(max(x, {lo}), {hi}) for x in nums]
    """
    return _fn(
        rng,
        "clip_values",
        "clip_values(nums)",
        f"returns nums with values below {lo} raised to {lo} and values above {hi} lowered to {hi}",
        code,
        tests,
    )


def powers(rng):
    p = rng.randint(2, 9)
    tests = [f"assert powers_of_{p}({n}) == {[p**i for i in range(n)]!r}" for n in (0, 1, 5)]
    code = f"""
    def powers_of_{p}(n):
        return [{p} ** i for i in range(n)]
    """
    return _fn(
        rng,
        f"powers_of_{p}",
        f"powers_of_{p}(n)",
        f"returns the list [{p}**0, {p}**1, ...] with n elements",
        code,
        tests,
    )


def shorten(rng):
    n = rng.randint(3, 12)
    samples = ["short", "a much longer sentence here", "x" * n, "y" * (n + 1)]
    tests = [f"assert shorten_{n}({s!r}) == {(s[:n] + '...') if len(s) > n else s!r}" for s in samples]
    code = f"""
    def shorten_{n}(text):
        if len(text) > {n}:
            return text[:{n}] + "..."
        return text
    """
    return _fn(
        rng,
        f"shorten_{n}",
        f"shorten_{n}(text)",
        f"returns the first {n} characters of text plus '...' when text is longer than {n}, else text itself",
        code,
        tests,
    )


# fixed specs: name, signature, description, code, tests
FIXED = [
    ("is_sorted", "is_sorted(nums)", "returns True if nums is in non-decreasing order",
     "def is_sorted(nums):\n    return all(a <= b for a, b in zip(nums, nums[1:]))",
     ["assert is_sorted([1, 2, 2, 5])", "assert not is_sorted([3, 1])", "assert is_sorted([])"]),
    ("unique_in_order", "unique_in_order(items)", "returns the items without repeats, keeping the first occurrence of each",
     "def unique_in_order(items):\n    seen = set()\n    out = []\n    for x in items:\n        if x not in seen:\n            seen.add(x)\n            out.append(x)\n    return out",
     ["assert unique_in_order([3, 1, 3, 2, 1]) == [3, 1, 2]", "assert unique_in_order([]) == []"]),
    ("flatten_once", "flatten_once(lists)", "joins a list of lists into one flat list",
     "def flatten_once(lists):\n    return [x for sub in lists for x in sub]",
     ["assert flatten_once([[1, 2], [], [3]]) == [1, 2, 3]", "assert flatten_once([]) == []"]),
    ("letter_counts", "letter_counts(word)", "returns a dict mapping each character of word to how often it occurs",
     "def letter_counts(word):\n    counts = {}\n    for ch in word:\n        counts[ch] = counts.get(ch, 0) + 1\n    return counts",
     ["assert letter_counts('noon') == {'n': 2, 'o': 2}", "assert letter_counts('') == {}"]),
    ("digit_sum", "digit_sum(n)", "returns the sum of the decimal digits of the non-negative integer n",
     "def digit_sum(n):\n    return sum(int(d) for d in str(n))",
     ["assert digit_sum(0) == 0", "assert digit_sum(4096) == 19", "assert digit_sum(99) == 18"]),
    ("running_total", "running_total(nums)", "returns the list of cumulative sums of nums",
     "def running_total(nums):\n    out, total = [], 0\n    for x in nums:\n        total += x\n        out.append(total)\n    return out",
     ["assert running_total([1, 2, 3]) == [1, 3, 6]", "assert running_total([]) == []"]),
    ("chunks", "chunks(items, size)", "splits items into consecutive lists of length size (the last may be shorter)",
     "def chunks(items, size):\n    return [items[i:i + size] for i in range(0, len(items), size)]",
     ["assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]", "assert chunks([], 3) == []"]),
    ("invert_dict", "invert_dict(d)", "returns a new dict with keys and values swapped (values are unique)",
     "def invert_dict(d):\n    return {v: k for k, v in d.items()}",
     ["assert invert_dict({'a': 1, 'b': 2}) == {1: 'a', 2: 'b'}", "assert invert_dict({}) == {}"]),
    ("min_and_max", "min_and_max(nums)", "returns a tuple (smallest, largest) of a non-empty list nums",
     "def min_and_max(nums):\n    return min(nums), max(nums)",
     ["assert min_and_max([4, -2, 9]) == (-2, 9)", "assert min_and_max([5]) == (5, 5)"]),
    ("is_power_of_two", "is_power_of_two(n)", "returns True when the positive integer n is a power of two",
     "def is_power_of_two(n):\n    return n > 0 and n & (n - 1) == 0",
     ["assert is_power_of_two(1)", "assert is_power_of_two(64)", "assert not is_power_of_two(12)"]),
    ("word_lengths", "word_lengths(sentence)", "returns the length of each space-separated word of sentence, as a list",
     "def word_lengths(sentence):\n    return [len(w) for w in sentence.split()]",
     ["assert word_lengths('to be or not') == [2, 2, 2, 3]", "assert word_lengths('') == []"]),
    ("reverse_words", "reverse_words(sentence)", "returns sentence with the order of its words reversed",
     "def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))",
     ["assert reverse_words('one two three') == 'three two one'", "assert reverse_words('solo') == 'solo'"]),
    ("drop_vowels", "drop_vowels(text)", "returns text with every vowel (a, e, i, o, u, either case) removed",
     "def drop_vowels(text):\n    return ''.join(c for c in text if c.lower() not in 'aeiou')",
     ["assert drop_vowels('Education') == 'dctn'", "assert drop_vowels('xyz') == 'xyz'"]),
    ("count_capitals", "count_capitals(text)", "returns the number of uppercase letters in text",
     "def count_capitals(text):\n    return sum(1 for c in text if c.isupper())",
     ["assert count_capitals('Hello World') == 2", "assert count_capitals('abc') == 0"]),
    ("interleave", "interleave(a, b)", "alternates the elements of two equal-length lists a and b, starting with a",
     "def interleave(a, b):\n    return [x for pair in zip(a, b) for x in pair]",
     ["assert interleave([1, 3], [2, 4]) == [1, 2, 3, 4]", "assert interleave([], []) == []"]),
    ("dot", "dot(u, v)", "returns the dot product of two equal-length lists of numbers",
     "def dot(u, v):\n    return sum(x * y for x, y in zip(u, v))",
     ["assert dot([1, 2, 3], [4, 5, 6]) == 32", "assert dot([], []) == 0"]),
    ("safe_divide", "safe_divide(a, b)", "returns a / b, or None when b is zero",
     "def safe_divide(a, b):\n    if b == 0:\n        return None\n    return a / b",
     ["assert safe_divide(6, 3) == 2", "assert safe_divide(1, 0) is None"]),
    ("middle_item", "middle_item(items)", "returns the middle element of a list with an odd number of elements",
     "def middle_item(items):\n    return items[len(items) // 2]",
     ["assert middle_item([1, 2, 3]) == 2", "assert middle_item(['a']) == 'a'"]),
    ("snake_case", "snake_case(name)", "turns a camelCase name such as 'totalPrice' into snake_case ('total_price')",
     "def snake_case(name):\n    return ''.join('_' + c.lower() if c.isupper() else c for c in name)",
     ["assert snake_case('totalPrice') == 'total_price'", "assert snake_case('x') == 'x'", "assert snake_case('aBC') == 'a_b_c'"]),
    ("balanced", "balanced(text)", "returns True if the round brackets in text are balanced",
     "def balanced(text):\n    depth = 0\n    for c in text:\n        if c == '(':\n            depth += 1\n        elif c == ')':\n            depth -= 1\n            if depth < 0:\n                return False\n    return depth == 0",
     ["assert balanced('(a(b)c)')", "assert not balanced('())(')", "assert not balanced('((')", "assert balanced('')"]),
]  # fmt: skip


def fixed_spec(rng):
    name, sig, d, code, tests = rng.choice(FIXED)
    return (
        rng.choice(FRAMES).format(sig=sig, name=name, d=d),
        "",
        code,
        {"kind": "function", "tests": "\n".join(tests)},
    )


def _stdout(program: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(program, "<program>", "exec"), {})
    return buffer.getvalue().rstrip("\n")


OUTPUT_FRAMES = [
    "Predict the output of this Python program.",
    "What will this script print when it runs?",
    "Trace the code below and give its printed output.",
    "Without running it, say what this snippet prints.",
]


def predict_output(rng):
    kind = rng.randrange(7)
    if kind == 0:
        a = rng.randint(0, 5)
        b = a + rng.randint(2, 7)
        prog = f"total = 0\nfor i in range({a}, {b}):\n    total += i\nprint(total)"
    elif kind == 1:
        w, k = rng.choice(WORDS), rng.randint(1, 4)
        prog = f"s = {w!r}\nprint(s.upper()[:{k}] + s[-1])"
    elif kind == 2:
        nums = rng.sample(range(1, 30), 4)
        x = rng.randint(1, 40)
        prog = f"nums = {nums}\nnums.append({x})\nprint(len(nums), max(nums))"
    elif kind == 3:
        w = rng.choice(WORDS)
        c = rng.choice(sorted(set(w)))
        prog = (
            f"counts = {{}}\nfor ch in {w!r}:\n    counts[ch] = counts.get(ch, 0) + 1\nprint(counts[{c!r}])"
        )
    elif kind == 4:
        n = rng.randint(5, 200)
        prog = f"n = {n}\nsteps = 0\nwhile n > 1:\n    n //= 2\n    steps += 1\nprint(steps)"
    elif kind == 5:
        items = rng.sample(WORDS, 5)
        i = rng.randint(0, 2)
        j = rng.randint(i + 1, 5)
        prog = f"items = {items}\nprint(items[{i}:{j}])"
    else:
        x, y = rng.randint(2, 9), rng.randint(2, 9)
        prog = f"x = {x}\ny = {y}\nx, y = y, x * y\nprint(x, y)"
    return rng.choice(OUTPUT_FRAMES), prog, _stdout(prog), {"kind": "stdout"}


# bugs: description (base form), buggy code, fixed code, tests
BUGS = [
    ("return the sum 1 + 2 + ... + n",
     "def sum_to(n):\n    return sum(range(n))", "def sum_to(n):\n    return sum(range(1, n + 1))",
     ["assert sum_to(1) == 1", "assert sum_to(4) == 10"]),
    ("return the largest number in a non-empty list, even when all are negative",
     "def largest(nums):\n    best = 0\n    for x in nums:\n        if x > best:\n            best = x\n    return best",
     "def largest(nums):\n    best = nums[0]\n    for x in nums:\n        if x > best:\n            best = x\n    return best",
     ["assert largest([-3, -1, -7]) == -1", "assert largest([2, 9, 4]) == 9"]),
    ("tell whether a lowercase letter is a vowel",
     "def is_vowel(c):\n    return c in 'aeio'", "def is_vowel(c):\n    return c in 'aeiou'",
     ["assert is_vowel('u')", "assert is_vowel('a')", "assert not is_vowel('z')"]),
    ("return the mean of a non-empty list of numbers",
     "def mean(nums):\n    return sum(nums) / (len(nums) - 1)", "def mean(nums):\n    return sum(nums) / len(nums)",
     ["assert mean([2, 4]) == 3", "assert mean([5]) == 5"]),
    ("count the even numbers in a list",
     "def count_even(nums):\n    return sum(1 for n in nums if n % 2 == 1)",
     "def count_even(nums):\n    return sum(1 for n in nums if n % 2 == 0)",
     ["assert count_even([1, 2, 4, 7]) == 2", "assert count_even([]) == 0"]),
    ("return a reversed copy of a list",
     "def reversed_copy(items):\n    return items.reverse()", "def reversed_copy(items):\n    return items[::-1]",
     ["assert reversed_copy([1, 2, 3]) == [3, 2, 1]", "xs = [1, 2]\nreversed_copy(xs)\nassert xs == [1, 2]"]),
    ("compute n! for a non-negative integer n",
     "def fact(n):\n    result = 0\n    for i in range(1, n + 1):\n        result *= i\n    return result",
     "def fact(n):\n    result = 1\n    for i in range(1, n + 1):\n        result *= i\n    return result",
     ["assert fact(0) == 1", "assert fact(5) == 120"]),
    ("convert a Celsius temperature to Fahrenheit",
     "def to_fahrenheit(c):\n    return c * 9 / 5 - 32", "def to_fahrenheit(c):\n    return c * 9 / 5 + 32",
     ["assert to_fahrenheit(100) == 212", "assert to_fahrenheit(0) == 32"]),
    ("return the last element of a non-empty list",
     "def last(items):\n    return items[len(items)]", "def last(items):\n    return items[-1]",
     ["assert last([1, 2, 3]) == 3", "assert last(['x']) == 'x'"]),
    ("join a list of words into one string with single spaces between them",
     "def join_words(words):\n    return ''.join(words)", "def join_words(words):\n    return ' '.join(words)",
     ["assert join_words(['a', 'b']) == 'a b'", "assert join_words([]) == ''"]),
    ("return True when a string is empty or only whitespace",
     "def blank(s):\n    return s.strip() == ' '", "def blank(s):\n    return s.strip() == ''",
     ["assert blank('   ')", "assert blank('')", "assert not blank(' a ')"]),
    ("return how many times x appears in items",
     "def occurrences(items, x):\n    count = 0\n    for item in items:\n        if item == x:\n            count = 1\n    return count",
     "def occurrences(items, x):\n    count = 0\n    for item in items:\n        if item == x:\n            count += 1\n    return count",
     ["assert occurrences([1, 2, 1, 1], 1) == 3", "assert occurrences([], 5) == 0"]),
]  # fmt: skip
BUG_FRAMES = [
    "This function should {d}, but it has a bug. Correct it.",
    "Find and repair the mistake: the function below is meant to {d}.",
    "The code below is supposed to {d}. Debug it.",
    "Something is wrong here; the function ought to {d}. Give the fixed version.",
]


def fix_bug(rng):
    d, buggy, fixed, tests = rng.choice(BUGS)
    return rng.choice(BUG_FRAMES).format(d=d), buggy, fixed, {"kind": "function", "tests": "\n".join(tests)}


def code_families():
    return [
        ("count-letter", "programmatic", count_letter),
        ("longer-than", "programmatic", long_words),
        ("sum-multiples", "programmatic", sum_multiples),
        ("every-nth", "programmatic", every_nth),
        ("divisible-by", "programmatic", divisible),
        ("repeat-word", "programmatic", repeat_word),
        ("add-constant", "programmatic", add_k),
        ("count-above", "programmatic", count_above),
        ("starts-with", "programmatic", starting_with),
        ("zero-pad", "programmatic", zero_pad),
        ("clip", "programmatic", clip),
        ("powers", "programmatic", powers),
        ("shorten", "programmatic", shorten),
        ("fixed-spec", "templated", fixed_spec),
        ("predict-output", "programmatic", predict_output),
        ("fix-bug", "templated", fix_bug),
    ]


HANDWRITTEN_CODE = [
    ("Give me a Python function `to_roman(n)` that converts an integer from 1 to 3999 into Roman numerals.", "",
     "def to_roman(n):\n    values = [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'), (90, 'XC'),\n              (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]\n    out = ''\n    for value, letters in values:\n        while n >= value:\n            out += letters\n            n -= value\n    return out",
     {"kind": "function", "tests": "assert to_roman(1994) == 'MCMXCIV'\nassert to_roman(4) == 'IV'\nassert to_roman(3999) == 'MMMCMXCIX'"}),
    ("I need `binary_search(items, target)` in Python: return the index of target in the sorted list items, or -1.", "",
     "def binary_search(items, target):\n    lo, hi = 0, len(items) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n        if items[mid] == target:\n            return mid\n        if items[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n    return -1",
     {"kind": "function", "tests": "assert binary_search([1, 3, 5, 7], 5) == 2\nassert binary_search([1, 3], 4) == -1\nassert binary_search([], 1) == -1"}),
    ("Make a Caesar cipher in Python: `shift(text, k)` moves each lowercase letter k places forward, wrapping z to a, and leaves other characters alone.", "",
     "def shift(text, k):\n    out = []\n    for c in text:\n        if 'a' <= c <= 'z':\n            out.append(chr((ord(c) - 97 + k) % 26 + 97))\n        else:\n            out.append(c)\n    return ''.join(out)",
     {"kind": "function", "tests": "assert shift('abc xyz', 2) == 'cde zab'\nassert shift('Hi!', 1) == 'Hj!'"}),
    ("Produce the FizzBuzz list for 1..n in Python as `fizzbuzz(n)`, returning strings.", "",
     "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n        if i % 15 == 0:\n            out.append('FizzBuzz')\n        elif i % 3 == 0:\n            out.append('Fizz')\n        elif i % 5 == 0:\n            out.append('Buzz')\n        else:\n            out.append(str(i))\n    return out",
     {"kind": "function", "tests": "assert fizzbuzz(5) == ['1', '2', 'Fizz', '4', 'Buzz']\nassert fizzbuzz(15)[-1] == 'FizzBuzz'"}),
    ("Rotate a list to the right by k positions in Python (`rotate(items, k)`), returning a new list.", "",
     "def rotate(items, k):\n    if not items:\n        return []\n    k %= len(items)\n    return items[-k:] + items[:-k]",
     {"kind": "function", "tests": "assert rotate([1, 2, 3, 4], 1) == [4, 1, 2, 3]\nassert rotate([1, 2], 4) == [1, 2]\nassert rotate([], 3) == []"}),
    ("How would I count the vowels in a string with a Python one-line function called `vowel_count`?", "",
     "def vowel_count(s):\n    return sum(c in 'aeiouAEIOU' for c in s)",
     {"kind": "function", "tests": "assert vowel_count('Queue') == 4\nassert vowel_count('rhythm') == 0"}),
    ("Turn this function into one that uses a dictionary comprehension.",
     "def squares_map(n):\n    d = {}\n    for i in range(n):\n        d[i] = i * i\n    return d",
     "def squares_map(n):\n    return {i: i * i for i in range(n)}",
     {"kind": "function", "tests": "assert squares_map(3) == {0: 0, 1: 1, 2: 4}\nassert squares_map(0) == {}"}),
    ("Python: `top_word(text)` should return the most frequent lowercase word in text (ties go to the word seen first).", "",
     "def top_word(text):\n    counts = {}\n    for w in text.lower().split():\n        counts[w] = counts.get(w, 0) + 1\n    return max(counts, key=counts.get)",
     {"kind": "function", "tests": "assert top_word('a b A c b a') == 'a'\nassert top_word('x y') == 'x'"}),
    ("Write `primes_below(n)` in Python using the sieve of Eratosthenes.", "",
     "def primes_below(n):\n    if n < 3:\n        return []\n    sieve = [True] * n\n    sieve[0] = sieve[1] = False\n    for i in range(2, int(n ** 0.5) + 1):\n        if sieve[i]:\n            for j in range(i * i, n, i):\n                sieve[j] = False\n    return [i for i, p in enumerate(sieve) if p]",
     {"kind": "function", "tests": "assert primes_below(20) == [2, 3, 5, 7, 11, 13, 17, 19]\nassert primes_below(2) == []"}),
    ("Make this function handle a missing key by returning 0 instead of raising KeyError.",
     "def stock(inventory, item):\n    return inventory[item]",
     "def stock(inventory, item):\n    return inventory.get(item, 0)",
     {"kind": "function", "tests": "assert stock({'pen': 3}, 'pen') == 3\nassert stock({}, 'ink') == 0"}),
    ("Python class exercise: a `Counter` class with `increment()` and a `value` attribute starting at 0.", "",
     "class Counter:\n    def __init__(self):\n        self.value = 0\n\n    def increment(self):\n        self.value += 1",
     {"kind": "function", "tests": "c = Counter()\nc.increment()\nc.increment()\nassert c.value == 2"}),
    ("Compute the sum of the main diagonal of a square matrix (list of lists) with a function `trace(m)`.", "",
     "def trace(m):\n    return sum(m[i][i] for i in range(len(m)))",
     {"kind": "function", "tests": "assert trace([[1, 2], [3, 4]]) == 5\nassert trace([]) == 0"}),
    ("Check whether two words use exactly the same letters, in Python, with `same_letters(a, b)`.", "",
     "def same_letters(a, b):\n    return sorted(a) == sorted(b)",
     {"kind": "function", "tests": "assert same_letters('listen', 'silent')\nassert not same_letters('aab', 'abb')"}),
    ("Python: return the number of days in a given month of a non-leap year, `days_in(month)` with month 1-12.", "",
     "def days_in(month):\n    return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]",
     {"kind": "function", "tests": "assert days_in(2) == 28\nassert days_in(12) == 31\nassert days_in(4) == 30"}),
    ("Use a generator: `countdown(n)` yields n, n-1, ..., 1.", "",
     "def countdown(n):\n    while n > 0:\n        yield n\n        n -= 1",
     {"kind": "function", "tests": "assert list(countdown(3)) == [3, 2, 1]\nassert list(countdown(0)) == []"}),
    ("Return a dictionary grouping words by their first letter, as `group_by_initial(words)`.", "",
     "def group_by_initial(words):\n    groups = {}\n    for w in words:\n        groups.setdefault(w[0], []).append(w)\n    return groups",
     {"kind": "function", "tests": "assert group_by_initial(['ant', 'bee', 'asp']) == {'a': ['ant', 'asp'], 'b': ['bee']}\nassert group_by_initial([]) == {}"}),
]  # fmt: skip
