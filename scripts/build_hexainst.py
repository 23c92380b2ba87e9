#!/usr/bin/env python3
"""Build the HexaInst instruction dataset shipped with ``instr_interp``.

HexaInst has six categories (classification, code, general_qa, generation,
math, summarization) with 60 records each: 30 records written one by one
(source "handwritten") and 30 records produced from small instruction templates
(source "templated", with the template family in ``template``). A family whose
template repeats one instruction takes several phrasings in turn, so no
instruction text is used by more than three records. All text is original.
Math answers for templated items are computed here and the hand-written math
items are checked with assertions. The analysis set is disjoint from the tuning
set (scripts/build_tuneset.py): validate() checks it against tuneset.jsonl.

Usage (from the repository root):

    python scripts/build_hexainst.py

The output (instr_interp/data/hexainst.jsonl) is fully deterministic.
Standard library only.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import sys
import textwrap
from collections import Counter
from fractions import Fraction
from pathlib import Path

SEED = 20240613
ROOT = Path(__file__).resolve().parent.parent
OUT_PATH = ROOT / "instr_interp" / "data" / "hexainst.jsonl"
TUNE_PATH = ROOT / "instr_interp" / "data" / "tuneset.jsonl"
CATEGORIES = ["classification", "code", "general_qa", "generation", "math", "summarization"]
PER_SOURCE = 30


def block(text: str) -> str:
    """Dedent a triple-quoted code/text block and strip surrounding blank lines."""
    return textwrap.dedent(text).strip("\n")


def fmt_num(value) -> str:
    """Format an exact number (int or Fraction) as an integer or a terminating decimal."""
    fr = Fraction(value)
    if fr.denominator == 1:
        return str(fr.numerator)
    d = fr.denominator
    k = 0
    while (10**k) % d != 0:
        k += 1
        if k > 12:
            raise ValueError(f"non-terminating decimal: {fr}")
    scaled = abs(fr.numerator) * (10**k // d)
    digits = str(scaled).rjust(k + 1, "0")
    text = (digits[:-k] + "." + digits[-k:]).rstrip("0").rstrip(".")
    return ("-" if fr < 0 else "") + text


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ---------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------

HUMAN_CLASSIFICATION = [
    (
        "Classify the sentiment of this product review as positive, negative, or neutral.",
        "The blender is louder than I expected, but it crushes ice in seconds and cleanup takes a minute. Would buy again.",
        "Positive",
    ),
    (
        "Is the following email spam or not spam?",
        "Congratulations! You have been selected to receive a $1,000 gift card. Click the link below within 24 hours to claim your prize.",
        "Spam",
    ),
    (
        "Label the topic of this headline: sports, politics, technology, or business.",
        "Parliament passes budget bill after all-night session",
        "Politics",
    ),
    ("Identify the language of the sentence.", "Je voudrais un cafe, s'il vous plait.", "French"),
    (
        "Classify each animal as a mammal, bird, reptile, or fish.",
        "salmon, eagle, dolphin, iguana",
        "salmon: fish; eagle: bird; dolphin: mammal; iguana: reptile",
    ),
    (
        "Is this statement a fact or an opinion?",
        "Pineapple is the best pizza topping ever invented.",
        "Opinion - it expresses a personal preference that cannot be proven true or false.",
    ),
    ("Determine whether the number is prime or composite.", "91", "Composite (91 = 7 x 13)"),
    (
        "Classify the customer message by intent: billing, technical support, cancellation, or general inquiry.",
        "I was charged twice for my subscription this month. Can you refund the extra payment?",
        "Billing",
    ),
    (
        "Tag the part of speech of the word written in capital letters.",
        "She QUICKLY finished her homework before dinner.",
        "Adverb",
    ),
    (
        "Which genre best fits this book description: mystery, science fiction, romance, or fantasy?",
        "When a famous art collector is found dead in a locked study, a retired detective must work out which of the six dinner guests is lying.",
        "Mystery",
    ),
    (
        "Classify the emotion expressed in this tweet as joy, anger, sadness, or fear.",
        "My flight got cancelled AGAIN and nobody at the desk will even look at me. Unbelievable.",
        "Anger",
    ),
    (
        "Decide whether the following sentence is grammatically correct. Answer yes or no.",
        "Him and me goes to the store every Saturday.",
        "No",
    ),
    ("Question, command, or statement?", "Please close the window before you leave.", "Command"),
    (
        "Sort these foods into fruits and vegetables, using the everyday cooking sense of the words.",
        "apple, carrot, banana, spinach, grape",
        "Fruits: apple, banana, grape; Vegetables: carrot, spinach",
    ),
    (
        "Classify each element as a metal or a nonmetal.",
        "iron, oxygen, copper, sulfur, sodium",
        "Metals: iron, copper, sodium; Nonmetals: oxygen, sulfur",
    ),
    (
        "Is this movie review positive or negative?",
        "Two and a half hours of wooden dialogue and a plot that goes nowhere. I checked my watch more often than I watched the screen.",
        "Negative",
    ),
    (
        "Rate the urgency of this support ticket as low, medium, or high, and give a one-line reason.",
        "Our entire checkout page is down and customers cannot place any orders.",
        "High - a complete checkout outage blocks all sales.",
    ),
    (
        "Classify the triangle with the given side lengths as acute, right, or obtuse.",
        "Sides: 3, 4, 5",
        "Right, because 3^2 + 4^2 = 9 + 16 = 25 = 5^2.",
    ),
    ("Is the following word a noun, a verb, or an adjective?", "happiness", "Noun"),
    (
        "Classify the register of this sentence as formal or informal.",
        "Hey, wanna grab some food later?",
        "Informal",
    ),
    (
        "Determine whether this news snippet is about health, science, entertainment, or finance.",
        "The central bank raised interest rates by a quarter of a percentage point on Wednesday, citing persistent inflation.",
        "Finance",
    ),
    (
        "Is this password weak or strong? Give a brief reason.",
        "password123",
        "Weak - it is a common dictionary word followed by a simple number sequence.",
    ),
    (
        "Group the following energy sources into renewable and nonrenewable.",
        "solar, coal, wind, natural gas, geothermal",
        "Renewable: solar, wind, geothermal; Nonrenewable: coal, natural gas",
    ),
    (
        "Detect whether the following comment is toxic or non-toxic.",
        "Thanks for the detailed explanation, this cleared up my confusion.",
        "Non-toxic",
    ),
    (
        "Is the given year a leap year?",
        "1900",
        "No. 1900 is divisible by 100 but not by 400, so it is not a leap year.",
    ),
    (
        "Which item is the odd one out, and why?",
        "violin, cello, trumpet, viola",
        "Trumpet - it is a brass instrument, while the others are string instruments.",
    ),
    (
        "Classify which aspect of the restaurant this review complains about: food, service, price, or ambiance.",
        "The waiter forgot our drinks twice and never came back to check on us.",
        "Service",
    ),
    (
        "Label the following sentence as sarcastic or sincere.",
        "Oh great, another Monday meeting that could have been an email.",
        "Sarcastic",
    ),
    (
        "Classify each number as even or odd.",
        "14, 27, 38, 51, 60",
        "14: even; 27: odd; 38: even; 51: odd; 60: even",
    ),
    (
        "A customer describes a problem with their car below. Acting as a service desk assistant at a garage, decide which department should handle it: engine, brakes, electrical, or tires. Reply with the department name only.",
        "There is a loud squealing sound every time I press the brake pedal.",
        "Brakes",
    ),
]


def smallest_factor(n: int) -> int:
    for d in range(2, math.isqrt(n) + 1):
        if n % d == 0:
            return d
    return n


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def templated_classification(rng: random.Random) -> list[tuple[str, str, str]]:
    out = []

    sentiment_reviews = [
        ("The headphones died after two weeks and customer service never replied to my emails.", "Negative"),
        (
            "Comfortable, warm, and the stitching still looks new after a whole winter. Great jacket.",
            "Positive",
        ),
        ("The hotel room smelled of smoke and the air conditioning rattled all night.", "Negative"),
        ("Setup took five minutes and the picture quality is stunning for the price.", "Positive"),
        (
            "I wanted to love this novel, but the characters were flat and the ending made no sense.",
            "Negative",
        ),
    ]
    for text, label in sentiment_reviews:
        out.append(("Classify the sentiment of this review as positive or negative.", text, label))

    candidates = [n for n in range(51, 200) if n % 2 and n % 3 and n % 5]
    primes = [n for n in candidates if smallest_factor(n) == n]
    composites = [n for n in candidates if smallest_factor(n) != n]
    for n in sorted(rng.sample(primes, 2) + rng.sample(composites, 3)):
        p = smallest_factor(n)
        if p == n:
            answer = f"Yes, {n} is prime."
        else:
            answer = f"No, {n} = {p} x {n // p}."
        out.append(("Is the following number prime? Answer yes or no.", str(n), answer))

    headlines = [
        ("Striker signs three-year deal with league champions", "Sports"),
        ("Chipmaker unveils processor that halves power consumption", "Technology"),
        ("Senate committee delays vote on election reform", "Politics"),
        ("Retail chain reports record profits for the holiday quarter", "Business"),
        ("Phone update adds offline translation for 40 languages", "Technology"),
    ]
    for text, label in headlines:
        out.append(
            (
                "Assign this headline to one of these topics: sports, politics, technology, or business.",
                text,
                label,
            )
        )

    years = rng.sample([1600, 1800, 1996, 2000, 2019, 2023, 2024, 2100], 5)
    for y in years:
        if is_leap(y):
            if y % 400 == 0:
                reason = f"{y} is divisible by 400."
            else:
                reason = f"{y} is divisible by 4 and not by 100."
            answer = f"Yes - {reason}"
        else:
            if y % 4 != 0:
                reason = f"{y} is not divisible by 4."
            else:
                reason = f"{y} is divisible by 100 but not by 400."
            answer = f"No - {reason}"
        out.append(("Determine whether the following year is a leap year. Answer yes or no.", str(y), answer))

    animals = [
        ("whale", "Mammal"),
        ("penguin", "Bird"),
        ("frog", "Amphibian"),
        ("crocodile", "Reptile"),
        ("shark", "Fish"),
        ("bat", "Mammal"),
        ("salamander", "Amphibian"),
    ]
    for name, label in rng.sample(animals, 5):
        out.append(("Is the following animal a mammal, bird, reptile, amphibian, or fish?", name, label))

    messages = [
        (
            "URGENT: Your account has been suspended. Verify your password at the link below to avoid permanent deletion.",
            "Spam",
        ),
        (
            "Hi Dana, just confirming that our dentist appointment moved to Friday at 10. See you then.",
            "Not spam",
        ),
        ("You are our lucky winner! Claim your free cruise now by sending a $49 processing fee.", "Spam"),
        ("The quarterly report draft is attached; please send comments by Wednesday.", "Not spam"),
        ("Lose 20 pounds in 5 days with this one weird pill doctors don't want you to know about!", "Spam"),
    ]
    for text, label in messages:
        out.append(("Classify this message as spam or not spam.", text, label))

    return out


# ---------------------------------------------------------------------------
# code
# ---------------------------------------------------------------------------

HUMAN_CODE = [
    (
        "Write a Python function that reverses a string.",
        "",
        block("""
        def reverse_string(s):
            return s[::-1]
     """),
    ),
    (
        "Fix the bug in this function.",
        block("""
        def is_even(n):
            return n % 2 == 1
     """),
        block("""
        def is_even(n):
            return n % 2 == 0
     """),
    ),
    (
        "Write a function that checks whether a string is a palindrome, ignoring case and any non-alphanumeric characters.",
        "",
        block("""
        def is_palindrome(s):
            cleaned = [c.lower() for c in s if c.isalnum()]
            return cleaned == cleaned[::-1]
     """),
    ),
    (
        "What does this code print?",
        block("""
        x = [1, 2, 3]
        y = x
        y.append(4)
        print(x)
     """),
        "[1, 2, 3, 4] - y and x refer to the same list object, so appending through y also changes x.",
    ),
    (
        "Rewrite this loop as a list comprehension.",
        block("""
        squares = []
        for i in range(10):
            if i % 2 == 0:
                squares.append(i * i)
     """),
        "squares = [i * i for i in range(10) if i % 2 == 0]",
    ),
    (
        "Write a Python function to compute the nth Fibonacci number iteratively, with fib(0) = 0 and fib(1) = 1.",
        "",
        block("""
        def fib(n):
            a, b = 0, 1
            for _ in range(n):
                a, b = b, a + b
            return a
     """),
    ),
    (
        "Write a function that counts how many times each word appears in a sentence.",
        "",
        block("""
        from collections import Counter

        def word_counts(sentence):
            return Counter(sentence.lower().split())
     """),
    ),
    (
        "Explain the error this code raises and fix it.",
        block("""
        numbers = [1, 2, 3]
        print(numbers[3])
     """),
        "It raises IndexError: list index out of range, because the valid indices are 0 to 2. Use print(numbers[2]) or print(numbers[-1]) to get the last element.",
    ),
    (
        "Write Python code that reads a file named data.txt and prints how many lines it has.",
        "",
        block("""
        with open("data.txt") as f:
            print(sum(1 for _ in f))
     """),
    ),
    (
        "Write a function that merges two sorted lists into one sorted list without calling sort() or sorted().",
        "",
        block("""
        def merge_sorted(a, b):
            result = []
            i = j = 0
            while i < len(a) and j < len(b):
                if a[i] <= b[j]:
                    result.append(a[i])
                    i += 1
                else:
                    result.append(b[j])
                    j += 1
            result.extend(a[i:])
            result.extend(b[j:])
            return result
     """),
    ),
    (
        "Add type hints to this function.",
        block("""
        def greet(name, times):
            return ", ".join(["Hello " + name] * times)
     """),
        block("""
        def greet(name: str, times: int) -> str:
            return ", ".join(["Hello " + name] * times)
     """),
    ),
    (
        "Replace the if/elif chain in this function with a dictionary lookup.",
        block("""
        def day_name(n):
            if n == 1:
                return "Mon"
            elif n == 2:
                return "Tue"
            elif n == 3:
                return "Wed"
            else:
                return "?"
     """),
        block("""
        def day_name(n):
            names = {1: "Mon", 2: "Tue", 3: "Wed"}
            return names.get(n, "?")
     """),
    ),
    (
        "Give a one-liner that removes duplicates from a list called items while keeping the original order.",
        "",
        "unique = list(dict.fromkeys(items))",
    ),
    (
        "Why is this function slow for large inputs, and how can you speed it up?",
        block("""
        def has_duplicates(items):
            for i in range(len(items)):
                for j in range(i + 1, len(items)):
                    if items[i] == items[j]:
                        return True
            return False
     """),
        "It compares every pair of items, so it takes O(n^2) time. For hashable items, a set makes it O(n):\n\n"
        + block("""
        def has_duplicates(items):
            return len(set(items)) != len(items)
     """),
    ),
    (
        "Write a BankAccount class with deposit and withdraw methods; withdrawing more than the current balance should raise a ValueError.",
        "",
        block("""
        class BankAccount:
            def __init__(self, balance=0):
                self.balance = balance

            def deposit(self, amount):
                self.balance += amount

            def withdraw(self, amount):
                if amount > self.balance:
                    raise ValueError("insufficient funds")
                self.balance -= amount
     """),
    ),
    (
        "Sort this list of dictionaries by the 'age' key.",
        'people = [{"name": "Ana", "age": 31}, {"name": "Ben", "age": 25}, {"name": "Cy", "age": 40}]',
        'people.sort(key=lambda p: p["age"])',
    ),
    (
        "Write a function that flattens a nested list of arbitrary depth.",
        "",
        block("""
        def flatten(items):
            result = []
            for item in items:
                if isinstance(item, list):
                    result.extend(flatten(item))
                else:
                    result.append(item)
            return result
     """),
    ),
    ("What is the output?", "print(7 // 2, 7 % 2, 7 / 2)", "3 1 3.5"),
    (
        "Write a function that returns True if two strings are anagrams of each other.",
        "",
        block("""
        def are_anagrams(a, b):
            return sorted(a) == sorted(b)
     """),
    ),
    (
        "Fix the mutable default argument bug.",
        block("""
        def add_item(item, bucket=[]):
            bucket.append(item)
            return bucket
     """),
        block("""
        def add_item(item, bucket=None):
            if bucket is None:
                bucket = []
            bucket.append(item)
            return bucket
     """),
    ),
    (
        "Use a regular expression to extract all email addresses from a string.",
        "",
        block(r"""
        import re

        def find_emails(text):
            return re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text)
     """),
    ),
    (
        "Write a Python function that converts a temperature from Celsius to Fahrenheit.",
        "",
        block("""
        def celsius_to_fahrenheit(c):
            return c * 9 / 5 + 32
     """),
    ),
    (
        "Write a generator function that yields 1, 4, 9, ... up to n squared.",
        "",
        block("""
        def squares(n):
            for i in range(1, n + 1):
                yield i * i
     """),
    ),
    (
        "Explain what this function does in one sentence.",
        block("""
        def f(s):
            return sum(1 for c in s if c in "aeiouAEIOU")
     """),
        "It counts how many vowels (upper or lower case) appear in the string s.",
    ),
    (
        "Return the most common character in a string.",
        "",
        block("""
        from collections import Counter

        def most_common_char(s):
            return Counter(s).most_common(1)[0][0]
     """),
    ),
    (
        "Catch the exception so that the program prints 'invalid number' instead of crashing when the user types something that is not an integer.",
        block("""
        value = int(input("Enter a number: "))
        print(value * 2)
     """),
        block("""
        try:
            value = int(input("Enter a number: "))
            print(value * 2)
        except ValueError:
            print("invalid number")
     """),
    ),
    (
        "Write a Python function called second_largest that takes a list of integers and returns the second largest distinct value in it. If the list contains fewer than two distinct values, the function should return None instead of raising an error.",
        "",
        block("""
        def second_largest(nums):
            distinct = sorted(set(nums), reverse=True)
            return distinct[1] if len(distinct) > 1 else None
     """),
    ),
    (
        "How do I transpose a matrix stored as a list of lists?",
        "",
        "transposed = [list(row) for row in zip(*matrix)]",
    ),
    (
        "Write a recursive factorial function.",
        "",
        block("""
        def factorial(n):
            return 1 if n <= 1 else n * factorial(n - 1)
     """),
    ),
    (
        "What is wrong with this code, and how do you fix it?",
        block("""
        total = 0
        for i in range(1, 10):
            total += i
        print(total)  # should print the sum of 1 to 10
     """),
        "range(1, 10) stops at 9, so 10 is never added and it prints 45. Use range(1, 11) to get 55.",
    ),
]


def templated_code(rng: random.Random) -> list[tuple[str, str, str]]:
    out = []

    list_ops = [
        (
            "sum",
            "def list_sum(nums):\n    total = 0\n    for x in nums:\n        total += x\n    return total",
        ),
        (
            "product",
            "def list_product(nums):\n    result = 1\n    for x in nums:\n        result *= x\n    return result",
        ),
        ("maximum", "def list_max(nums):\n    return max(nums)"),
        ("mean", "def list_mean(nums):\n    return sum(nums) / len(nums)"),
        (
            "range (largest value minus smallest value)",
            "def list_range(nums):\n    return max(nums) - min(nums)",
        ),
        ("sum of squares", "def sum_of_squares(nums):\n    return sum(x * x for x in nums)"),
    ]
    for op, code in list_ops:
        out.append((f"Write a Python function that returns the {op} of a list of numbers.", "", code))

    predicates = [
        ("contains only digits", "def is_all_digits(s):\n    return s.isdigit()"),
        (
            "starts with a vowel",
            'def starts_with_vowel(s):\n    return len(s) > 0 and s[0].lower() in "aeiou"',
        ),
        (
            "is written entirely in uppercase letters",
            "def is_all_upper(s):\n    return s.isalpha() and s.isupper()",
        ),
        ("ends with a question mark", 'def ends_with_question(s):\n    return s.endswith("?")'),
        ("contains at least one space", 'def has_space(s):\n    return " " in s'),
        ("is longer than 10 characters", "def is_long(s):\n    return len(s) > 10"),
    ]
    for cond, code in predicates:
        out.append((f"Write a Python function that checks whether a string {cond}.", "", code))

    expressions = [
        "len('instruction') * 2",
        "'hello world'.title()",
        "sorted([5, 2, 9, 1])[::-1]",
        "17 // 5 + 17 % 5",
        "'-'.join(['a', 'b', 'c'])",
        "[n * n for n in range(5) if n % 2 == 1]",
        "'banana'.count('an')",
        "sum(range(1, 11))",
        "2 ** 3 ** 2",
        "bool([]) or 'empty'",
    ]
    for expr in rng.sample(expressions, 6):
        value = eval(expr)  # trusted, hard-coded expressions only
        out.append(("What does the following Python expression evaluate to?", expr, repr(value)))

    conversions = [
        ("kilometers", "miles", "def km_to_miles(km):\n    return km * 0.621371"),
        ("hours", "minutes", "def hours_to_minutes(hours):\n    return hours * 60"),
        ("degrees Celsius", "kelvin", "def celsius_to_kelvin(c):\n    return c + 273.15"),
        ("inches", "centimeters", "def inches_to_cm(inches):\n    return inches * 2.54"),
        ("pounds", "kilograms", "def pounds_to_kg(pounds):\n    return pounds * 0.45359237"),
        (
            "degrees Fahrenheit",
            "degrees Celsius",
            "def fahrenheit_to_celsius(f):\n    return (f - 32) * 5 / 9",
        ),
        ("days", "seconds", "def days_to_seconds(days):\n    return days * 24 * 60 * 60"),
    ]
    for src, dst, code in rng.sample(conversions, 6):
        out.append((f"Write a Python function that converts {src} to {dst}.", "", code))

    comprehensions = [
        ("the squares of the integers", "x ** 2 for x in range(1, {end})"),
        ("the cubes of the integers", "x ** 3 for x in range(1, {end})"),
        ("the even integers", "x for x in range(1, {end}) if x % 2 == 0"),
        ("the multiples of 3", "x for x in range(1, {end}) if x % 3 == 0"),
        ("the doubled values of the integers", "2 * x for x in range(1, {end})"),
        ("the reciprocals of the integers", "1 / x for x in range(1, {end})"),
    ]
    for desc, body in comprehensions:
        n = rng.randint(10, 50)
        code = "[" + body.format(end=n + 1) + "]"
        out.append((f"Write a list comprehension that gives {desc} from 1 to {n}, inclusive.", "", code))

    return out


# ---------------------------------------------------------------------------
# general_qa
# ---------------------------------------------------------------------------

HUMAN_GENERAL_QA = [
    ("What is the capital of Australia?", "", "Canberra."),
    (
        "Why is the sky blue?",
        "",
        "Air molecules scatter sunlight, and short blue wavelengths are scattered much more strongly than longer red ones (Rayleigh scattering), so blue light reaches our eyes from every part of the sky.",
    ),
    ("How many bones are in the adult human body?", "", "206."),
    ("Who wrote 'Pride and Prejudice'?", "", "Jane Austen."),
    ("What is the chemical symbol for gold?", "", "Au."),
    (
        "What is the difference between weather and climate?",
        "",
        "Weather is the short-term state of the atmosphere at a particular place and time, while climate is the average pattern of weather in a region over long periods, typically 30 years or more.",
    ),
    ("At sea level, what temperature does water boil at in degrees Celsius?", "", "100 degrees Celsius."),
    ("Which planet is known as the Red Planet?", "", "Mars."),
    ("What does DNA stand for?", "", "Deoxyribonucleic acid."),
    (
        "Explain in two sentences what photosynthesis is.",
        "",
        "Photosynthesis is the process by which plants, algae, and some bacteria use light energy to turn carbon dioxide and water into glucose. Oxygen is released as a by-product.",
    ),
    ("Largest ocean on Earth?", "", "The Pacific Ocean."),
    ("In which year did humans first land on the Moon?", "", "1969, during NASA's Apollo 11 mission."),
    (
        "Roughly how fast does light travel in a vacuum?",
        "",
        "About 300,000 kilometers per second (exactly 299,792,458 meters per second).",
    ),
    ("Who painted the Mona Lisa?", "", "Leonardo da Vinci."),
    (
        "Based on the passage, where did the expedition set up its base camp?",
        "In the spring of the following year, the team left the coastal town with twelve mules and enough food for two months. After a week of climbing, they set up their base camp beside a frozen lake at the foot of the northern glacier, where they waited for the storms to pass.",
        "Beside a frozen lake at the foot of the northern glacier.",
    ),
    (
        "What is the main job of red blood cells?",
        "",
        "To carry oxygen from the lungs to the body's tissues, using the protein hemoglobin.",
    ),
    ("Which gas do humans breathe out that plants take in for photosynthesis?", "", "Carbon dioxide."),
    ("How many sides does a hexagon have?", "", "Six."),
    ("What is the smallest prime number?", "", "2."),
    ("What is the freezing point of water on the Fahrenheit scale?", "", "32 degrees Fahrenheit."),
    (
        "According to the text, why did the bakery close early on Thursday?",
        "Mrs. Patel usually kept the bakery open until seven, but on Thursday she locked the door at three. A pipe had burst in the kitchen overnight, and the plumber could only come that afternoon.",
        "Because a pipe had burst in the kitchen overnight and the plumber could only come that afternoon.",
    ),
    (
        "What is an atom made of?",
        "",
        "A small, dense nucleus of protons and neutrons, surrounded by electrons.",
    ),
    ("Which language has the most native speakers in the world?", "", "Mandarin Chinese."),
    ("What does a thermometer measure?", "", "Temperature."),
    ("Who developed the general theory of relativity?", "", "Albert Einstein."),
    ("What is the longest river in South America?", "", "The Amazon River."),
    ("Name the highest mountain above sea level.", "", "Mount Everest, at about 8,849 meters."),
    ("What do you call an animal that eats only plants?", "", "A herbivore."),
    (
        "Using the table below, which city had the highest annual rainfall?",
        "City | Annual rainfall (mm)\nAldport | 820\nBrenford | 1,140\nCastlemere | 960",
        "Brenford, with 1,140 mm.",
    ),
    (
        "Give a brief explanation of why Earth has seasons. Mention the role of the planet's tilted axis, and keep it to two or three sentences that a curious ten-year-old could follow.",
        "",
        "Earth's axis is tilted, so as the planet travels around the Sun, each half takes turns leaning toward it. When your half leans toward the Sun, sunlight hits more directly and days are longer, so it is summer; when it leans away, it is winter.",
    ),
]


def templated_general_qa(rng: random.Random) -> list[tuple[str, str, str]]:
    out = []

    capitals = [
        ("France", "Paris"),
        ("Japan", "Tokyo"),
        ("Canada", "Ottawa"),
        ("Kenya", "Nairobi"),
        ("Egypt", "Cairo"),
        ("Norway", "Oslo"),
        ("Peru", "Lima"),
        ("Spain", "Madrid"),
    ]
    for country, capital in rng.sample(capitals, 5):
        out.append((f"What is the capital of {country}?", "", f"The capital of {country} is {capital}."))

    symbols = [
        ("silver", "Ag"),
        ("iron", "Fe"),
        ("sodium", "Na"),
        ("potassium", "K"),
        ("lead", "Pb"),
        ("copper", "Cu"),
        ("tin", "Sn"),
        ("helium", "He"),
    ]
    for element, symbol in rng.sample(symbols, 5):
        out.append(
            (
                f"What is the chemical symbol for {element}?",
                "",
                f"The chemical symbol for {element} is {symbol}.",
            )
        )

    units = [
        ("minutes", "hours", 60),
        ("seconds", "minutes", 60),
        ("days", "weeks", 7),
        ("months", "years", 12),
        ("centimeters", "meters", 100),
        ("grams", "kilograms", 1000),
        ("millimeters", "centimeters", 10),
    ]
    for small, big, factor in rng.sample(units, 5):
        n = rng.randint(2, 12)
        out.append(
            (
                f"How many {small} are in {n} {big}?",
                "",
                f"{n} x {factor} = {n * factor}, so there are {n * factor} {small} in {n} {big}.",
            )
        )

    novels = [
        ("Moby-Dick", "Herman Melville"),
        ("Nineteen Eighty-Four", "George Orwell"),
        ("War and Peace", "Leo Tolstoy"),
        ("The Great Gatsby", "F. Scott Fitzgerald"),
        ("Don Quixote", "Miguel de Cervantes"),
        ("Frankenstein", "Mary Shelley"),
        ("Great Expectations", "Charles Dickens"),
    ]
    for title, author in rng.sample(novels, 5):
        out.append((f"Who wrote the novel '{title}'?", "", f"{author}."))

    events = [
        ("the Berlin Wall fall", "The Berlin Wall fell in 1989."),
        ("the Titanic sink", "The Titanic sank in 1912."),
        ("World War II end", "World War II ended in 1945."),
        ("the French Revolution begin", "The French Revolution began in 1789."),
        (
            "Christopher Columbus first reach the Americas",
            "Christopher Columbus first reached the Americas in 1492.",
        ),
        ("the United States declare independence", "The United States declared independence in 1776."),
    ]
    for event, answer in rng.sample(events, 5):
        out.append((f"In what year did {event}?", "", answer))

    people = [
        ("Amara", "she", "nurse", "Leeds"),
        ("Tomas", "he", "carpenter", "Valencia"),
        ("Yuki", "she", "pilot", "Osaka"),
        ("Rafael", "he", "librarian", "Porto"),
        ("Ingrid", "she", "architect", "Bergen"),
        ("Kofi", "he", "baker", "Accra"),
    ]
    questions = [
        "what is {name}'s job?",
        "in which city does {name} live?",
        "how many children does {name} have?",
        "how far does {name} walk to work?",
        "what does {name} do on Sundays?",
    ]
    hobbies = [
        "plays chess",
        "paints watercolors",
        "goes fishing",
        "sings in a choir",
        "repairs old bicycles",
    ]
    for i, (name, pron, job, city) in enumerate(rng.sample(people, 5)):
        kids = rng.randint(1, 4)
        km = rng.randint(2, 6)
        hobby = hobbies[i]
        kid_word = "child" if kids == 1 else "children"
        article = "an" if job[0] in "aeiou" else "a"
        passage = (
            f"{name} works as {article} {job} in {city}. {pron.capitalize()} has {kids} {kid_word} and walks "
            f"{km} kilometers to work every morning. On Sundays, {pron} {hobby} with friends."
        )
        q = questions[i].format(name=name)
        answers = [
            f"{name} is {article} {job}.",
            f"{name} lives in {city}.",
            f"{name} has {kids} {kid_word}.",
            f"{name} walks {km} kilometers to work.",
            f"On Sundays, {name} {hobby} with friends.",
        ]
        out.append((f"Based on the passage, {q}", passage, answers[i]))

    return out


# ---------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------

HUMAN_GENERATION = [
    (
        "Write a haiku about autumn rain.",
        "",
        "Cold rain on the roof\nthe maple lets go its red\none leaf at a time",
    ),
    (
        "Write a two-sentence horror story.",
        "",
        "Every night I lock the bedroom door and count to ten before I turn off the light. Last night, something on the other side of the door counted with me.",
    ),
    (
        "Write a short product description for a reusable water bottle.",
        "",
        "Meet the Trailmate bottle: double-walled stainless steel that keeps drinks cold for 24 hours and hot for 12. The leak-proof lid opens with one hand, the textured finish won't slip, and it fits in any cup holder. Fill it, toss it in your bag, and skip the plastic.",
    ),
    (
        "Compose a limerick about a cat who loves cheese.",
        "",
        "A tabby who lived by the sea\nwas fond of a wedge of Brie.\nShe'd creep to the shelf\nand help her own self,\nthen nap in the sun, fancy-free.",
    ),
    (
        "Write a polite email declining a meeting invitation.",
        "",
        "Hi Jordan,\n\nThank you for the invitation to Thursday's planning meeting. Unfortunately, I have a prior commitment at that time and won't be able to attend. Could you share the notes afterward? I'm happy to send my input by email beforehand.\n\nBest regards,\nSam",
    ),
    ("Slogan for a neighborhood bakery, please.", "", "Fresh from our oven to your morning."),
    (
        "Write the opening line of a fantasy novel.",
        "",
        "The dragons had been gone for three hundred years, which is why no one believed the shepherd boy when he came down the mountain carrying a scale the size of a door.",
    ),
    (
        "Write a short poem about the ocean without using the words 'water' or 'blue'.",
        "",
        "It breathes in and out on the sand,\na slow green lung the size of the world,\nkeeping the secrets of every ship\nit ever folded into its arms.",
    ),
    (
        "Create a name and a one-sentence backstory for a space pirate.",
        "",
        "Captain Vela Thorn, a former cargo pilot who turned to piracy after her employer left her crew stranded on a frozen moon.",
    ),
    (
        "Write a birthday message for a coworker.",
        "",
        "Happy birthday, Priya! Thanks for making every project a little easier and every Monday a little brighter. I hope your day is full of cake and free of emails.",
    ),
    (
        "Rewrite the following sentence in a more formal tone.",
        "Hey guys, the meeting's moved to 3 so don't be late, ok?",
        "Please note that the meeting has been rescheduled to 3:00 p.m. Kindly arrive on time.",
    ),
    (
        "Write a motivational quote about learning from mistakes.",
        "",
        "Every mistake is a lesson delivered early; the only real failure is refusing to read it.",
    ),
    (
        "Describe a busy train station in three sentences, including at least one sound, one smell, and one sight.",
        "",
        "Announcements echo off the high glass roof while suitcase wheels rattle across the tiles. The air smells of burnt coffee and warm pretzels from the kiosk by platform four. Under the huge departure board, hundreds of travelers stand with their faces tilted up, waiting for their train to appear.",
    ),
    (
        "Write a four-line rhyming poem for a young child about brushing teeth.",
        "",
        "Brush your teeth up, brush them down,\nmake them shine all over town.\nRound and round and side to side,\nnow show a smile that's big and wide!",
    ),
    (
        "Turn these notes into a short, friendly invitation.",
        "party Saturday 7pm, my place, bring snacks, games night, RSVP by Thursday",
        "You're invited to a games night at my place this Saturday at 7 pm! Bring your favorite snacks and get ready for some friendly competition. Please let me know by Thursday if you can make it.",
    ),
    (
        "Write a tweet announcing the launch of a new mobile app for looking after houseplants.",
        "",
        "Never forget to water your fern again! Our new app Sprout reminds you when each plant needs water, light, or a little love. Download it free today. #plantparent",
    ),
    (
        "Invent a new holiday and describe how people celebrate it.",
        "",
        "Lantern Swap Day falls on the first evening of spring. Neighbors hang handmade paper lanterns on their doors, then walk the streets after dark and trade lanterns with someone they have never spoken to before, each one carrying a written wish for the season.",
    ),
    (
        "Write a short dialogue between a robot and a child who are meeting for the first time.",
        "",
        "Child: Are you a real robot?\nRobot: I am. My name is Unit Seven.\nChild: Do you have a heart?\nRobot: No, but I have a battery that gets warm when I am happy.\nChild: Is it warm now?\nRobot: Very.",
    ),
    (
        "Write a rhyming couplet about coffee.",
        "",
        "The morning stumbles, gray and slow,\nuntil the coffee starts to flow.",
    ),
    (
        "Suggest five creative names for a pet goldfish.",
        "",
        "1. Bubbles McGee\n2. Finnegan\n3. Captain Splash\n4. Sir Swims-a-Lot\n5. Marmalade",
    ),
    (
        "Write an acrostic poem using the word MOON.",
        "",
        "Magic light on the sleeping hill,\nOver the rooftops, calm and still,\nOrbiting softly, night by night,\nNever tired of sharing light.",
    ),
    (
        "Expand this sentence into a short, vivid paragraph.",
        "The old man fed the pigeons.",
        "Every morning at seven, the old man shuffled to the same green bench in the square, a paper bag of breadcrumbs tucked under his arm. The pigeons knew him well; they gathered before he even sat down, cooing and jostling at his feet. He scattered the crumbs slowly, one handful at a time, talking to the birds as if they were old friends.",
    ),
    (
        "Write a short thank-you note to a teacher.",
        "",
        "Dear Ms. Lopez, thank you for your patience and encouragement this year. You made math feel like a puzzle instead of a chore, and I will always remember how much you believed in me. Gratefully, Mia",
    ),
    (
        "Describe the taste of a lemon to someone who has never had one.",
        "",
        "Imagine biting into pure brightness: a sharp, sour jolt that makes your mouth pucker and water at the same time, followed by a faint sweetness and a fresh, almost flowery smell from the peel.",
    ),
    (
        "Write a fable of under 80 words about two tortoises and a river, ending with a moral.",
        "",
        "A young tortoise tried to cross a river by fighting the current, and each time he was swept back to the bank. An old tortoise watched, then slipped into the river and let it carry her gently downstream as she angled toward the far side. She reached it by sunset. Moral: sometimes you get further by working with a force than against it.",
    ),
    (
        "Write a riddle whose answer is 'a shadow'.",
        "",
        "I follow you all day but vanish in the dark. I am tall in the evening and short at noon. I copy every move you make, yet I never make a sound. What am I? (Answer: a shadow.)",
    ),
    (
        "Write a short first-person bio for a freelance photographer's website.",
        "",
        "Hi, I'm Dana Reyes, a freelance photographer who specializes in weddings, family portraits, and small-business branding. I love capturing the unplanned moments between poses. When I'm not behind the camera, you'll find me hiking with my dog or hunting for the perfect cup of coffee. Let's tell your story together.",
    ),
    (
        "Paraphrase the following sentence in simpler words.",
        "The committee's deliberations culminated in a unanimous endorsement of the proposal.",
        "After discussing it, everyone on the committee agreed to support the plan.",
    ),
    (
        "Write a catchy chorus for a song about summer road trips.",
        "",
        "Windows down and the radio loud,\nchasing the sun past every cloud,\nno map, no plan, just you and me,\nand a long road rolling to the sea.",
    ),
    (
        "You are writing for a small-town newspaper. Write a brief, cheerful announcement of three or four sentences saying that the public library will stay open later on weekends starting next month.",
        "",
        "Good news for book lovers! Starting next month, the Maple Street Public Library will stay open later on weekends, welcoming readers until 8 p.m. on Saturdays and 6 p.m. on Sundays. The extra hours mean more time for browsing, studying, and family story sessions. Stop by and make the most of it!",
    ),
]


def templated_generation(rng: random.Random) -> list[tuple[str, str, str]]:
    out = []

    slogans = [
        ("coffee shop", "Good mornings start here, one cup at a time."),
        ("bicycle repair shop", "We fix it fast so you can ride faster."),
        ("dog grooming salon", "Muddy paws in, happy tails out."),
        ("secondhand bookstore", "Every book here has already lived one life; give it another."),
        ("plumbing company", "No leak too small, no job too big."),
        ("yoga studio", "Stretch your body, steady your mind."),
    ]
    for business, slogan in slogans:
        out.append((f"Write a one-sentence slogan for a {business}.", "", slogan))

    haikus = [
        ("the sea", "Gray waves fold and break\nthe gulls argue with the wind\nsalt dries on my lips"),
        ("a winter morning", "Frost on the window\nmy breath draws a small white cloud\nthe kettle hums low"),
        ("a city at night", "Neon in puddles\na taxi hisses past me\nthe tall towers blink"),
        (
            "a garden in spring",
            "Green shoots push through soil\na bee hums from bloom to bloom\nthe old gate swings wide",
        ),
        ("friendship", "Two cups on the porch\nwe talk until the stars come\nno need to say more"),
        ("a mountain", "Snow on the summit\nclouds pass like slow, silent ships\nthe stone does not move"),
    ]
    for topic, poem in haikus:
        out.append((f"Write a haiku about {topic}.", "", poem))

    names = [
        ("a board game about pirates", "1. Plunder Bay\n2. Skull and Compass\n3. Rum Runners' Map"),
        ("a vegan food truck", "1. Rolling Greens\n2. Plant on Wheels\n3. The Leafy Ladle"),
        ("a kingdom in a fantasy novel", "1. Eldermarch\n2. Vaelorin\n3. The Kingdom of Ashgrove"),
        ("a robot vacuum cleaner", "1. DustPilot\n2. SweepBot Mini\n3. Crumb Hunter"),
        ("a weekend hiking club", "1. Summit Seekers\n2. Trail Mix Crew\n3. The Muddy Boots Club"),
        (
            "a podcast about history",
            "1. Echoes of the Past\n2. Rewind the Centuries\n3. History Between the Lines",
        ),
    ]
    for thing, answer in names:
        out.append((f"Suggest three names for {thing}.", "", answer))

    rewrites = [
        ("polite", "Give me the report now.", "Could you please send me the report when you have a moment?"),
        (
            "enthusiastic",
            "The new park opens on Saturday.",
            "Great news: the brand-new park opens this Saturday, and we can't wait to see you there!",
        ),
        (
            "formal",
            "We can't fix your laptop till next week.",
            "Unfortunately, we will be unable to repair your laptop until next week.",
        ),
        (
            "concise",
            "At this point in time, we are currently in the process of reviewing all of the applications that we have received.",
            "We are reviewing all applications received.",
        ),
        (
            "casual",
            "Attendance at the quarterly gathering is strongly encouraged.",
            "Try to come to the quarterly get-together if you can!",
        ),
        (
            "dramatic",
            "The cat knocked a glass off the table.",
            "With one slow, deliberate paw, the cat sent the glass plunging from the table to its doom.",
        ),
    ]
    for style, sentence, answer in rewrites:
        out.append((f"Rewrite the following sentence to make it sound more {style}.", sentence, answer))

    openings = [
        (
            "mystery",
            "The letter arrived three days after Edith's funeral, written in her handwriting and dated tomorrow.",
        ),
        (
            "science fiction",
            "When the colony ship finally woke its passengers, the captain discovered they had been asleep four hundred years longer than planned.",
        ),
        (
            "romance",
            "They had been arguing over the last umbrella in the shop for five minutes before either of them noticed it had stopped raining.",
        ),
        (
            "western",
            "The stranger rode into Dry Creek at noon, and by sundown every clock in town had stopped.",
        ),
        (
            "ghost",
            "The house had been empty for twenty years, yet every evening at six, someone set the dining table for two.",
        ),
        (
            "adventure",
            "The map was only half a map, but Nia had already sold everything she owned to follow it.",
        ),
    ]
    for genre, line in openings:
        article = "an" if genre[0] in "aeiou" else "a"
        out.append((f"Write an opening line for {article} {genre} story.", "", line))

    return out


# ---------------------------------------------------------------------------
# math
# ---------------------------------------------------------------------------

HUMAN_MATH = [
    ("What is 15% of 240?", "", "15% of 240 = 0.15 x 240 = 36. Answer: 36"),
    (
        "Solve for x: 3x + 7 = 22.",
        "",
        "Subtract 7 from both sides: 3x = 15. Divide both sides by 3: x = 5. Answer: 5",
    ),
    (
        "A train travels 180 miles in 3 hours. What is its average speed in miles per hour?",
        "",
        "Average speed = distance / time = 180 / 3 = 60 miles per hour. Answer: 60",
    ),
    (
        "A rectangle is 12 cm long and 7 cm wide. What is its area in square centimeters?",
        "",
        "Area = length x width = 12 x 7 = 84 square centimeters. Answer: 84",
    ),
    (
        "What is the sum of the interior angles of a pentagon?",
        "",
        "The sum of the interior angles of an n-sided polygon is (n - 2) x 180. For a pentagon: (5 - 2) x 180 = 3 x 180 = 540 degrees. Answer: 540",
    ),
    (
        "Simplify the fraction 42/56.",
        "",
        "The greatest common divisor of 42 and 56 is 14. 42 / 14 = 3 and 56 / 14 = 4, so 42/56 = 3/4. Answer: 3/4",
    ),
    (
        "A shirt costs $40 and is on sale for 25% off. What is the sale price?",
        "",
        "Discount = 0.25 x 40 = $10. Sale price = 40 - 10 = $30. Answer: 30",
    ),
    (
        "Find the least common multiple of 8 and 12.",
        "",
        "Multiples of 8: 8, 16, 24, ... Multiples of 12: 12, 24, ... The smallest number in both lists is 24. Answer: 24",
    ),
    (
        "Maria has 3 times as many marbles as Leo. Together they have 48 marbles. How many marbles does Maria have?",
        "",
        "Let Leo have x marbles, so Maria has 3x. Then x + 3x = 48, so 4x = 48 and x = 12. Maria has 3 x 12 = 36 marbles. Answer: 36",
    ),
    (
        "Compute the average of these test scores.",
        "78, 85, 92, 67, 88",
        "Sum = 78 + 85 + 92 + 67 + 88 = 410. Average = 410 / 5 = 82. Answer: 82",
    ),
    ("What is 2 to the power of 10?", "", "2^5 = 32, and 2^10 = 2^5 x 2^5 = 32 x 32 = 1024. Answer: 1024"),
    (
        "A car uses 8 liters of fuel per 100 km. How many liters does it need for a 350 km trip?",
        "",
        "350 km is 350 / 100 = 3.5 times 100 km, so it needs 3.5 x 8 = 28 liters. Answer: 28",
    ),
    (
        "Find the length of the hypotenuse of a right triangle whose legs are 9 and 12.",
        "",
        "c = sqrt(9^2 + 12^2) = sqrt(81 + 144) = sqrt(225) = 15. Answer: 15",
    ),
    (
        "A recipe needs 2/3 cup of sugar per batch. How many cups of sugar are needed for 6 batches?",
        "",
        "6 x 2/3 = 12/3 = 4 cups. Answer: 4",
    ),
    (
        "Solve the system of equations x + y = 10 and x - y = 4.",
        "",
        "Adding the two equations gives 2x = 14, so x = 7. Then y = 10 - 7 = 3. Answer: x = 7, y = 3",
    ),
    (
        "What is the median of the numbers below?",
        "13, 7, 21, 4, 9, 16",
        "Sorted: 4, 7, 9, 13, 16, 21. With six numbers, the median is the mean of the two middle values: (9 + 13) / 2 = 11. Answer: 11",
    ),
    (
        "How many minutes are there in a week?",
        "",
        "7 days x 24 hours = 168 hours, and 168 x 60 = 10080 minutes. Answer: 10080",
    ),
    (
        "A savings account pays 5% simple interest per year. How much interest does $2,000 earn in 3 years?",
        "",
        "Interest = principal x rate x time = 2000 x 0.05 x 3 = 100 x 3 = $300. Answer: 300",
    ),
    (
        "What is the probability of rolling a sum of 7 with two fair six-sided dice?",
        "",
        "There are 6 x 6 = 36 equally likely outcomes. Six of them sum to 7: (1,6), (2,5), (3,4), (4,3), (5,2), (6,1). Probability = 6/36 = 1/6. Answer: 1/6",
    ),
    (
        "Evaluate this arithmetic expression.",
        "4 + 6 x (8 - 3) / 2",
        "Parentheses first: 8 - 3 = 5. Then 6 x 5 = 30 and 30 / 2 = 15. Finally 4 + 15 = 19. Answer: 19",
    ),
    (
        "An empty tank holds 500 liters and is filled at 20 liters per minute. How many minutes does it take to fill?",
        "",
        "Time = 500 / 20 = 25 minutes. Answer: 25",
    ),
    (
        "Convert 0.375 to a fraction in lowest terms.",
        "",
        "0.375 = 375/1000. Dividing the numerator and denominator by 125 gives 3/8. Answer: 3/8",
    ),
    (
        "What is the area of a circle with radius 10? Use 3.14 for pi.",
        "",
        "Area = pi x r^2 = 3.14 x 10^2 = 3.14 x 100 = 314. Answer: 314",
    ),
    (
        "Tom is 4 years older than his sister. In 6 years, the sum of their ages will be 40. How old is Tom now?",
        "",
        "Let his sister be s years old, so Tom is s + 4. In 6 years: (s + 6) + (s + 10) = 40, so 2s + 16 = 40, 2s = 24, and s = 12. Tom is 12 + 4 = 16. Answer: 16",
    ),
    (
        "In how many different orders can 5 different books be arranged on a shelf?",
        "",
        "The number of arrangements is 5! = 5 x 4 x 3 x 2 x 1 = 120. Answer: 120",
    ),
    (
        "Factor x^2 - 5x + 6 and find its roots.",
        "",
        "We need two numbers that multiply to 6 and add to -5: -2 and -3. So x^2 - 5x + 6 = (x - 2)(x - 3), and the roots are x = 2 and x = 3. Answer: 2 and 3",
    ),
    (
        "A store sold 120 items on Monday and 15% more on Tuesday. How many items did it sell on Tuesday?",
        "",
        "15% of 120 = 0.15 x 120 = 18. Tuesday's sales = 120 + 18 = 138. Answer: 138",
    ),
    (
        "What is the greatest common divisor of 84 and 126?",
        "",
        "84 = 2^2 x 3 x 7 and 126 = 2 x 3^2 x 7. The common factors are 2 x 3 x 7 = 42. Answer: 42",
    ),
    (
        "Use the order below to find the total cost in dollars.",
        "3 notebooks at $2.50 each\n2 pens at $1.25 each\n1 backpack at $18.00",
        "Notebooks: 3 x 2.50 = 7.50. Pens: 2 x 1.25 = 2.50. Backpack: 18.00. Total = 7.50 + 2.50 + 18.00 = 28.00. Answer: 28",
    ),
    (
        "A cyclist rides uphill at 12 km/h for 30 minutes and then downhill at 30 km/h for 20 minutes. What is her average speed in km/h over the whole ride?",
        "",
        "Uphill distance = 12 x 0.5 = 6 km. Downhill distance = 30 x (20/60) = 10 km. Total = 16 km in 50 minutes, which is 5/6 of an hour. Average speed = 16 / (5/6) = 16 x 6 / 5 = 19.2 km/h. Answer: 19.2",
    ),
]


def check_human_math() -> None:
    """Independent arithmetic checks for every hand-written math answer."""
    F = Fraction
    assert F(15, 100) * 240 == 36
    assert F(22 - 7, 3) == 5
    assert 180 / 3 == 60
    assert 12 * 7 == 84
    assert (5 - 2) * 180 == 540
    assert math.gcd(42, 56) == 14 and F(42, 56) == F(3, 4)
    assert 40 - F(25, 100) * 40 == 30
    assert math.lcm(8, 12) == 24
    assert 48 // 4 * 3 == 36 and 12 + 36 == 48
    assert sum([78, 85, 92, 67, 88]) == 410 and F(410, 5) == 82
    assert 2**10 == 1024 and 32 * 32 == 1024
    assert F(350, 100) * 8 == 28
    assert math.isqrt(9**2 + 12**2) ** 2 == 225 and math.isqrt(225) == 15
    assert 6 * F(2, 3) == 4
    assert (7 + 3, 7 - 3) == (10, 4)
    assert statistics.median([13, 7, 21, 4, 9, 16]) == 11
    assert 7 * 24 * 60 == 10080
    assert 2000 * F(5, 100) * 3 == 300
    assert sum(1 for a in range(1, 7) for b in range(1, 7) if a + b == 7) == 6 and F(6, 36) == F(1, 6)
    assert 4 + F(6 * (8 - 3), 2) == 19
    assert F(500, 20) == 25
    assert F(375, 1000) == F(3, 8)
    assert F(314, 100) * 10**2 == 314
    s = 12
    assert (s + 6) + (s + 4 + 6) == 40 and s + 4 == 16
    assert math.factorial(5) == 120
    assert all(x * x - 5 * x + 6 == 0 for x in (2, 3))
    assert 120 * F(115, 100) == 138
    assert math.gcd(84, 126) == 42
    assert 3 * F("2.50") + 2 * F("1.25") + F("18.00") == 28
    assert (12 * F(1, 2) + 30 * F(20, 60)) / F(50, 60) == F("19.2")


def templated_math(rng: random.Random) -> list[tuple[str, str, str]]:
    out = []

    # 1. Making change.
    shoppers = ["Ava", "Ben", "Chloe", "Diego", "Elif", "Farid", "Grace"]
    goods = [
        ("notebooks", 3),
        ("sandwiches", 6),
        ("movie tickets", 12),
        ("plant pots", 7),
        ("paintbrushes", 4),
        ("coffee mugs", 9),
        ("tennis balls", 2),
    ]
    for name, (item, price) in zip(rng.sample(shoppers, 5), rng.sample(goods, 5)):
        n = rng.randint(2, 8)
        cost = n * price
        bill = next(b for b in (10, 20, 50, 100) if b > cost)
        change = bill - cost
        out.append(
            (
                f"{name} buys {n} {item} at ${price} each and pays with a ${bill} bill. How much change does {name} get back?",
                "",
                f"Total cost = {n} x ${price} = ${cost}. Change = ${bill} - ${cost} = ${change}. Answer: {change}",
            )
        )

    # 2. Percentages.
    seen = {(15, 240)}
    while len(seen) < 6:
        p = rng.choice([5, 10, 12, 20, 25, 30, 40, 45, 60, 75])
        n = rng.choice(range(40, 820, 20))
        if (p, n) in seen:
            continue
        seen.add((p, n))
        result = Fraction(p * n, 100)
        out.append(
            (
                f"What is {p}% of {n}?",
                "",
                f"{p}% of {n} = {p}/100 x {n} = {p * n}/100 = {fmt_num(result)}. Answer: {fmt_num(result)}",
            )
        )

    # 3. Mean of a list (input holds the numbers).
    for _ in range(5):
        k = rng.choice([4, 5])
        nums = [rng.randint(10, 99) for _ in range(k)]
        total = sum(nums)
        mean = Fraction(total, k)
        out.append(
            (
                "Find the mean of the following numbers.",
                ", ".join(map(str, nums)),
                f"Sum = {' + '.join(map(str, nums))} = {total}. There are {k} numbers, so the mean = {total} / {k} = {fmt_num(mean)}. Answer: {fmt_num(mean)}",
            )
        )

    # 4. One-step linear equations.
    for _ in range(5):
        a = rng.randint(2, 9)
        x = rng.choice([v for v in range(-5, 16) if v != 0])
        b = rng.randint(1, 30) * rng.choice([1, -1])
        c = a * x + b
        if b > 0:
            eq = f"{a}x + {b} = {c}"
            step = f"Subtract {b} from both sides: {a}x = {c - b}."
        else:
            eq = f"{a}x - {-b} = {c}"
            step = f"Add {-b} to both sides: {a}x = {c - b}."
        assert Fraction(c - b, a) == x
        out.append(
            (
                f"Solve for x: {eq}.",
                "",
                f"{step} Divide both sides by {a}: x = {x}. Answer: {x}",
            )
        )

    # 5. Reading rate with rounding up.
    readers = ["Hana", "Ivan", "Jonah", "Keiko", "Luca", "Mira"]
    for name in rng.sample(readers, 5):
        per_day = rng.choice([15, 20, 25, 30, 35, 40, 45, 50])
        total = rng.randint(120, 480)
        days = math.ceil(total / per_day)
        q, r = divmod(total, per_day)
        if r == 0:
            work = f"{total} / {per_day} = {q}, so it takes exactly {q} days."
        else:
            work = (
                f"{total} / {per_day} = {q} with a remainder of {r}. After {q} full days, {r} pages are left, "
                f"which takes one more day: {q} + 1 = {days} days."
            )
        assert days == q + (1 if r else 0)
        out.append(
            (
                f"{name} reads {per_day} pages a day. How many days will it take {name} to finish a {total}-page book?",
                "",
                f"{work} Answer: {days}",
            )
        )

    # 6. Order of operations (input holds the expression).
    for i in range(5):
        a, b, c, d = (rng.randint(2, 12) for _ in range(4))
        if i % 2 == 0:
            expr = f"{a} + {b} x {c} - {d}"
            value = a + b * c - d
            work = f"Multiply first: {b} x {c} = {b * c}. Then {a} + {b * c} - {d} = {value}."
        else:
            expr = f"({a} + {b}) x {c} - {d}"
            value = (a + b) * c - d
            work = f"Parentheses first: {a} + {b} = {a + b}. Then {a + b} x {c} = {(a + b) * c}, and {(a + b) * c} - {d} = {value}."
        assert eval(expr.replace(" x ", " * ")) == value
        out.append(
            (
                "Evaluate the following expression, following the order of operations.",
                expr,
                f"{work} Answer: {value}",
            )
        )

    return out


# ---------------------------------------------------------------------------
# summarization
# ---------------------------------------------------------------------------

HUMAN_SUMMARIZATION = [
    (
        "Summarize the following paragraph in one sentence.",
        "The town council voted 6 to 3 on Tuesday night to add protected bike lanes along Harbor Street, the busiest route between the train station and the downtown shopping district. Supporters argued that the lanes would reduce accidents and encourage residents to leave their cars at home. Several shop owners objected, saying the loss of 40 parking spaces would hurt business. Construction is scheduled to begin in April and should take about three months.",
        "The town council voted to add protected bike lanes on Harbor Street despite shop owners' worries about lost parking, with construction starting in April.",
    ),
    (
        "Give a TL;DR of this email.",
        "Hi team, as you know, our office lease ends on June 30. After looking at several options, management has decided to move to the new building on Fifth Avenue, which is closer to the subway and has a larger kitchen. Movers will pack everything on the weekend of June 24. Please label your personal items and clear your desks by Friday, June 23. IT will reconnect all computers before Monday morning. Thanks, Rachel",
        "The office is moving to a new building on Fifth Avenue; label your personal items and clear your desks by Friday, June 23, before the movers come that weekend.",
    ),
    (
        "What is the main idea of this passage?",
        "Honeybees share the location of food through a movement known as the waggle dance. A forager returning to the hive walks in a figure-eight pattern, waggling her body during the straight middle run. The angle of that run relative to vertical shows the direction of the food relative to the sun, and the length of the waggle shows how far away it is. Other bees follow the dancer and then fly out to find the source themselves.",
        "Honeybees use the waggle dance to tell their hivemates the direction and distance of a food source.",
    ),
    (
        "Summarize this customer complaint for a support agent in one or two sentences.",
        "I ordered a queen-size bed frame on March 3 and paid extra for express shipping. The tracking page said it was delivered on March 6, but nothing arrived at my house, and my neighbors didn't receive it either. I've called twice and was told someone would call me back within 24 hours, which never happened. I either want the frame delivered this week or a full refund, including the shipping fee.",
        "The customer paid for express shipping on a bed frame that was marked delivered but never arrived, never got the promised callback, and wants delivery this week or a full refund including shipping.",
    ),
    (
        "Condense these meeting notes into two sentences.",
        "Marketing sync, Monday. Attendees: Jo, Raj, Lena, Omar. The spring campaign launch slips one week to April 14 because the video edit is behind schedule. Raj will ask the agency for a revised timeline by Wednesday. Lena reported that email sign-ups rose 18 percent after the website redesign. The budget for social ads stays the same. Omar will draft three headline options for the landing page. Next meeting Monday at 10.",
        "The spring campaign launch is delayed a week to April 14 because the video edit is behind, and Raj will get a revised timeline from the agency. Email sign-ups rose 18 percent after the redesign, the social ad budget is unchanged, and Omar will draft landing page headlines.",
    ),
    (
        "Summarize in one sentence.",
        "Tides are caused mainly by the gravitational pull of the Moon, with a smaller contribution from the Sun. As Earth rotates, most coastlines pass through two bulges of ocean water each day, producing two high tides and two low tides. When the Sun and Moon line up, around new and full moons, their effects combine to create especially large spring tides.",
        "Tides come mainly from the Moon's gravity, helped by the Sun, giving most coasts two high and two low tides a day and extra-large spring tides when the Sun and Moon line up.",
    ),
    (
        "Write a one-line summary of this story.",
        "Every morning for eleven years, Mr. Okafor waved at the school bus as it passed his window. The children called him the Window Man and waved back. One Monday, the curtain stayed closed. By Wednesday, the bus driver was worried enough to knock on his door and found him on the floor with a broken hip. He recovered in the hospital, where the children sent him a giant card signed by forty-two students: 'Get well soon, Window Man.'",
        "When a man who waved at the school bus every morning stopped appearing, the worried driver found him injured, and the children sent him a get-well card in the hospital.",
    ),
    (
        "Summarize the key findings of this research abstract.",
        "We examined whether short walking breaks improve afternoon concentration in office workers. In a four-week study at three companies, 120 participants were randomly assigned either to take a 10-minute walk after lunch or to remain seated at their desks. Attention was measured each day with a five-minute computer task at 10 a.m. and again at 3 p.m., and participants rated their sleepiness on a seven-point scale. Participants who walked scored 12 percent higher on the afternoon attention test and reported less sleepiness than those who stayed seated. No significant difference between the groups was found in morning scores, and the effect did not depend on age or job type. These results suggest that brief activity after lunch may counter the typical afternoon slump.",
        "In a four-week randomized study of 120 office workers, a 10-minute walk after lunch raised afternoon attention scores by 12 percent and reduced sleepiness, with no effect on morning scores.",
    ),
    (
        "Summarize the plot of this book description in one sentence.",
        "Seventeen-year-old Ines has spent her whole life on a floating city that never touches land. When the city's water filters begin failing, she discovers that the council has been hiding a map to an island that may not be a myth after all. Together with a disgraced engineer and her reluctant younger brother, Ines steals a patrol boat and sets out across a sea full of storms and pirates to find it before the city runs dry.",
        "When her floating city's water filters start failing, a teenager steals a boat with an engineer and her brother to find a hidden island before the city runs out of water.",
    ),
    (
        "Provide a brief summary of this product announcement.",
        "Lumina today introduced the Desk Lamp Pro, a smart LED lamp that adjusts its color temperature automatically throughout the day. The lamp connects to a phone app, includes a wireless charging pad in its base, and uses 40 percent less energy than the company's previous model. It will be available in black and white starting next month for $89.",
        "Lumina's $89 Desk Lamp Pro, out next month, is a smart LED lamp with automatic color adjustment, app control, a built-in wireless charger, and 40 percent lower energy use.",
    ),
    (
        "Summarize this job posting for a candidate who only has ten seconds to read it.",
        "Greenfield Farms is hiring a part-time delivery driver for our weekend farmers' market routes. Shifts run Saturday and Sunday from 6 a.m. to 1 p.m. Applicants must have a clean driving record, be able to lift 50 pounds, and be comfortable talking with customers. Pay is $19 per hour plus free produce every week. Experience with box trucks is a plus but not required. To apply, send a short note about yourself to jobs@greenfieldfarms.example.",
        "Part-time weekend delivery driver, 6 a.m. to 1 p.m., $19 an hour plus free produce; requires a clean driving record and the ability to lift 50 pounds.",
    ),
    (
        "Summarize the match report.",
        "The Riverside Hawks beat the Northgate Foxes 3-1 on Saturday to move to the top of the regional league. The Foxes took an early lead through a penalty in the 12th minute, but Hawks midfielder Sara Lind equalized just before halftime. Two second-half goals from substitute Mia Grant sealed the win. Hawks coach Daniel Ruiz praised his team's patience and called it their best result of the season.",
        "The Riverside Hawks came from behind to beat the Northgate Foxes 3-1, with an equalizer from Sara Lind and two goals from substitute Mia Grant, to go top of the regional league.",
    ),
    (
        "In two sentences, summarize what this passage says about volcanoes.",
        "A volcano forms where molten rock, called magma, rises from deep inside the Earth and reaches the surface. Once it erupts, the molten rock is called lava. Many volcanoes are found along the edges of tectonic plates, such as the ring of volcanoes surrounding the Pacific Ocean. Some erupt explosively, throwing ash high into the atmosphere, while others release slow-moving rivers of lava. Scientists monitor earthquakes, ground swelling, and gas emissions to help predict eruptions.",
        "Volcanoes form where magma rises to the surface, often along tectonic plate edges such as those around the Pacific, and they can erupt explosively or with slow lava flows. Scientists try to predict eruptions by watching for earthquakes, ground swelling, and gas emissions.",
    ),
    (
        "Summarize this text message conversation.",
        "Alex: Are we still on for dinner tonight?\nJamie: Yes! But can we make it 8 instead of 7? Work is running late.\nAlex: Sure. Same place, the Thai restaurant on Elm?\nJamie: Actually they're closed on Mondays. How about the pizza place next to the cinema?\nAlex: Works for me. See you at 8.\nJamie: Perfect, I'll book a table.",
        "Alex and Jamie moved dinner to 8 p.m. at the pizza place next to the cinema because the Thai restaurant is closed on Mondays, and Jamie will book a table.",
    ),
    (
        "Briefly summarize the following recipe.",
        "To make a simple tomato soup, heat two tablespoons of olive oil in a large pot and cook one chopped onion and two cloves of garlic until soft. Add two cans of crushed tomatoes, two cups of vegetable broth, a pinch of sugar, and salt and pepper. Simmer for 20 minutes, then blend until smooth. Stir in a splash of cream if you like, and serve with grilled cheese sandwiches.",
        "Soften onion and garlic in olive oil, add crushed tomatoes, broth, sugar, and seasoning, simmer for 20 minutes, blend, and finish with cream if desired.",
    ),
    (
        "Summarize this notice from a landlord in one sentence.",
        "Dear residents, please be advised that the water supply to the building will be shut off on Thursday, May 9, from 9 a.m. to approximately 2 p.m. while plumbers replace the main valve in the basement. We recommend filling a few containers with water the night before. We apologize for the inconvenience and appreciate your patience. If you have any questions, please contact the management office.",
        "The building's water will be off on Thursday, May 9, from 9 a.m. to about 2 p.m. while the main valve is replaced, so residents should store some water the night before.",
    ),
    (
        "I'm putting together a newsletter for parents. Read the announcement below and summarize it in a single friendly sentence that tells them what is happening, when, and whether they need to do anything.",
        "Maplewood Elementary will hold its annual Science Night on Thursday, October 17, from 5:30 to 7:30 p.m. in the school gym. Students in grades 3 to 5 will display their projects, and a local museum will run hands-on experiments for younger siblings. Pizza will be available for purchase. Families do not need to register in advance, but students presenting projects should arrive by 5:00 p.m. to set up.",
        "Join us for Science Night on Thursday, October 17, from 5:30 to 7:30 p.m. in the gym; no registration is needed, but students presenting projects should arrive by 5:00 p.m. to set up.",
    ),
    (
        "Summarize this product review.",
        "I bought this robot vacuum for my small apartment, and it has mostly been a good purchase. It handles hardwood floors and thin rugs well and picks up a surprising amount of cat hair. However, it often gets stuck under the couch, and the app disconnects from Wi-Fi every few days. Battery life is about 90 minutes, which is plenty for my space. For the price, I'd recommend it, but don't expect it to be perfect.",
        "The reviewer recommends the robot vacuum for its cleaning on hard floors and pet hair and its ample battery life, despite it getting stuck under furniture and an unreliable app connection.",
    ),
    (
        "Summarize the following history passage for a middle school student.",
        "In the mid-1400s, Johannes Gutenberg developed a printing press in Mainz, Germany, that used movable metal type. Before this, most books in Europe were copied by hand, which was slow and expensive. Gutenberg's method allowed pages to be printed quickly and in large numbers. Within a few decades, printing shops had spread to many European cities, making books cheaper and helping ideas travel faster than ever before.",
        "In the mid-1400s, Gutenberg's printing press with movable type let people make books quickly and cheaply instead of copying them by hand, which helped ideas spread across Europe.",
    ),
    (
        "Give a one-sentence summary of this podcast episode description.",
        "In this week's episode, host Carla Benning talks with retired firefighter Tom Reyes about his 30 years on the job. Tom shares the story of his most difficult rescue, explains how firefighting equipment has changed since the 1990s, and offers practical tips for making your home safer, from testing smoke alarms to planning an escape route with your family.",
        "Retired firefighter Tom Reyes talks about his 30-year career, his hardest rescue, how firefighting gear has changed, and tips for making homes safer.",
    ),
    (
        "Summarize this weather forecast in one sentence.",
        "Expect a cloudy start on Saturday with light showers clearing by midday. Afternoon temperatures will reach around 18 degrees with a gentle breeze from the west. Sunday looks dry and sunny, with highs near 22 degrees, making it the better day for outdoor plans. A cold front arrives on Monday, bringing heavy rain and much cooler air.",
        "Saturday starts cloudy with morning showers and a high near 18 degrees, Sunday will be sunny and warmer at about 22, and a cold front brings heavy rain and cooler air on Monday.",
    ),
    (
        "Summarize the argument made in this opinion piece.",
        "Cities should stop building new parking garages downtown. Each garage costs tens of millions of dollars, takes up land that could hold housing or parks, and encourages more people to drive into already congested streets. Meanwhile, many existing garages sit half empty on weekdays. Instead, the money would be better spent on frequent bus service and safe walking routes, which move more people using less space.",
        "The author argues that cities should stop building downtown parking garages, which are costly, waste land, and add traffic, and should invest in frequent buses and safe walking routes instead.",
    ),
    (
        "Summarize this biography in two sentences.",
        "Elena Marsh was born in 1962 in a small fishing village and taught herself to draw using charcoal from the family stove. Her parents could not afford art lessons, so she copied the pictures in old magazines and sketched the boats in the harbor every evening. After winning a regional art prize at sixteen, she moved to the capital to study illustration, paying her way by painting shop signs. She went on to illustrate more than 60 children's books, several of which have been translated into a dozen languages, and she became known for her soft watercolor seascapes. In 2010 she founded a free art school in her home village, which has since trained over 500 young artists. She still teaches a class there every Saturday morning.",
        "Elena Marsh, a self-taught artist from a fishing village, studied illustration in the capital and went on to illustrate more than 60 children's books. In 2010 she founded a free art school in her home village that has trained over 500 young artists.",
    ),
    (
        "Summarize the instructions in one sentence.",
        "To reset your router, first make sure it is plugged in and powered on. Locate the small reset hole on the back of the device. Insert a straightened paper clip and hold the button down for about 10 seconds, until the lights on the front begin to flash. Release the button and wait two to three minutes for the router to restart. Then reconnect using the default network name and password printed on the label underneath.",
        "With the router on, hold the reset button on the back with a paper clip for about 10 seconds until the lights flash, wait a few minutes for it to restart, and reconnect using the default details on the label.",
    ),
    (
        "Summarize the following in under 20 words.",
        "Starting next Monday, the cafeteria will offer a vegetarian option at every lunch, in response to a student survey in which nearly half of respondents asked for more meat-free choices. Prices will remain the same, and the weekly menu will be posted online each Friday.",
        "From next Monday, the cafeteria adds a daily vegetarian lunch option at the same prices, after student requests.",
    ),
    (
        "Summarize this travel blog entry.",
        "We arrived in the mountain village just after sunset, exhausted from the eight-hour bus ride. Our guesthouse host greeted us with bowls of hot lentil soup and insisted we sit by the fire. The next morning we woke to a view of snow-capped peaks glowing pink in the sunrise. We spent the day hiking to a nearby lake, where we saw only two other people, and returned in time for another enormous dinner. It was the most peaceful day of the whole trip.",
        "After a long bus ride to a mountain village, the writer enjoyed a warm welcome, a sunrise over snowy peaks, and a quiet lake hike, making it the most peaceful day of the trip.",
    ),
    (
        "Summarize the policy change described below.",
        "Effective January 1, employees may work from home up to two days per week, provided their manager approves a regular schedule in advance. Team meetings will be held on Tuesdays and Thursdays, when everyone is expected in the office. Employees working remotely must be reachable by phone or chat during core hours of 10 a.m. to 3 p.m., and they should keep their calendar status up to date. The company will provide a one-time allowance of $300 for home office equipment such as monitors or chairs; receipts must be submitted through the expense system by March 31. Roles that require on-site equipment, including lab and reception staff, are not eligible. The policy will be reviewed after six months based on feedback from a staff survey and team productivity data.",
        "From January 1, eligible employees may work from home up to two manager-approved days a week, but must be in the office on Tuesdays and Thursdays and reachable from 10 a.m. to 3 p.m. when remote. A one-time $300 home office allowance is available, on-site roles such as lab and reception staff are excluded, and the policy will be reviewed after six months.",
    ),
    (
        "Summarize this movie plot in one sentence.",
        "A retired jazz pianist who hasn't played in twenty years moves in with his daughter after a fall. Bored and grumpy, he starts sneaking out at night to a basement club, where he meets a shy teenage drummer. As the two practice together for an open-mic contest, the old man begins to confront the regrets that made him quit, and his daughter finally learns why he stopped playing.",
        "A grumpy retired jazz pianist living with his daughter secretly starts playing again with a shy teenage drummer and confronts the regrets that made him quit.",
    ),
    (
        "Summarize the main point.",
        "Many people assume that a goldfish has a memory of only a few seconds, but experiments have shown otherwise. In several studies, goldfish learned to push levers or swim through simple mazes to get food and remembered these tasks for weeks or even months. Some were even trained to respond to particular sounds at feeding time. The three-second memory claim appears to be a myth with no scientific basis.",
        "Contrary to popular belief, experiments show that goldfish can remember learned tasks for weeks or months, so the three-second memory claim is a myth.",
    ),
    (
        "Summarize the following in one sentence, keeping the most important numbers.",
        "The city library's summer reading challenge wrapped up last week with record participation. A total of 3,412 children signed up, up from about 2,600 last year, and together they logged more than 48,000 hours of reading. Librarians credited the increase to new partnerships with local schools and a prize raffle for bikes and tablets.",
        "A record 3,412 children joined the library's summer reading challenge, up from about 2,600 last year, logging over 48,000 hours of reading thanks to school partnerships and a prize raffle.",
    ),
]


def templated_summarization(rng: random.Random) -> list[tuple[str, str, str]]:
    out = []

    # 1. Facility closure news brief.
    cities = ["Westbrook", "Linden Falls", "Port Aster", "Cedar Hill", "Millbury", "Ashford"]
    facilities = [
        (
            "public swimming pool",
            "a new heating system",
            "accessible changing rooms",
            "the pool at Eastside High School",
        ),
        (
            "central library",
            "a larger children's section",
            "faster public computers",
            "the mobile library van",
        ),
        (
            "community ice rink",
            "new refrigeration equipment",
            "heated spectator seating",
            "the rink in neighboring Oakdale",
        ),
        (
            "main bus station",
            "covered waiting areas",
            "real-time arrival screens",
            "temporary stops on Market Street",
        ),
        (
            "city museum",
            "climate-controlled galleries",
            "a rooftop cafe",
            "its pop-up exhibits at the town hall",
        ),
    ]
    months = ["March", "April", "June", "September", "October"]
    for city, (fac, imp1, imp2, alt), month in zip(rng.sample(cities, 5), facilities, rng.sample(months, 5)):
        weeks = rng.randint(6, 20)
        cost = f"${rng.randint(2, 19) * 100_000:,}"
        day = rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"])
        reopen = rng.choice(["the end of the year", "early spring", "late summer", "the holiday season"])
        text = (
            f"{city} officials announced on {day} that the {fac} will close for {weeks} weeks starting in {month} "
            f"for renovations. The project, expected to cost {cost}, will add {imp1} and {imp2}. During the closure, "
            f"residents are encouraged to use {alt} instead. Officials said they expect the {fac} to reopen by "
            f"{reopen}, weather permitting, and promised regular updates on the city website."
        )
        summary = (
            f"{city}'s {fac} will close for {weeks} weeks from {month} for a {cost} renovation adding {imp1} "
            f"and {imp2}, and is expected to reopen by {reopen}."
        )
        out.append(("Summarize this news brief in one sentence.", text, summary))

    # 2. Customer review.
    reviews = [
        (
            "cordless drill",
            "three months",
            "it is light enough to use overhead",
            "the battery charges in under an hour",
            "the case is flimsy and the latch already broke",
            "I would recommend it to anyone doing home repairs",
            "recommends",
        ),
        (
            "electric kettle",
            "two weeks",
            "it boils water very quickly",
            "the temperature settings are handy for tea",
            "the lid is hard to open with one hand",
            "it is a solid buy for the price",
            "recommends",
        ),
        (
            "hiking backpack",
            "a month",
            "it has plenty of pockets",
            "the straps are well padded",
            "the zippers stick and one of them has already split",
            "I would not buy it again",
            "does not recommend",
        ),
        (
            "office chair",
            "six months",
            "the lumbar support is excellent",
            "assembly took only fifteen minutes",
            "the armrests wobble slightly",
            "it has made my workdays much more comfortable",
            "recommends",
        ),
        (
            "wireless keyboard",
            "two months",
            "the keys are quiet",
            "it pairs with three devices",
            "it disconnects several times a day and drops keystrokes",
            "I am returning it",
            "does not recommend",
        ),
    ]
    for product, duration, pro1, pro2, con, verdict, rec in reviews:
        text = (
            f"I have been using the {product} for {duration} now. The best thing about it is that {pro1}, "
            f"and I also like that {pro2}. My main complaint is that {con}, which gets annoying after a while. "
            f"Overall, {verdict}."
        )
        summary = f"After {duration} of use, the reviewer {rec} the {product}: {pro1} and {pro2}, but {con}."
        out.append(("Summarize this customer review in one sentence.", text, summary))

    # 3. Match report.
    teams = [
        "Harbor City Gulls",
        "Redwood Rangers",
        "Stonebridge Lions",
        "Lakeside Otters",
        "Kingsford Comets",
        "Elmwood Wanderers",
        "Brookvale Bears",
        "Summit Town Eagles",
        "Fairhaven Pilots",
        "Oakridge Royals",
    ]
    scorers = ["Nadia Okoro", "Leo Brandt", "Sofia Marin", "Kai Tanaka", "Ruth Adeyemi"]
    keepers = ["Ines Duarte", "Mark Olsen", "Petra Novak", "Samir Haddad", "Lucy Chen"]
    chosen = rng.sample(teams, 10)
    for i in range(5):
        winner, loser = chosen[2 * i], chosen[2 * i + 1]
        ls = rng.randint(0, 2)
        ws = ls + rng.randint(1, 3)
        minute = rng.randint(5, 40)
        crowd = f"{rng.randint(3, 28) * 1000 + rng.choice([200, 400, 600, 800]):,}"
        day = rng.choice(["Saturday", "Sunday", "Wednesday"])
        position = rng.choice(["first", "second", "third", "fourth"])
        games = rng.randint(3, 12)
        text = (
            f"The {winner} defeated the {loser} {ws}-{ls} on {day} in front of a crowd of {crowd}. "
            f"{scorers[i]} opened the scoring in the {ordinal(minute)} minute, and the {winner} never looked back. "
            f"The {loser} had chances to respond but were denied by several saves from {winner} goalkeeper {keepers[i]}. "
            f"The result leaves the {winner} {position} in the table with {games} games remaining."
        )
        summary = (
            f"The {winner} beat the {loser} {ws}-{ls} on {day}, with {scorers[i]} scoring first and goalkeeper "
            f"{keepers[i]} making key saves, leaving them {position} with {games} games to play."
        )
        out.append(("Give a one-sentence summary of this match report.", text, summary))

    # 4. Request email.
    emails = [
        (
            "Priya",
            "Daniel",
            "the client moved the product demo forward by a week",
            "send the updated slides",
            "Thursday at noon",
            "I only need the pricing and timeline sections; the rest can stay as they are.",
        ),
        (
            "Marcus",
            "Helen",
            "the auditors have asked for last year's travel receipts",
            "upload the receipts to the shared finance folder",
            "the end of the month",
            "Scanned copies are fine, but please name each file with the date and amount.",
        ),
        (
            "Chen",
            "Olivia",
            "the conference organizers need final speaker details",
            "confirm the talk title and a two-line speaker bio",
            "Friday",
            "If you would like to change the session time, tell me by then as well.",
        ),
        (
            "Fatima",
            "George",
            "the warehouse is switching to a new inventory system next month",
            "complete the short online training course",
            "June 15",
            "The course takes about forty minutes and can be paused and resumed at any time.",
        ),
        (
            "Noah",
            "Beatriz",
            "the team budget for next year is due to the director soon",
            "send estimated software and equipment costs for the team",
            "Tuesday morning",
            "A rough figure is fine for now; we can refine the numbers in January.",
        ),
    ]
    for sender, recipient, reason, request, deadline, extra in emails:
        text = (
            f"Hi {recipient},\n\nI hope your week is going well. I'm writing because {reason}. "
            f"Could you please {request} by {deadline}? {extra} Let me know if you have any questions.\n\n"
            f"Thanks,\n{sender}"
        )
        summary = f"{sender} asks {recipient} to {request} by {deadline} because {reason}."
        out.append(("Summarize this email in one sentence.", text, summary))

    # 5. Weather forecast.
    forecasts = [
        (
            "Monday",
            (18, 24),
            "sunny",
            "a light breeze",
            "a band of heavy rain",
            "Wednesday",
            "clear up",
            "Anyone commuting by bike should pack waterproof clothing.",
        ),
        (
            "Friday",
            (24, 30),
            "warm and humid",
            "little wind",
            "a line of thunderstorms",
            "Sunday",
            "turn bright again",
            "Outdoor events on Saturday afternoon may be interrupted by lightning.",
        ),
        (
            "Tuesday",
            (14, 19),
            "mild and partly cloudy",
            "gusty winds from the south",
            "a cold front with sleet",
            "Thursday",
            "brighten",
            "Drivers should allow extra time on hilltop roads.",
        ),
        (
            "Saturday",
            (10, 15),
            "bright and crisp",
            "calm conditions",
            "a blanket of fog and drizzle",
            "Monday",
            "clear by late morning",
            "Ferry services may run with delays while visibility is poor.",
        ),
        (
            "Wednesday",
            (28, 34),
            "hot and sunny",
            "a gentle sea breeze",
            "cooler, cloudy air from the north",
            "Friday",
            "stay mostly dry",
            "Gardeners may want to water plants early before the change arrives.",
        ),
    ]
    for day1, (lo, hi), cond1, wind1, cond2, day3, cond3, advice in forecasts:
        t1 = rng.randint(lo, hi)
        t2 = t1 - rng.randint(4, 9)
        t3 = t2 + rng.randint(2, 6)
        day2 = rng.choice(["the following day", "the next day"])
        text = (
            f"{day1} will be {cond1} with a high of {t1} degrees and {wind1}. Conditions change {day2}, "
            f"when {cond2} moves in and temperatures drop to around {t2} degrees. {advice} By {day3}, skies "
            f"should {cond3}, with highs returning to about {t3} degrees."
        )
        summary = (
            f"After a {cond1} {day1} near {t1} degrees, {cond2} arrives {day2} with temperatures around {t2}, "
            f"before conditions settle by {day3} with highs near {t3}."
        )
        out.append(("Summarize the forecast briefly.", text, summary))

    # 6. Meeting notes.
    meetings = [
        (
            "Atlas",
            "the backend is about 80 percent complete",
            "postpone the beta release to May 3",
            ("Grace", "write the remaining API tests"),
            ("Victor", "prepare the release notes"),
            "the payment provider has not confirmed its test environment",
        ),
        (
            "Beacon",
            "user interviews are finished and the findings are summarized",
            "focus the next sprint on the onboarding flow",
            ("Amir", "turn the findings into design tickets"),
            ("Lena", "schedule usability tests"),
            "two designers are on leave next week",
        ),
        (
            "Cobalt",
            "the data migration ran successfully on the staging server",
            "migrate the production database over the weekend",
            ("Sven", "write a rollback plan"),
            ("Maya", "notify customers about the maintenance window"),
            "the migration may take longer than the planned six hours",
        ),
        (
            "Delta",
            "the mobile app passed its accessibility review",
            "submit the app to both stores on Friday",
            ("Ruth", "finalize the store screenshots"),
            ("Jonas", "update the privacy policy"),
            "store approval can take several days",
        ),
        (
            "Ember",
            "the marketing site traffic doubled after the launch post",
            "add a pricing page before the next campaign",
            ("Tariq", "draft the pricing copy"),
            ("Nell", "build the page layout"),
            "pricing for the enterprise tier is not yet approved",
        ),
    ]
    attendee_pool = [
        "Grace",
        "Victor",
        "Amir",
        "Lena",
        "Sven",
        "Maya",
        "Ruth",
        "Jonas",
        "Tariq",
        "Nell",
        "Paula",
        "Dev",
    ]
    for project, status, decision, (o1, a1), (o2, a2), risk in meetings:
        others = [p for p in attendee_pool if p not in (o1, o2)]
        attendees = sorted([o1, o2] + rng.sample(others, 2))
        nxt = rng.choice(["Monday at 9", "Tuesday at 2", "Thursday at 11"])
        text = (
            f"Project {project} weekly meeting. Attendees: {', '.join(attendees)}. Status: {status}. "
            f"Decision: the team agreed to {decision}. Action items: {o1} will {a1}; {o2} will {a2}. "
            f"Risks: {risk}. Next meeting: {nxt}."
        )
        summary = (
            f"At the {project} meeting, the team reported that {status}. It agreed to {decision}, with {o1} "
            f"set to {a1} and {o2} to {a2}, although {risk}."
        )
        out.append(("Condense the following meeting notes into one or two sentences.", text, summary))

    return out


# ---------------------------------------------------------------------------
# assembly, writing and validation
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# template families and their phrasings
# ---------------------------------------------------------------------------

# Each templated record belongs to one family (matched on the instruction its template wrote). Where a
# family's template wrote the same instruction for every record, the family's records take the
# phrasings below in turn, so no instruction text is shared by more than MAX_PER_INSTRUCTION records.
# The phrasings avoid the tuning set's (scripts/build_tuneset.py): validate() checks the masked
# skeleton and five-word prefix of every instruction against tuneset.jsonl.
FAMILIES = {
    "classification": [
        ("review-sentiment", r"^Classify the sentiment of this review as positive or negative\.$", [
            "Classify the sentiment of this review as positive or negative.",
            "Does this review sound positive or negative overall?",
            "Read the product review and say whether its sentiment is positive or negative.",
            "How does this reviewer feel - positive or negative?",
            "Judge the overall sentiment of the review below (positive/negative).",
        ]),
        ("prime", r"^Is the following number prime\? Answer yes or no\.$", [
            "Is the following number prime? Answer yes or no.",
            "Tell me if this number is a prime number.",
            "Prime or not? Check the number below.",
            "Check whether the given integer is a prime.",
            "Answer yes or no: is the number below prime?",
        ]),
        ("headline-topic", r"^Assign this headline to one of these topics", [
            "Assign this headline to one of these topics: sports, politics, technology, or business.",
            "Which section of a newspaper would this headline go in: sports, politics, technology, or business?",
            "Topic of the headline below? Pick sports, politics, technology, or business.",
            "Categorize the headline as sports, politics, technology, or business news.",
            "Sports, politics, technology or business: what is this headline about?",
        ]),
        ("leap-year", r"^Determine whether the following year is a leap year", [
            "Determine whether the following year is a leap year. Answer yes or no.",
            "Under the Gregorian calendar, is this year a leap year?",
            "Tell me whether the year below is a leap year.",
            "Would the calendar for this year include February 29?",
            "Leap year check: yes or no for the year below?",
        ]),
        ("animal-class", r"^Is the following animal a mammal, bird, reptile, amphibian, or fish\?$", [
            "Is the following animal a mammal, bird, reptile, amphibian, or fish?",
            "Which class of vertebrate does this animal belong to: mammal, bird, reptile, amphibian, or fish?",
            "Mammal, bird, reptile, amphibian or fish? Classify the animal.",
            "Name the animal group (mammal, bird, reptile, amphibian, fish) for the creature below.",
            "To which of these groups does the animal belong - mammal, bird, reptile, amphibian, or fish?",
        ]),
        ("spam", r"^Classify this message as spam or not spam\.$", [
            "Classify this message as spam or not spam.",
            "Is this message spam? Answer spam or not spam.",
            "Would a mail filter be right to flag this? Label it spam or not spam.",
            "Spam or legitimate? Label the message below as spam or not spam.",
            "Sort this message into spam or not spam.",
        ]),
    ],
    "code": [
        ("list-reduction", r"^Write a Python function that returns the .* of a list of numbers\.$", None),
        ("string-predicate", r"^Write a Python function that checks whether a string", None),
        ("expression-value", r"^What does the following Python expression evaluate to\?$", [
            "What does the following Python expression evaluate to?",
            "What value does Python give for this expression?",
            "Evaluate this Python expression and give the result.",
        ]),
        ("unit-conversion-function", r"^Write a Python function that converts", None),
        ("range-comprehension", r"^Write a list comprehension that gives", None),
    ],
    "general_qa": [
        ("capital", r"^What is the capital of", None),
        ("chemical-symbol", r"^What is the chemical symbol for", None),
        ("unit-count", r"^How many \w+ are in \d+ \w+\?$", None),
        ("novel-author", r"^Who wrote the novel", None),
        ("event-year", r"^In what year did", None),
        ("passage-fact", r"^Based on the passage,", None),
    ],
    "generation": [
        ("slogan", r"^Write a one-sentence slogan for", None),
        ("haiku", r"^Write a haiku about", None),
        ("three-names", r"^Suggest three names for", None),
        ("tone-rewrite", r"^Rewrite the following sentence to make it sound more", None),
        ("opening-line", r"^Write an opening line for", None),
    ],
    "math": [
        ("making-change", r" buys \d+ .* pays with a \$\d+ bill\.", None),
        ("percent-of", r"^What is \d+% of \d+\?$", None),
        ("mean", r"^Find the mean of the following numbers\.$", [
            "Find the mean of the following numbers.",
            "Calculate the arithmetic mean of the list below.",
            "Average these numbers.",
        ]),
        ("linear-equation", r"^Solve for x:", None),
        ("reading-days", r" reads \d+ pages a day\.", None),
        ("order-of-operations", r"^Evaluate the following expression, following the order of operations\.$", [
            "Evaluate the following expression, following the order of operations.",
            "Find the value of this expression; mind the order of operations.",
            "Compute the expression below step by step.",
        ]),
    ],
    "summarization": [
        ("news-brief", r"^Summarize this news brief in one sentence\.$", [
            "Summarize this news brief in one sentence.",
            "In one sentence, what does this local news item report?",
            "Write a single-sentence summary of the news brief below.",
            "Give the headline facts of this announcement in one sentence.",
            "What happened, according to this brief? Summarize in one sentence.",
        ]),
        ("customer-review", r"^Summarize this customer review in one sentence\.$", [
            "Summarize this customer review in one sentence.",
            "In a sentence, what does this reviewer think of the product?",
            "Write a one-sentence digest of this review for other shoppers.",
            "Summarize the reviewer's pros, cons and verdict in one sentence.",
            "Reduce this product review to a single sentence.",
        ]),
        ("match-report", r"^Give a one-sentence summary of this match report\.$", [
            "Give a one-sentence summary of this match report.",
            "Recount the game described below in one sentence.",
            "In one sentence, who won this match and how?",
            "Write a single sentence recapping this match.",
            "For a fan who missed the game, summarize the report in one sentence.",
        ]),
        ("request-email", r"^Summarize this email in one sentence\.$", [
            "Summarize this email in one sentence.",
            "What is this email asking for? Answer in one sentence.",
            "Write a one-sentence summary of the message below.",
            "Based on this email, who needs to do what by when? One sentence.",
            "Squeeze this email into a single sentence.",
        ]),
        ("weather-forecast", r"^Summarize the forecast briefly\.$", [
            "Summarize the forecast briefly.",
            "What weather is coming? Summarize the forecast in one sentence.",
            "Turn this forecast into a one-sentence outlook.",
            "In a sentence, what should people expect from the weather this week?",
            "Briefly summarize the weather outlook below.",
        ]),
        ("meeting-notes", r"^Condense the following meeting notes into one or two sentences\.$", [
            "Condense the following meeting notes into one or two sentences.",
            "Summarize what the team decided and who does what, in one or two sentences.",
            "Write a short summary of these meeting notes.",
            "Give me the outcome of this meeting in one or two sentences.",
            "Recap these meeting minutes in one or two sentences.",
        ]),
    ],
}  # fmt: skip
MAX_PER_INSTRUCTION = 3


def assign_families(category: str, items: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str]]:
    """``(family, instruction, input, response)`` for each templated item: the family whose pattern
    matches the template's instruction, and the family's next phrasing where it has phrasings."""
    used: dict[str, int] = {}
    out = []
    for instruction, input_text, response in items:
        matches = [f for f in FAMILIES[category] if re.search(f[1], instruction)]
        assert len(matches) == 1, (category, instruction, [m[0] for m in matches])
        family, _, phrasings = matches[0]
        k = used.get(family, 0)
        used[family] = k + 1
        out.append(
            (family, phrasings[k % len(phrasings)] if phrasings else instruction, input_text, response)
        )
    return out


HUMAN = {
    "classification": HUMAN_CLASSIFICATION,
    "code": HUMAN_CODE,
    "general_qa": HUMAN_GENERAL_QA,
    "generation": HUMAN_GENERATION,
    "math": HUMAN_MATH,
    "summarization": HUMAN_SUMMARIZATION,
}

TEMPLATED = {
    "classification": templated_classification,
    "code": templated_code,
    "general_qa": templated_general_qa,
    "generation": templated_generation,
    "math": templated_math,
    "summarization": templated_summarization,
}

ID_PREFIX = {
    "classification": "cls",
    "code": "code",
    "general_qa": "qa",
    "generation": "gen",
    "math": "math",
    "summarization": "sum",
}


def build_records() -> list[dict]:
    check_human_math()
    records = []
    for category in CATEGORIES:
        # A separate, fixed-seed generator per category keeps each category stable
        # even if another category's templates change.
        rng = random.Random(f"{SEED}-{category}")
        handwritten = [("", *item) for item in HUMAN[category]]
        templated = assign_families(category, TEMPLATED[category](rng))
        for source, items in (("handwritten", handwritten), ("templated", templated)):
            tag = "h" if source == "handwritten" else "t"
            for i, (family, instruction, input_text, response) in enumerate(items, start=1):
                rec = {
                    "id": f"{ID_PREFIX[category]}-{tag}-{i:03d}",
                    "category": category,
                    "instruction": instruction,
                    "input": input_text,
                    "response": response,
                    "source": source,
                    # every record has the field (empty when handwritten) so CSV round trips keep it
                    "template": f"hexa/{category}/{family}" if family else "",
                }
                records.append(rec)
    return records


def validate(records: list[dict]) -> None:
    keys = {"id", "category", "instruction", "input", "response", "source"}
    ids = set()
    pairs = set()
    human_instructions = set()
    for rec in records:
        assert set(rec) == keys | {"template"}, rec
        assert bool(rec["template"]) == (rec["source"] == "templated"), rec["id"]
        assert rec["category"] in CATEGORIES, rec["id"]
        assert rec["source"] in ("handwritten", "templated"), rec["id"]
        assert rec["id"] not in ids, f"duplicate id {rec['id']}"
        ids.add(rec["id"])
        for field in keys:
            value = rec[field]
            assert isinstance(value, str), (rec["id"], field)
            assert value == value.strip(), f"{rec['id']}: whitespace around {field}"
            assert "\r" not in value and "\t" not in value, f"{rec['id']}: bad char in {field}"
        assert rec["instruction"], f"{rec['id']}: empty instruction"
        assert rec["response"], f"{rec['id']}: empty response"
        pair = (rec["instruction"], rec["input"])
        assert pair not in pairs, f"{rec['id']}: duplicate (instruction, input)"
        pairs.add(pair)
        if rec["source"] == "handwritten":
            assert rec["instruction"] not in human_instructions, f"{rec['id']}: duplicate human instruction"
            human_instructions.add(rec["instruction"])
        if rec["category"] == "summarization":
            n = len(rec["input"].split())
            assert 40 <= n <= 150, f"{rec['id']}: summarization input has {n} words"
        if rec["category"] == "generation":
            n = len(rec["response"].split())
            assert n <= 80, f"{rec['id']}: generation response has {n} words"
        if rec["category"] == "math":
            assert rec["response"].split("Answer: ")[-1][-1].isdigit(), f"{rec['id']}: must end in a number"
    for category in CATEGORIES:
        cat = [r for r in records if r["category"] == category]
        assert len(cat) == 2 * PER_SOURCE, (category, len(cat))
        for source in ("handwritten", "templated"):
            n = sum(r["source"] == source for r in cat)
            assert n == PER_SOURCE, (category, source, n)
        if category in ("classification", "summarization"):
            n = len({r["instruction"] for r in cat})
            assert n >= 50, f"{category}: only {n} distinct instructions"
    per_instruction = Counter(r["instruction"] for r in records)
    crowded = {k: n for k, n in per_instruction.items() if n > MAX_PER_INSTRUCTION}
    assert not crowded, f"instructions used more than {MAX_PER_INSTRUCTION} times: {crowded}"
    check_disjoint_from_tuneset(records)


def check_disjoint_from_tuneset(records: list[dict]) -> None:
    """No instruction text, (instruction, input) pair, masked skeleton, five-word skeleton prefix or
    template family is shared with the tuning set (the check test_tuneset.py makes)."""
    if not TUNE_PATH.exists():
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from build_tuneset import prefix, skeleton

    tune = [json.loads(line) for line in TUNE_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    t_skel = {skeleton(r["instruction"]) for r in tune}
    t_prefix = {prefix(r["instruction"]) for r in tune}
    t_templates = {r.get("template") for r in tune} - {None, ""}
    bad = [
        (r["id"], r["instruction"])
        for r in records
        if skeleton(r["instruction"]) in t_skel
        or prefix(r["instruction"]) in t_prefix
        or r["template"] in t_templates
    ]
    assert not bad, f"{len(bad)} records overlap the tuning set, e.g. {bad[:8]}"


def write_jsonl(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(rec, sort_keys=True, ensure_ascii=False) for rec in records]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def summarize(path: Path) -> None:
    with open(path, encoding="utf-8") as f:
        loaded = [json.loads(line) for line in f]
    validate(loaded)

    def stats(values):
        return f"{min(values):>3}/{float(statistics.median(values)):>5.1f}/{max(values):>3}"

    print(f"wrote {len(loaded)} records to {path}")
    print(
        f"{'category':<15}{'n':>4}{'hand':>6}{'tmpl':>5}{'w/ input':>9}   instr words min/med/max   input words min/med/max (non-empty)"
    )
    for category in CATEGORIES:
        cat = [r for r in loaded if r["category"] == category]
        instr = [len(r["instruction"].split()) for r in cat]
        inp = [len(r["input"].split()) for r in cat if r["input"]]
        human = sum(r["source"] == "handwritten" for r in cat)
        print(
            f"{category:<15}{len(cat):>4}{human:>6}{len(cat) - human:>5}{len(inp):>9}   {stats(instr):>25}   {stats(inp) if inp else '-':>25}"
        )
    with_input = sum(1 for r in loaded if r["input"])
    print(f"records with non-empty input: {with_input}/{len(loaded)}")


def main() -> None:
    records = build_records()
    validate(records)
    write_jsonl(records, OUT_PATH)
    summarize(OUT_PATH)


if __name__ == "__main__":
    main()
