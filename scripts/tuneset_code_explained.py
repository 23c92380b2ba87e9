"""Handwritten code records whose answers mix prose and code (see build_tuneset.py): explain a
snippet or an error, compare approaches, state a complexity, write a function with a sentence of
explanation, add a docstring. Each carries ``check = {"kind": "explained", ...}``: the code it shows
is run (Python) and ``tests`` check the claims the prose makes (what is printed, what is raised,
what a query returns)."""

from __future__ import annotations

import textwrap


def _d(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def _ex(instruction, input_text, parts, code, tests, lang="python", setup=""):
    """A record whose response is ``parts`` (prose and code) joined by blank lines."""
    code = [_d(c) for c in code] if isinstance(code, list) else _d(code)
    check = {"kind": "explained", "lang": lang, "code": code, "tests": _d(tests)}
    if setup:
        check["setup"] = setup
    return instruction, _d(input_text), "\n\n".join(_d(p) for p in parts), check


SORT_BY_LEN = """
    words = ['pear', 'fig', 'banana']
    print(sorted(words, key=len))
"""
TYPE_ERROR_FIX = "age = 30\nprint(f'I am {age} years old')"
MEMBERSHIP = """
    allowed = ['red', 'green', 'blue']
    print('green' in allowed)      # scans the list

    allowed_set = set(allowed)
    print('green' in allowed_set)  # hash lookup
"""
PAIRS = """
    def pairs(items):
        out = []
        for a in items:
            for b in items:
                out.append((a, b))
        return out
"""
LEAP = "def is_leap(year):\n    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)"
CLAMP = "def clamp(x, low, high):\n    return max(low, min(x, high))"
CLAMP_DOC = '''
    def clamp(x, low, high):
        """Return x limited to the range [low, high].

        Values below low become low, values above high become high, and values
        in between are returned unchanged.
        """
        return max(low, min(x, high))
'''
LENGTHS_LOOP = "lengths = {}\nfor word in ['sun', 'moon', 'stars']:\n    lengths[word] = len(word)"
LENGTHS = "lengths = {word: len(word) for word in ['sun', 'moon', 'stars']}"
PRICES = "prices = {'apple': 0.5, 'pear': 0.7}\nprint(prices['banana'])"
PRICES_FIX = "prices = {'apple': 0.5, 'pear': 0.7}\nprint(prices.get('banana', 0.0))"
SQL_TOTALS = "SELECT customer, SUM(amount) AS total\nFROM orders\nGROUP BY customer\nORDER BY total DESC;"
SQL_HAVING = (
    "SELECT dept, COUNT(*) AS n\nFROM staff\nWHERE salary > 30000\nGROUP BY dept\nHAVING COUNT(*) > 2;"
)
SQL_TESTS_SETUP = """
    import sqlite3
    db = sqlite3.connect(':memory:')
"""
JS_FLOAT = "const close = Math.abs(0.1 + 0.2 - 0.3) < Number.EPSILON;\nconsole.log(close); // true"
JS_MAP = "const doubled = [1, 2, 3].map(x => x * 2);\nconsole.log(doubled); // [ 2, 4, 6 ]"
IS_EQ = "a = [1, 2]\nb = [1, 2]\nprint(a == b, a is b)  # True False"
REMOVE = "nums = [1, 2, 2, 3]\nfor n in nums:\n    if n == 2:\n        nums.remove(n)\nprint(nums)"
REMOVE_FIX = "nums = [1, 2, 2, 3]\nnums = [n for n in nums if n != 2]\nprint(nums)  # [1, 3]"
COMMON_WORDS = """
    from collections import Counter

    def most_common_words(text, n):
        return [word for word, _ in Counter(text.lower().split()).most_common(n)]
"""
BISECT = """
    from bisect import bisect_left

    def index_of(sorted_items, x):
        i = bisect_left(sorted_items, x)
        return i if i < len(sorted_items) and sorted_items[i] == x else -1
"""
SLICES = "s = 'keyboard'\nprint(s[::-1], s[2:5], s[-3:])"
DIGIT_SUM = """
    def digit_sum(n):
        if n < 10:
            return n
        return n % 10 + digit_sum(n // 10)
"""
SQUARES_LOOP = "total = 0\nfor i in range(1, 11):\n    total += i * i"
SQUARES_SUM = "total2 = sum(i * i for i in range(1, 11))"
COUNTER_LOOP = "i = 0\nfor name in names:\n    print(i, name)\n    i += 1"
ENUMERATE = "for i, name in enumerate(names):\n    print(i, name)"
DECORATOR = """
    def shout(func):
        def wrapper(*args):
            return func(*args).upper() + '!'
        return wrapper

    @shout
    def greet(name):
        return f'hello {name}'

    print(greet('sam'))  # HELLO SAM!
"""
TUPLE_KEY = "point = (3, 4)\ndistances = {point: 5.0}"
AREA = "def area(w, h):\n    result = w * h\n\nprint(area(3, 4))"
AREA_FIX = "def area(w, h):\n    return w * h\n\nprint(area(3, 4))  # 12"
NESTED_LOOP = "pairs = []\nfor x in range(3):\n    for y in 'ab':\n        pairs.append((x, y))"
NESTED = "pairs = [(x, y) for x in range(3) for y in 'ab']"
FIB_SLOW = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)"
FIB_FAST = """
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)
"""
INITIALS = "def initials(name):\n    return ''.join(part[0].upper() for part in name.split())"
INITIALS_DOC = '''
    def initials(name):
        """Return the capitalised first letter of each word in name.

        >>> initials('ada lovelace')
        'AL'
        """
        return ''.join(part[0].upper() for part in name.split())
'''
MAIN_GUARD = """
    def main():
        print('running as a script')

    if __name__ == '__main__':
        main()
"""
CSV_ROWS = """
    import csv

    def read_rows(path):
        with open(path, newline='') as f:
            return list(csv.DictReader(f))
"""
SHELL_WC = "wc -l *.txt"
SHELL_FIND = "find . -name '*.log' -mtime +30 -delete"

EXPLAINED_CODE = [
    _ex("What does this snippet do? Explain in a sentence or two.", SORT_BY_LEN,
        ["It sorts the list by the length of each word instead of alphabetically and prints the result, "
         "['fig', 'pear', 'banana']. sorted returns a new list, so words itself is left unchanged."],
        SORT_BY_LEN,
        """
        assert printed == "['fig', 'pear', 'banana']\\n"
        assert words == ['pear', 'fig', 'banana']
        """),
    _ex("This raises a TypeError. Why, and how do I fix it?", "age = 30\nprint('I am ' + age + ' years old')",
        ["Python will not join a string and an integer with +, so 'I am ' + age fails with "
         "\"TypeError: can only concatenate str (not \"int\") to str\". Convert the number to text first, "
         "for example with an f-string:", TYPE_ERROR_FIX],
        TYPE_ERROR_FIX,
        """
        assert printed == 'I am 30 years old\\n'
        try:
            'I am ' + age
        except TypeError as err:
            assert str(err) == 'can only concatenate str (not "int") to str'
        else:
            raise AssertionError('no TypeError')
        """),
    _ex("For checking membership many times, should I use a list or a set? Show both.", "",
        ["A set is the better choice. x in some_list scans the list item by item, which takes time "
         "proportional to its length, while x in some_set is a hash lookup that takes constant time on "
         "average. If you test membership often, convert the list to a set once:", MEMBERSHIP,
         "Both lines print True; only the speed differs, and the gap grows with the size of the collection."],
        MEMBERSHIP,
        """
        assert printed == 'True\\nTrue\\n'
        assert isinstance(allowed_set, set) and allowed_set == set(allowed)
        """),
    _ex("What is the time complexity of this function, and why?", PAIRS,
        ["It is O(n^2), where n is the length of items: the inner loop runs n times for each of the n "
         "passes of the outer loop, so n * n tuples are appended. The memory use grows the same way, "
         "because all n^2 pairs are stored in the returned list."],
        PAIRS,
        """
        assert len(pairs(list(range(7)))) == 49
        assert pairs([1, 2]) == [(1, 1), (1, 2), (2, 1), (2, 2)]
        """),
    _ex("I would like a Python function that tells whether a year is a leap year, plus a sentence explaining the rule.", "",
        [LEAP, "A year is a leap year if it is divisible by 4, except century years, which must also be "
         "divisible by 400 - so 2000 was a leap year but 1900 was not."],
        LEAP,
        """
        import calendar
        assert all(is_leap(y) == calendar.isleap(y) for y in range(1600, 2401))
        assert is_leap(2000) and not is_leap(1900)
        """),
    _ex("Add a docstring to this function.", CLAMP, [CLAMP_DOC], CLAMP_DOC,
        """
        assert clamp(5, 0, 10) == 5 and clamp(-3, 0, 10) == 0 and clamp(12, 0, 10) == 10
        assert clamp.__doc__.startswith('Return x limited to the range [low, high].')
        """),
    _ex("Convert this loop into a comprehension and explain the change in one sentence.", LENGTHS_LOOP,
        [LENGTHS, "The dictionary comprehension builds the same word-to-length mapping in a single "
         "expression, instead of creating an empty dict and filling it one key at a time."],
        LENGTHS,
        """
        loop = {}
        for word in ['sun', 'moon', 'stars']:
            loop[word] = len(word)
        assert lengths == loop == {'sun': 3, 'moon': 4, 'stars': 5}
        """),
    _ex("Why does this crash with a KeyError, and what is a safer version?", PRICES,
        ["The dictionary has no 'banana' key, and indexing a dict with a missing key raises KeyError. "
         "The get method returns a default value instead:", PRICES_FIX,
         "This prints 0.0 when the fruit is missing."],
        PRICES_FIX,
        """
        assert printed == '0.0\\n'
        try:
            prices['banana']
        except KeyError:
            pass
        else:
            raise AssertionError('no KeyError')
        """),
    _ex("Give a SQL query that lists each customer's total spending, highest first, and explain it briefly.",
        "Table: orders(customer TEXT, amount REAL)",
        [SQL_TOTALS, "GROUP BY collapses each customer's rows into one, SUM adds up their order amounts, "
         "and ORDER BY total DESC puts the biggest spender first."],
        SQL_TOTALS,
        SQL_TESTS_SETUP + """
    db.execute('CREATE TABLE orders(customer TEXT, amount REAL)')
    db.executemany('INSERT INTO orders VALUES (?, ?)', [('ann', 5), ('bob', 20), ('ann', 30), ('cy', 1)])
    assert db.execute(shown).fetchall() == [('ann', 35.0), ('bob', 20.0), ('cy', 1.0)]
    """, lang="sql"),
    _ex("In SQL, how do WHERE and HAVING differ? Give an example.", "",
        ["WHERE filters individual rows before they are grouped, while HAVING filters whole groups after "
         "aggregation, so only HAVING can test an aggregate such as COUNT(*). This query lists the "
         "departments that have more than two employees earning over 30000:", SQL_HAVING],
        SQL_HAVING,
        SQL_TESTS_SETUP + """
    db.execute('CREATE TABLE staff(name TEXT, dept TEXT, salary INT)')
    rows = [('a', 'ops', 40000), ('b', 'ops', 35000), ('c', 'ops', 31000), ('d', 'ops', 20000),
            ('e', 'it', 50000), ('f', 'it', 45000), ('g', 'hr', 10000), ('h', 'hr', 12000), ('i', 'hr', 9000)]
    db.executemany('INSERT INTO staff VALUES (?, ?, ?)', rows)
    assert db.execute(shown).fetchall() == [('ops', 3)]
    """, lang="sql"),
    _ex("In JavaScript, why is 0.1 + 0.2 === 0.3 false, and how should I compare the two?", "",
        ["JavaScript numbers are binary floating-point values, and neither 0.1 nor 0.2 can be stored "
         "exactly, so their sum comes out as 0.30000000000000004. Compare with a small tolerance instead:",
         JS_FLOAT],
        JS_FLOAT,
        """
        # the same IEEE 754 doubles in Python; the JavaScript was run with node
        import sys
        assert 0.1 + 0.2 != 0.3 and repr(0.1 + 0.2) == '0.30000000000000004'
        assert abs(0.1 + 0.2 - 0.3) < sys.float_info.epsilon == 2 ** -52
        """, lang="javascript"),
    _ex("From the shell, how can I count the lines in every .txt file in a folder? Explain the command.", "",
        ["Run:", SHELL_WC, "wc -l prints the number of lines in each file named on the command line, and the "
         "shell expands *.txt to every file in the current folder whose name ends in .txt. When there is "
         "more than one file, wc also prints a total on the last line."],
        SHELL_WC,
        """
        # run by hand with bash and GNU coreutils
        assert shown == 'wc -l *.txt'
        """, lang="shell"),
    _ex("Explain what this shell command does.", SHELL_FIND,
        ["It searches the current folder and all its subfolders for entries whose names end in .log and that "
         "were last modified more than 30 days ago (find counts whole days, so in practice 31 days or more), "
         "and deletes them. Run it once without -delete first to see what would be removed."],
        SHELL_FIND,
        """
        # run by hand with GNU find on files touched 29, 30, 31 and 40 days ago: only the last two went
        assert shown.endswith('-delete')
        """, lang="shell"),
    _ex("How do map and forEach differ on a JavaScript array?", "",
        ["map calls a function on every element and returns a new array of the results, while forEach calls "
         "the function only for its side effects and returns undefined. Use map when you want the "
         "transformed values:", JS_MAP],
        JS_MAP,
        """
        # the JavaScript was run with node; the same mapping in Python
        assert [x * 2 for x in [1, 2, 3]] == [2, 4, 6]
        """, lang="javascript"),
    _ex("Explain the difference between is and == in Python with a short example.", "",
        ["== compares values, while is checks whether two names refer to the very same object. Two separate "
         "lists with equal contents are == but not is:", IS_EQ,
         "Use is mainly for comparisons with None, as in if value is None."],
        IS_EQ,
        """
        assert printed == 'True False\\n'
        """),
    _ex("My loop skips items when I remove them from the list. What is going on?", REMOVE,
        ["Removing an item shifts all later items one place to the left, but the loop's position still moves "
         "forward, so the element right after a removed one is never checked. Here the second 2 slides into "
         "the slot that was just visited, and the output is [1, 2, 3]. Build a new list instead:", REMOVE_FIX],
        REMOVE_FIX,
        """
        assert printed == '[1, 3]\\n'
        import contextlib, io
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(REMOVE, {})
        assert buffer.getvalue() == '[1, 2, 3]\\n'
        """, setup=f"REMOVE = {REMOVE!r}"),
    _ex("I need the n most common words of a text in Python. Show a function and say what does the counting.", "",
        [COMMON_WORDS, "collections.Counter counts how often each word occurs, and its most_common(n) "
         "method returns the n most frequent ones, highest count first."],
        COMMON_WORDS,
        """
        assert most_common_words('the cat and the hat and the bat', 2) == ['the', 'and']
        assert most_common_words('One one ONE two', 1) == ['one']
        """),
    _ex("Describe the time complexity of binary search and show a compact version using bisect.", "",
        ["Binary search halves the remaining range at every step, so a sorted list of n items needs about "
         "log2(n) comparisons: O(log n). Python's bisect module does the halving for you:", BISECT,
         "bisect_left returns the position where x would be inserted, so the function checks that the item "
         "there really is x and returns -1 otherwise."],
        BISECT,
        """
        data = [2, 3, 5, 7, 11, 13]
        assert [index_of(data, x) for x in data] == list(range(6))
        assert index_of(data, 4) == -1 and index_of(data, 20) == -1 and index_of([], 1) == -1
        """),
    _ex("Walk me through these slicing expressions.", SLICES,
        ["s[::-1] steps through the string backwards, which reverses it: 'draobyek'. s[2:5] takes the "
         "characters at positions 2, 3 and 4 (the end index is excluded): 'ybo'. s[-3:] takes the last three "
         "characters: 'ard'. So the line prints: draobyek ybo ard"],
        SLICES,
        """
        assert printed == 'draobyek ybo ard\\n'
        """),
    _ex("Give a recursive function for the sum of a number's digits and explain the base case.", "",
        [DIGIT_SUM, "The base case is a single digit (n < 10), which is its own digit sum. Otherwise the last "
         "digit, n % 10, is added to the digit sum of the remaining number, n // 10. It expects a "
         "non-negative integer."],
        DIGIT_SUM,
        """
        assert all(digit_sum(n) == sum(map(int, str(n))) for n in range(0, 5000, 7))
        assert digit_sum(9) == 9 and digit_sum(1234) == 10
        """),
    _ex("Compare a for loop with sum() and a generator for adding up squares. Which would you use?", "",
        ["Both give the same result. The loop spells out every step:", SQUARES_LOOP,
         "The built-in sum with a generator expression says the same thing in one line, with no "
         "running variable to set up:", SQUARES_SUM,
         "Both give 385. I would use sum: it is shorter, reads like the maths, and leaves less room for "
         "mistakes such as starting the total at the wrong value."],
        [SQUARES_LOOP, SQUARES_SUM],
        """
        assert total == total2 == 385
        """),
    _ex("What does enumerate do? Show it replacing the manual counter here.", COUNTER_LOOP,
        ["enumerate pairs each item with its position, so you no longer keep and increment a counter "
         "yourself:", ENUMERATE, "It counts from 0 by default; enumerate(names, start=1) counts from 1."],
        ENUMERATE,
        """
        assert printed == '0 Ana\\n1 Ben\\n'
        assert list(enumerate(names, start=1)) == [(1, 'Ana'), (2, 'Ben')]
        """, setup="names = ['Ana', 'Ben']"),
    _ex("Explain what a Python decorator is, using a tiny example.", "",
        ["A decorator is a function that takes another function and returns a new one, usually adding "
         "behaviour around it; the @ line applies it when the function is defined:", DECORATOR,
         "Writing @shout above greet is the same as writing greet = shout(greet) after it."],
        DECORATOR,
        """
        assert printed == 'HELLO SAM!\\n'
        assert greet('ola') == 'HELLO OLA!'
        """),
    _ex("How is a tuple different from a list in Python?", "",
        ["A list is mutable - you can append, remove and change its items - while a tuple cannot be "
         "changed once it is created. Tuples suit fixed groups of values such as coordinates, and because "
         "they are immutable (and hashable when their items are) they can be dictionary keys:", TUPLE_KEY,
         "Trying point[0] = 1 raises a TypeError, and a list could not be used as the key."],
        TUPLE_KEY,
        """
        assert distances[(3, 4)] == 5.0
        for attempt in ("point[0] = 1", "{[3, 4]: 5.0}"):
            try:
                exec(attempt, {'point': point})
            except TypeError:
                pass
            else:
                raise AssertionError(attempt)
        """),
    _ex("Why does this function return None? Fix it.", AREA,
        ["The function computes result but never returns it, and a Python function that ends without a "
         "return statement returns None. Return the value instead:", AREA_FIX],
        AREA_FIX,
        """
        assert printed == '12\\n'
        """),
    _ex("Turn this nested loop into one list comprehension and explain the order of the for clauses.",
        NESTED_LOOP,
        [NESTED, "The for clauses appear in the same order as the nested loops, outer loop first, so x changes "
         "slowest: (0, 'a'), (0, 'b'), (1, 'a'), and so on up to (2, 'b')."],
        NESTED,
        """
        assert pairs == [(0, 'a'), (0, 'b'), (1, 'a'), (1, 'b'), (2, 'a'), (2, 'b')]
        """),
    _ex("Explain why this recursive Fibonacci is slow and give a faster version.", FIB_SLOW,
        ["Each call makes two more calls, and the same values are computed over and over, so the number of "
         "calls grows exponentially with n: fib(30) alone makes more than 2.6 million calls. Caching each "
         "result makes the work linear in n:", FIB_FAST],
        FIB_FAST,
        """
        assert [fib(n) for n in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
        assert fib(80) == 23416728348467685
        calls = 0
        def slow(n):
            global calls
            calls += 1
            return n if n < 2 else slow(n - 1) + slow(n - 2)
        slow(30)
        assert 2_600_000 < calls < 2_700_000
        """),
    _ex("Document this function with a docstring that includes a doctest.", INITIALS, [INITIALS_DOC],
        INITIALS_DOC,
        """
        import doctest
        runner = doctest.DocTestRunner()
        for test in doctest.DocTestFinder().find(initials, 'initials', globs={'initials': initials}):
            runner.run(test)
        assert runner.tries == 1 and runner.failures == 0
        assert initials('grace brewster hopper') == 'GBH'
        """),
    _ex("What is if __name__ == '__main__': for?", "",
        ["Code under that line runs only when the file is executed directly, as in python tool.py, and not "
         "when another module imports it. That lets one file work both as an importable module and as a "
         "script:", MAIN_GUARD],
        MAIN_GUARD,
        """
        assert printed == ''  # run under another name, as on import: main() is not called
        import contextlib, io
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(shown, {'__name__': '__main__'})
        assert buffer.getvalue() == 'running as a script\\n'
        """),
    _ex("How do I read a CSV file into a list of dictionaries in Python? Explain DictReader in a sentence.", "",
        [CSV_ROWS, "csv.DictReader takes the first line of the file as the field names and turns every "
         "following line into a dictionary keyed by those names."],
        CSV_ROWS,
        """
        import os, tempfile
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, 'people.csv')
            with open(path, 'w', newline='') as f:
                f.write('name,city\\nAna,Porto\\nBen,Leeds\\n')
            assert read_rows(path) == [{'name': 'Ana', 'city': 'Porto'}, {'name': 'Ben', 'city': 'Leeds'}]
        """),
]  # fmt: skip
