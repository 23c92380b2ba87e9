"""Classification and general-QA families of the tuning set (see build_tuneset.py): sentences built
from word banks, so every label and answer is known by construction or computed here."""

from __future__ import annotations

import math
from decimal import Decimal

NAMES = ["Aisha", "Bruno", "Chen", "Dalia", "Emeka", "Freya", "Gustavo", "Hiro", "Ines", "Jamal", "Kira",
         "Lars", "Mei", "Nadia", "Oscar", "Priya", "Rosa", "Samir", "Tess", "Umar", "Vera", "Yusuf", "Zoe"]  # fmt: skip

# ---------------------------------------------------------------- classification

SENT_SUBJECTS = ["The pasta", "The hotel staff", "This vacuum cleaner", "The latest app update", "Our tour guide",
                 "The delivery", "The cinema seats", "The laptop battery", "The soundtrack", "The checkout process",
                 "The hiking boots", "The coffee here", "The customer helpline", "This board game", "The bike rental"]  # fmt: skip
SENT_POS = ["was absolutely delightful", "exceeded every expectation I had", "made the whole evening worth it",
            "works like a charm", "was quick, friendly and helpful", "is the best I have tried in years",
            "left me smiling all day", "turned out better than advertised"]  # fmt: skip
SENT_NEG = ["was a complete letdown", "fell apart within a week", "left us waiting for over an hour",
            "is painfully slow and confusing", "was stale and overpriced", "stopped working on the second day",
            "ruined what should have been a nice day", "is not worth half the price"]  # fmt: skip
SENT_FRAMES = [
    "Decide whether this remark is positive or negative.",
    "Is the writer pleased or displeased? Reply positive or negative.",
    "Positive or negative? Judge the opinion in the comment below.",
    "What attitude does this feedback show: positive or negative?",
    "Tag the following customer comment with its polarity (positive/negative).",
]


def sentiment(rng):
    label = rng.choice(["Positive", "Negative"])
    pred = rng.choice(SENT_POS if label == "Positive" else SENT_NEG)
    return rng.choice(SENT_FRAMES), f"{rng.choice(SENT_SUBJECTS)} {pred}.", label


TOPICS = {
    "food": (["The soup", "My grandmother's bread", "This curry", "The salad dressing", "Fresh pesto", "The lemon tart"],
             ["needs a pinch more salt", "tastes best with chopped basil", "should simmer for twenty minutes",
              "goes well with roasted vegetables", "keeps for three days in the fridge"]),
    "weather": (["Heavy rain", "A cold front", "Thick fog", "Strong gusts of wind", "A heatwave", "Light snow"],
                ["is expected along the coast tomorrow", "will move in from the north tonight",
                 "should clear by the afternoon", "may bring temperatures below freezing", "is forecast for the weekend"]),
    "music": (["The orchestra", "Her new album", "The drummer", "That violin solo", "The choir", "The jazz trio"],
              ["was recorded in a single take", "plays a slow waltz in the second half", "needs one more rehearsal",
               "tours the country next spring", "switched to a minor key for the finale"]),
    "travel": (["Our flight", "The night train", "The ferry to the island", "The hostel", "Our rental car", "The border crossing"],
               ["was delayed by two hours", "leaves from platform four", "includes a free city map",
                "must be booked a week ahead", "takes about six hours end to end"]),
    "health": (["Regular stretching", "Drinking enough water", "A short daily walk", "Eight hours of sleep",
                "Washing your hands", "Eating more fibre"],
               ["lowers the risk of many illnesses", "helps the body recover after exercise",
                "is recommended by most doctors", "can improve your mood within weeks", "supports a healthy heart"]),
}  # fmt: skip
TOPIC_FRAMES = [
    "Which subject is this sentence about: food, weather, music, travel, or health?",
    "Assign the sentence to a theme - food, weather, music, travel or health.",
    "Pick the best theme for this line from: food, weather, music, travel, health.",
]


def topic(rng):
    label = rng.choice(sorted(TOPICS))
    subjects, preds = TOPICS[label]
    return rng.choice(TOPIC_FRAMES), f"{rng.choice(subjects)} {rng.choice(preds)}.", label.capitalize()


TENSE_SUBJECTS = [("I", False), ("We", False), ("My neighbour", True), ("The children", False), ("Our coach", True),
                  ("She", True), ("They", False), ("Grandpa", True)]  # fmt: skip
VERBS = [("paint", "painted", "paints", "the fence"), ("visit", "visited", "visits", "the museum"),
         ("cook", "cooked", "cooks", "dinner"), ("watch", "watched", "watches", "the match"),
         ("clean", "cleaned", "cleans", "the kitchen"), ("plant", "planted", "plants", "tomatoes"),
         ("write", "wrote", "writes", "a letter"), ("build", "built", "builds", "a bookshelf"),
         ("bake", "baked", "bakes", "bread"), ("wash", "washed", "washes", "the car"),
         ("feed", "fed", "feeds", "the ducks"), ("sing", "sang", "sings", "a song")]  # fmt: skip
TENSE_TIMES = {"past": ["yesterday", "last week", "two days ago"], "present": ["every morning", "on Sundays", "most evenings"],
               "future": ["tomorrow", "next month", "later tonight"]}  # fmt: skip
TENSE_FRAMES = [
    "Which tense is this sentence in: past, present, or future?",
    "Name the tense of the verb below (past, present or future).",
    "Past, present or future? Identify the time the sentence refers to.",
]


def tense_sentence(rng, tense: str, with_time: bool = True) -> str:
    subj, third = rng.choice(TENSE_SUBJECTS)
    base, past, s_form, obj = rng.choice(VERBS)
    verb = {"past": past, "present": s_form if third else base, "future": f"will {base}"}[tense]
    time = f" {rng.choice(TENSE_TIMES[tense])}" if with_time else ""
    return f"{subj} {verb} {obj}{time}."


def tense(rng):
    t = rng.choice(["past", "present", "future"])
    return rng.choice(TENSE_FRAMES), tense_sentence(rng, t), t.capitalize()


def number_property(rng):
    kind = rng.randrange(3)
    if kind == 0:
        n = rng.randint(10, 400)
        r = math.isqrt(n)
        ins = rng.choice(
            ["Is {n} a perfect square? Answer yes or no.", "Decide if {n} is the square of a whole number."]
        ).format(n=n)
        if r * r == n:
            return ins, "", f"Yes - {r} x {r} = {n}."
        return ins, "", f"No - it lies between {r}^2 = {r * r} and {r + 1}^2 = {(r + 1) ** 2}."
    if kind == 1:
        n, k = rng.randint(20, 500), rng.randint(3, 12)
        ins = rng.choice(
            ["Can {n} be divided evenly by {k}?", "Does {k} go into {n} without a remainder?"]
        ).format(n=n, k=k)
        q, rem = divmod(n, k)
        return (
            ins,
            "",
            (f"Yes - {n} = {k} x {q}." if rem == 0 else f"No - {n} / {k} leaves a remainder of {rem}."),
        )
    n = rng.randint(100, 99999)
    ins = rng.choice(["Odd or even: {n}?", "Tell me whether {n} is an odd or an even number."]).format(n=n)
    return ins, "", "Even" if n % 2 == 0 else "Odd"


WORD_GROUPS = {
    "fruit": ["mango", "plum", "apricot", "papaya", "cherry", "kiwi", "fig", "lime"],
    "tool": ["hammer", "wrench", "chisel", "screwdriver", "saw", "pliers", "drill"],
    "vehicle": ["tram", "scooter", "canoe", "truck", "tractor", "ferry", "bicycle"],
    "color": ["crimson", "teal", "amber", "lavender", "maroon", "indigo", "beige"],
    "musical instrument": ["flute", "banjo", "harp", "oboe", "trombone", "ukulele", "xylophone"],
}
GROUP_FRAMES = [
    "Which group does the word '{w}' belong to: fruit, tool, vehicle, color, or musical instrument?",
    "Put '{w}' in the right bin: fruit, tool, vehicle, color, or musical instrument.",
    "Categorize the item below as a fruit, tool, vehicle, color, or musical instrument.",
]


def word_group(rng):
    label = rng.choice(sorted(WORD_GROUPS))
    w = rng.choice(WORD_GROUPS[label])
    frame = rng.choice(GROUP_FRAMES)
    if "{w}" in frame:
        return frame.format(w=w), "", label.capitalize()
    return frame, w, label.capitalize()


OBJECTS = [
    "umbrella",
    "garden gate",
    "blue notebook",
    "kitchen light",
    "spare key",
    "front door",
    "parcel",
    "map",
]
PLACES = ["shelf", "table", "porch", "windowsill", "desk"]
SENT_TYPES = {
    "Question": ["Did you remember the {o}?", "Where did you put the {o}?", "Is the {o} still on the {p}?"],
    "Command": ["Please bring the {o} inside.", "Put the {o} on the {p}.", "Check the {o} before you leave."],
    "Statement": [
        "The {o} is on the {p}.",
        "Someone moved the {o} this morning.",
        "I found the {o} next to the {p}.",
    ],
    "Exclamation": [
        "What a beautiful {o}!",
        "I can't believe you lost the {o} again!",
        "Wow, that {o} is huge!",
    ],
}
TYPE_FRAMES = [
    "Label this sentence as a question, a command, an exclamation, or a statement.",
    "What kind of sentence is this - question, command, exclamation or statement?",
]


def sentence_type(rng):
    label = rng.choice(sorted(SENT_TYPES))
    s = rng.choice(SENT_TYPES[label]).format(o=rng.choice(OBJECTS), p=rng.choice(PLACES))
    return rng.choice(TYPE_FRAMES), s, label


def temperature(rng):
    t = rng.randint(-15, 40)
    label = "Cold" if t < 10 else ("Hot" if t > 25 else "Mild")
    ins = rng.choice([
        "Using the bands cold (below 10 degrees C), mild (10 to 25) and hot (above 25), label a reading of {t} degrees C.",
        "A thermometer shows {t} degrees C. Is that cold (under 10), mild (10-25) or hot (over 25)?",
    ]).format(t=t)  # fmt: skip
    return ins, "", label


NOUNS = [("mouse", "mice"), ("goose", "geese"), ("child", "children"), ("tooth", "teeth"), ("foot", "feet"),
         ("woman", "women"), ("cactus", "cacti"), ("box", "boxes"), ("city", "cities"), ("leaf", "leaves"),
         ("knife", "knives"), ("potato", "potatoes"), ("bus", "buses"), ("person", "people"), ("ox", "oxen"),
         ("wolf", "wolves"), ("berry", "berries"), ("dish", "dishes")]  # fmt: skip


def number_of_noun(rng):
    sing, plur = rng.choice(NOUNS)
    plural = rng.random() < 0.5
    w = plur if plural else sing
    ins = rng.choice(["Is the noun '{w}' singular or plural?", "Singular or plural: '{w}'?"]).format(w=w)
    return ins, "", "Plural" if plural else "Singular"


PAL_WORDS = ["level", "radar", "civic", "rotor", "kayak", "refer", "madam", "noon", "stats", "racecar", "tenet",
             "pencil", "rotate", "civil", "lever", "radio", "kayaks", "moon", "state", "racer", "tent", "reader"]  # fmt: skip


def palindrome(rng):
    w = rng.choice(PAL_WORDS)
    ins = rng.choice(
        [
            "Does '{w}' read the same forwards and backwards? Answer yes or no.",
            "Palindrome check: is '{w}' a palindrome?",
            "Spelled backwards, is '{w}' unchanged?",
        ]
    ).format(w=w)
    back = w[::-1]
    return (
        ins,
        "",
        (f"Yes - backwards it is still '{back}'." if back == w else f"No - backwards it is '{back}'."),
    )


DIETS = {"cow": "Herbivore", "lion": "Carnivore", "bear": "Omnivore", "rabbit": "Herbivore", "wolf": "Carnivore",
         "pig": "Omnivore", "deer": "Herbivore", "shark": "Carnivore", "raccoon": "Omnivore", "giraffe": "Herbivore",
         "tiger": "Carnivore", "chicken": "Omnivore", "koala": "Herbivore", "eagle": "Carnivore", "crow": "Omnivore",
         "horse": "Herbivore", "owl": "Carnivore", "panda": "Herbivore", "hedgehog": "Omnivore", "snake": "Carnivore"}  # fmt: skip


def diet(rng):
    a = rng.choice(sorted(DIETS))
    ins = rng.choice(
        [
            "Is a {a} a herbivore, a carnivore, or an omnivore?",
            "Classify the {a} by diet: herbivore, carnivore or omnivore.",
        ]
    ).format(a=a)
    return ins, "", DIETS[a]


def compare_numbers(rng):
    a = rng.randint(-50, 500)
    b = a if rng.random() < 0.15 else rng.randint(-50, 500)
    label = "Greater than" if a > b else ("Less than" if a < b else "Equal to")
    ins = rng.choice(
        [
            "Compare {a} with {b}: is the first greater than, less than, or equal to the second?",
            "Is {a} greater than, less than, or equal to {b}?",
        ]
    ).format(a=a, b=b)
    return ins, "", f"{label} - {a} {'>' if a > b else '<' if a < b else '='} {b}."


def classification_families():
    return [
        ("sentiment", "templated", sentiment),
        ("topic", "templated", topic),
        ("tense", "templated", tense),
        ("number-property", "programmatic", number_property),
        ("word-group", "templated", word_group),
        ("sentence-type", "templated", sentence_type),
        ("temperature-band", "programmatic", temperature),
        ("noun-number", "templated", number_of_noun),
        ("palindrome", "programmatic", palindrome),
        ("diet", "templated", diet),
        ("compare-numbers", "programmatic", compare_numbers),
    ]


# ---------------------------------------------------------------- general QA


def sort_numbers(rng):
    nums = rng.sample(range(-20, 200), rng.randint(4, 7))
    desc = rng.random() < 0.5
    ins = rng.choice(
        ["Arrange these numbers from {o}.", "Order the values below from {o}.", "Sort this list from {o}."]
    ).format(o="largest to smallest" if desc else "smallest to largest")
    return ins, ", ".join(map(str, nums)), ", ".join(map(str, sorted(nums, reverse=desc)))


ALPHA_WORDS = ["pear", "falcon", "quartz", "meadow", "lantern", "juniper", "harbor", "biscuit", "orchid", "saddle",
               "violin", "walnut", "igloo", "dagger", "kestrel", "nectar", "ember", "thistle", "yarrow", "cobalt"]  # fmt: skip


def alphabetize(rng):
    ws = rng.sample(ALPHA_WORDS, rng.randint(4, 6))
    ins = rng.choice(["Put these words in alphabetical order.", "Alphabetize the following list.",
                      "List these words A to Z."])  # fmt: skip
    return ins, ", ".join(ws), ", ".join(sorted(ws))


def count_words(rng):
    s = tense_sentence(rng, rng.choice(["past", "present", "future"]))
    n = len(s.split())
    ins = rng.choice(["How many words are in this sentence?", "Count the words in the sentence below."])
    return ins, s, f"{n} words."


def extreme(rng):
    nums = rng.sample(range(1, 999), rng.randint(5, 8))
    big = rng.random() < 0.5
    ins = rng.choice(["Which is the {w} number in this list?", "Pick out the {w} value below."]).format(
        w="largest" if big else "smallest"
    )
    return ins, ", ".join(map(str, nums)), str(max(nums) if big else min(nums))


TALLY = ["apple", "pear", "fig", "plum", "lime"]


def tally(rng):
    target = rng.choice(TALLY)
    items = [rng.choice(TALLY) for _ in range(rng.randint(6, 10))]
    n = items.count(target)
    ins = rng.choice(
        ["How many times does '{t}' appear in this list?", "Count the occurrences of '{t}' below."]
    ).format(t=target)
    return ins, ", ".join(items), str(n)


TOWNS = ["Lisbon", "Osaka", "Tallinn", "Quito", "Accra", "Perth", "Bergen", "Cusco", "Hanoi", "Split"]
PETS = ["parrot", "tortoise", "beagle", "goldfish", "hamster", "ferret", "tabby cat"]
JOBS = ["nurse", "carpenter", "pilot", "librarian", "chef", "surveyor", "dentist", "tailor"]
FOODS = ["ramen", "paella", "dumplings", "lentil soup", "fish tacos", "apple pie"]
CARD_FIELDS = [("Town", "Which town does {n} live in, according to the card?", "{v}."),
               ("Pet", "Using the profile card, what pet does {n} keep?", "A {v}."),
               ("Job", "What does {n} do for a living, per the card?", "{n} is a {v}."),
               ("Favourite food", "Look at the card: what is {n}'s favourite food?", "{v}.")]  # fmt: skip


def profile_card(rng):
    n = rng.choice(NAMES)
    vals = {
        "Town": rng.choice(TOWNS),
        "Pet": rng.choice(PETS),
        "Job": rng.choice(JOBS),
        "Favourite food": rng.choice(FOODS),
    }
    card = f"Name: {n} | " + " | ".join(f"{k}: {v}" for k, v in vals.items())
    key, q, a = rng.choice(CARD_FIELDS)
    ans = a.format(n=n, v=vals[key])
    return q.format(n=n), card, ans[0].upper() + ans[1:]


DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip


def weekday(rng):
    d, k = rng.randrange(7), rng.randint(2, 30)
    ins = rng.choice(
        [
            "If today is {d}, what day of the week will it be in {k} days?",
            "Starting on a {d}, which weekday comes {k} days later?",
        ]
    ).format(d=DAYS[d], k=k)
    w, r = divmod(k, 7)
    parts = [f"{w} week{'s' if w != 1 else ''}"] * (w > 0) + [f"{r} day{'s' if r != 1 else ''}"] * (r > 0)
    return ins, "", f"{k} days is {' and '.join(parts)} later, so it will be {DAYS[(d + k) % 7]}."


def month_after(rng):
    m, k = rng.randrange(12), rng.randint(1, 11)
    ins = rng.choice(
        ["Which month is {k} months after {m}?", "Counting forward {k} months from {m}, where do you land?"]
    ).format(m=MONTHS[m], k=k)
    return ins, "", MONTHS[(m + k) % 12] + "."


ANTONYMS = [("ancient", "modern"), ("generous", "stingy"), ("shallow", "deep"), ("fragile", "sturdy"),
            ("victory", "defeat"), ("arrive", "depart"), ("expand", "shrink"), ("rare", "common"),
            ("brave", "cowardly"), ("innocent", "guilty"), ("wide", "narrow"), ("increase", "decrease"),
            ("accept", "refuse"), ("noisy", "quiet"), ("smooth", "rough"), ("tidy", "messy"), ("asleep", "awake"),
            ("borrow", "lend"), ("float", "sink"), ("early", "late"), ("hollow", "solid"), ("maximum", "minimum")]  # fmt: skip


def antonym(rng):
    a, b = rng.choice(ANTONYMS)
    if rng.random() < 0.5:
        a, b = b, a
    ins = rng.choice(
        [
            "What is the opposite of '{w}'?",
            "Give an antonym for the word '{w}'.",
            "Name a word that means the reverse of '{w}'.",
        ]
    ).format(w=a)
    return ins, "", f"{b[0].upper()}{b[1:]}."


LEGS = {"spider": 8, "ant": 6, "octopus": 8, "horse": 4, "ostrich": 2, "beetle": 6, "crab": 10, "kangaroo": 2,
        "cat": 4, "scorpion": 8, "butterfly": 6, "duck": 2, "lobster": 10, "frog": 4, "bee": 6}  # fmt: skip


def legs(rng):
    a = rng.choice(sorted(LEGS))
    ins = rng.choice(["How many legs does a {a} have?", "Count the legs on a typical {a}."]).format(a=a)
    return ins, "", f"{LEGS[a]}."


def letter_count(rng):
    w = rng.choice(ALPHA_WORDS + PAL_WORDS + [x for v in WORD_GROUPS.values() for x in v])
    if rng.random() < 0.5:
        ins = rng.choice(
            ["How many letters are in the word '{w}'?", "Give the length of '{w}' in letters."]
        ).format(w=w)
        return ins, "", str(len(w))
    ins = rng.choice(
        ["How many vowels does '{w}' contain?", "Count the vowels (a, e, i, o, u) in '{w}'."]
    ).format(w=w)
    return ins, "", str(sum(c in "aeiou" for c in w))


def bigger_decimal(rng):
    a = Decimal(rng.randint(10, 999)) / Decimal(10 ** rng.randint(1, 2))
    b = Decimal(rng.randint(10, 999)) / Decimal(10 ** rng.randint(1, 2))
    while a == b:
        b += Decimal("0.1")
    ins = rng.choice(["Which is larger, {a} or {b}?", "Of {a} and {b}, which number is bigger?"]).format(
        a=a, b=b
    )
    return ins, "", f"{max(a, b)}."


def alphabet_position(rng):
    k = rng.randint(1, 26)
    ins = rng.choice(
        [
            "What is letter number {k} of the English alphabet?",
            "Which letter is in position {k} of the alphabet?",
        ]
    ).format(k=k)
    return ins, "", chr(64 + k) + "."


def qa_families():
    return [
        ("sort-numbers", "programmatic", sort_numbers),
        ("alphabetize", "programmatic", alphabetize),
        ("count-words", "programmatic", count_words),
        ("extreme-value", "programmatic", extreme),
        ("tally", "programmatic", tally),
        ("profile-card", "templated", profile_card),
        ("weekday", "programmatic", weekday),
        ("month-after", "programmatic", month_after),
        ("antonym", "templated", antonym),
        ("legs", "templated", legs),
        ("letter-count", "programmatic", letter_count),
        ("bigger-decimal", "programmatic", bigger_decimal),
        ("alphabet-position", "programmatic", alphabet_position),
    ]
