"""Generation and summarization families of the tuning set (see build_tuneset.py). Responses are
assembled from the same facts as the prompt, so each reference answer is correct by construction;
summaries compress the paragraph's key facts (filler sentences are left out)."""

from __future__ import annotations

from tuneset_text import DAYS, JOBS, NAMES, TENSE_SUBJECTS, TOWNS, VERBS, WORD_GROUPS

# ---------------------------------------------------------------- generation

HOBBIES = ["restoring old radios", "birdwatching", "playing chess", "growing chillies", "sea swimming",
           "baking sourdough", "writing short poems", "climbing"]  # fmt: skip


def introduce(rng):
    n, job, town, hobby = rng.choice(NAMES), rng.choice(JOBS), rng.choice(TOWNS), rng.choice(HOBBIES)
    facts = f"name: {n}; job: {job}; home: {town}; hobby: {hobby}"
    ins = rng.choice(["Turn these facts into one friendly introductory sentence.",
                      "Introduce the person described below in a single sentence.",
                      "Use the notes to write a one-sentence introduction."])  # fmt: skip
    resp = rng.choice([
        f"Meet {n}, a {job} from {town} who loves {hobby} in their free time.",
        f"This is {n}, a {job} based in {town} with a passion for {hobby}.",
        f"{n} works as a {job} in {town} and spends spare hours {hobby}.",
    ])  # fmt: skip
    return ins, facts, resp


GIFTS = ["scarf", "cookbook", "houseplant", "photo album", "tea set", "board game", "wool socks", "desk lamp"]
CLOSERS = ["It was a lovely surprise.", "I will think of you every time I use it.", "You always know exactly what I like.",
           "It made my week."]  # fmt: skip


def thanks(rng):
    n, g = rng.choice(NAMES), rng.choice(GIFTS)
    ins = rng.choice(
        [
            "Compose a brief thank-you message to {n} for the {g}.",
            "Send {n} a two-sentence note of thanks for the {g}.",
        ]
    ).format(n=n, g=g)
    return ins, "", f"Dear {n}, thank you so much for the {g}! {rng.choice(CLOSERS)}"


EVENTS = [("picnic", "Riverside Park"), ("quiz night", "the Red Lion"), ("book swap", "the community hall"),
          ("barbecue", "our back garden"), ("film evening", "the school library"), ("board game afternoon", "my flat")]  # fmt: skip
TIMES = ["10 am", "noon", "3 pm", "6:30 pm", "7 pm"]


def invitation(rng):
    (ev, place), day, time = rng.choice(EVENTS), rng.choice(DAYS), rng.choice(TIMES)
    ins = rng.choice(
        [
            "Draft a short invitation to a {e} at {p} on {d} at {t}.",
            "Invite friends to a {e} ({p}, {d}, {t}) in two sentences.",
        ]
    ).format(e=ev, p=place, d=day, t=time)
    tail = rng.choice(
        ["We hope to see you there!", "Please let us know if you can come.", "Bring a friend if you like!"]
    )
    return ins, "", f"You're invited to a {ev} at {place} on {day} at {time}. {tail}"


PRODUCTS = [("backpack", "keeps your gear dry on rainy commutes"), ("water bottle", "keeps drinks cold for a full day"),
            ("desk chair", "supports your back through long workdays"), ("tent", "pitches in under five minutes"),
            ("kettle", "boils a full jug in two minutes"), ("notebook", "lies flat on any page")]  # fmt: skip
MATERIALS = ["recycled plastic", "bamboo", "steel", "canvas", "oak", "felt"]
COLORS = ["green", "charcoal", "sky-blue", "red", "sand-coloured"]


def product_line(rng):
    (item, benefit), mat, col = rng.choice(PRODUCTS), rng.choice(MATERIALS), rng.choice(COLORS)
    ins = rng.choice(
        [
            "Write a one-line advert for a {c} {i} made of {m}.",
            "Give me a catchy single sentence selling a {c} {m} {i}.",
        ]
    ).format(c=col, i=item, m=mat)
    return ins, "", f"Our {col} {mat} {item} looks great and {benefit}."


PAST_FRAMES = ["Put this sentence into the past tense.", "Change the sentence so that it describes the past.",
               "Rewrite this in the past tense."]  # fmt: skip


def to_past(rng):
    subj, third = rng.choice(TENSE_SUBJECTS)
    base, past, s_form, obj = rng.choice(VERBS)
    present = f"{subj} {s_form if third else base} {obj}."
    return rng.choice(PAST_FRAMES), present, f"{subj} {past} {obj}."


BE_PAIRS = [("The museum", "is", ["open today", "free on Sundays", "closed for repairs"]),
            ("The shops", "are", ["open today", "busy this morning", "closing early"]),
            ("Your brother", "is", ["at home", "ready to leave", "feeling better"]),
            ("The tickets", "are", ["still available", "too expensive", "sold out"]),
            ("This bus", "is", ["on time", "going to the airport", "full"]),
            ("The eggs", "are", ["fresh", "in the fridge", "boiled"]),
            ("The printer", "is", ["working again", "out of paper", "switched on"])]  # fmt: skip


def to_question(rng):
    subj, be, comps = rng.choice(BE_PAIRS)
    comp = rng.choice(comps)
    ins = rng.choice(["Turn this statement into a yes/no question.", "Make a question out of the sentence below.",
                      "Rephrase this statement as a question."])  # fmt: skip
    return ins, f"{subj} {be} {comp}.", f"{be.capitalize()} {subj[0].lower()}{subj[1:]} {comp}?"


def list_three(rng):
    cat = rng.choice(sorted(WORD_GROUPS))
    picks = rng.sample(WORD_GROUPS[cat], 3)
    plural = {
        "fruit": "fruits",
        "tool": "tools",
        "vehicle": "vehicles",
        "color": "colors",
        "musical instrument": "musical instruments",
    }[cat]
    ins = rng.choice(["List three {p}.", "Give three examples of {p}.", "Name any three {p}."]).format(
        p=plural
    )
    return ins, "", f"{picks[0].capitalize()}, {picks[1]} and {picks[2]}."


CAUSES = [("It was raining", "we stayed inside"), ("The bakery was closed", "we bought bread at the market"),
          ("The road was icy", "the buses ran late"), ("She practised every day", "she won the contest"),
          ("The battery was flat", "the phone would not turn on"), ("We left early", "we caught the first ferry"),
          ("The tickets sold out", "we watched the concert online"), ("He forgot his key", "he waited on the steps")]  # fmt: skip


def combine(rng):
    cause, effect = rng.choice(CAUSES)
    word = rng.choice(["so", "because"])
    ins = rng.choice(
        ["Join these two sentences into one using '{w}'.", "Combine the sentences with the word '{w}'."]
    ).format(w=word)
    src = f"{cause}. {effect[0].upper()}{effect[1:]}."
    if word == "so":
        resp = f"{cause}, so {effect}."
    else:
        resp = f"{effect[0].upper()}{effect[1:]} because {cause[0].lower()}{cause[1:]}."
    return ins, src, resp


DUES = [("library book", "return it or renew it online"), ("rent", "transfer it before noon"),
        ("science project", "bring it to class"), ("electricity bill", "pay it through the app"),
        ("permission slip", "sign it and hand it in"), ("team report", "send your section to Maya")]  # fmt: skip


def reminder(rng):
    (item, action), day = rng.choice(DUES), rng.choice(DAYS)
    ins = rng.choice(
        [
            "Write a one-sentence reminder that the {i} is due on {d}.",
            "Remind someone politely, in one sentence, that their {i} is due {d}.",
        ]
    ).format(i=item, d=day)
    return ins, "", f"Just a friendly reminder that the {item} is due on {day}, so please {action}."


RHYMES = [("cat", "hat"), ("light", "night"), ("cake", "lake"), ("moon", "spoon"), ("bear", "chair"),
          ("ring", "sing"), ("boat", "coat"), ("star", "car"), ("tree", "bee"), ("rain", "train"), ("fox", "box"),
          ("bell", "shell"), ("goat", "float"), ("fish", "dish"), ("snow", "glow")]  # fmt: skip


def rhyme(rng):
    a, b = rng.choice(RHYMES)
    ins = rng.choice(
        ["Give a word that rhymes with '{w}'.", "Suggest one rhyme for '{w}'.", "What rhymes with '{w}'?"]
    ).format(w=a)
    return ins, "", f"{b.capitalize()}."


def generation_families():
    return [
        ("introduce", "templated", introduce),
        ("thanks", "templated", thanks),
        ("invitation", "templated", invitation),
        ("product-line", "templated", product_line),
        ("to-past", "templated", to_past),
        ("to-question", "templated", to_question),
        ("list-three", "templated", list_three),
        ("combine", "templated", combine),
        ("reminder", "templated", reminder),
        ("rhyme", "templated", rhyme),
    ]


# ---------------------------------------------------------------- summarization

SUM_FRAMES = [
    "Sum up this text in one sentence.",
    "Boil the passage below down to a single sentence.",
    "What is the gist of the text below? Answer in one sentence.",
    "Give the key point of this passage in one sentence.",
    "Shorten this text to a one-sentence summary.",
    "Condense this passage into a single sentence.",
    "Capture the essentials of this paragraph in one line.",
]
FILLERS = ["The news was shared on the community notice board.", "More details will follow in the coming weeks.",
           "Several people have already asked about it online.", "It was a grey and windy afternoon.",
           "Local radio mentioned it briefly that evening.", "Questions can be sent by email."]  # fmt: skip
FIELDS = ["biology", "architecture", "music", "engineering", "history", "mathematics"]
ACHIEVEMENTS = ["designing a low-cost water filter", "a prize-winning study of coral reefs",
                "restoring the old town bridge", "a popular series of children's books",
                "mapping the region's caves", "founding a free evening school"]  # fmt: skip


FAMILY_FRAMES = {
    "biography": ["Summarize this short life story in a sentence.", "Who is this person? Answer with a one-sentence summary.",
                  "Reduce this mini-biography to one sentence."],
    "closure": ["Tell residents in one sentence what this notice says.", "What does this closure notice announce? One sentence.",
                "Give a one-sentence version of this service notice."],
    "study": ["State the finding of this study in one sentence.", "Summarize the research described below in a sentence.",
              "In a single sentence, what did this study find?"],
    "lost-item": ["Turn this lost-property notice into a one-sentence summary.", "What was lost, and what should finders do? One sentence.",
                  "Briefly restate this appeal in one sentence."],
    "app-update": ["Summarize these release notes in one sentence.", "What changed in this update? Answer in one sentence.",
                   "Give a one-line changelog summary of the text."],
    "club": ["Summarize this club notice in a sentence.", "Rewrite this announcement as a single summary sentence.",
             "What are members being told here? One sentence, please."],
}  # fmt: skip


def _frame(rng, family: str) -> str:
    return rng.choice(SUM_FRAMES + FAMILY_FRAMES[family])


def _para(rng, sentences: list[str]) -> str:
    i = rng.randint(1, len(sentences))
    return " ".join(sentences[:i] + [rng.choice(FILLERS)] + sentences[i:])


def biography(rng):
    n, town, year = rng.choice(NAMES), rng.choice(TOWNS), rng.randint(1940, 1995)
    field, job, ach, hobby = (
        rng.choice(FIELDS),
        rng.choice(JOBS),
        rng.choice(ACHIEVEMENTS),
        rng.choice(["enjoys gardening", "still plays the piano", "volunteers at a shelter"]),
    )
    text = _para(
        rng,
        [
            f"{n} was born in {town} in {year}.",
            f"After studying {field}, {n} worked for years as a {job}.",
            f"{n} is best known for {ach}.",
            f"These days {n} {hobby}.",
        ],
    )
    return _frame(rng, "biography"), text, f"{n}, a {job} born in {town} in {year}, is best known for {ach}."


FACILITIES = [
    "The Elm Street library",
    "The public pool",
    "The town museum",
    "The sports centre",
    "The train station cafe",
]
REASONS = ["roof repairs", "a new heating system", "floor replacement", "an electrical upgrade"]
ALTERNATIVES = ["the branch on Mill Road stays open", "a temporary site opens in the market hall",
                "online services continue as normal", "the nearby school gym will host classes"]  # fmt: skip


def closure(rng):
    fac, reason, alt = rng.choice(FACILITIES), rng.choice(REASONS), rng.choice(ALTERNATIVES)
    d1, weeks = rng.choice(["3 March", "10 June", "1 September", "14 November"]), rng.randint(2, 8)
    text = _para(
        rng,
        [
            f"{fac} will close on {d1} for {reason}.",
            f"The work is expected to last {weeks} weeks.",
            f"While it is shut, {alt}.",
            "Staff apologise for the inconvenience.",
        ],
    )
    return (
        _frame(rng, "closure"),
        text,
        f"{fac} closes from {d1} for about {weeks} weeks for {reason}, and meanwhile {alt}.",
    )


STUDY_GROUPS = ["office workers", "retired adults", "university students", "night-shift nurses", "teenagers"]
INTERVENTIONS = [("took a 20-minute walk after lunch", "reported better sleep"),
                 ("swapped sugary drinks for water", "lost a little weight"),
                 ("read on paper instead of screens before bed", "fell asleep faster"),
                 ("practised breathing exercises daily", "felt less stressed")]  # fmt: skip


def study(rng):
    grp, (act, result), n, months = (
        rng.choice(STUDY_GROUPS),
        rng.choice(INTERVENTIONS),
        rng.randint(40, 400),
        rng.randint(2, 12),
    )
    text = _para(
        rng,
        [
            f"Researchers followed {n} {grp} for {months} months.",
            f"Half of them {act}, while the rest kept their usual habits.",
            f"By the end, the first group {result}.",
            "The authors say a larger trial is needed to confirm the effect.",
        ],
    )
    return (
        _frame(rng, "study"),
        text,
        (
            f"In a {months}-month study of {n} {grp}, those who {act} {result}, "
            "though a larger trial is needed."
        ),
    )


LOST = [("backpack", "a laptop and two textbooks"), ("wallet", "a bus pass and some cash"),
        ("camera bag", "a camera and a spare lens"), ("umbrella", "nothing but a name tag")]  # fmt: skip
LOST_PLACES = ["number 12 bus", "park bench by the pond", "library's second floor", "station platform"]


def lost_item(rng):
    n, (item, contents), place, col = (
        rng.choice(NAMES),
        rng.choice(LOST),
        rng.choice(LOST_PLACES),
        rng.choice(["black", "yellow", "navy", "brown"]),
    )
    day = rng.choice(DAYS)
    text = _para(
        rng,
        [
            f"On {day}, {n} left a {col} {item} on the {place}.",
            f"It contains {contents}.",
            "Anyone who finds it is asked to hand it in at the front desk of the town hall.",
        ],
    )
    return (
        _frame(rng, "lost-item"),
        text,
        f"{n} lost a {col} {item} with {contents} on the {place} on {day}; finders should take it to the town hall.",
    )


APPS = ["NoteNest", "TrailMate", "Budgetly", "PlantPal", "QuickCook"]
FEATURES = ["a dark mode", "offline access", "shared lists", "weekly reports", "voice input", "a widget"]
BUGS = ["drained the battery", "lost unsaved changes", "crashed on start-up", "showed the wrong dates"]


def app_update(rng):
    app, (f1, f2), bug, v = (
        rng.choice(APPS),
        rng.sample(FEATURES, 2),
        rng.choice(BUGS),
        f"{rng.randint(2, 9)}.{rng.randint(0, 9)}",
    )
    text = _para(
        rng,
        [
            f"Version {v} of {app} is now available.",
            f"The update adds {f1} and {f2}.",
            f"It also fixes a bug that {bug}.",
            "Users can install it from the usual app stores.",
        ],
    )
    return _frame(rng, "app-update"), text, f"{app} {v} adds {f1} and {f2} and fixes a bug that {bug}."


CLUBS = [("chess club", "play a lightning tournament"), ("book circle", "discuss a short mystery novel"),
         ("photo society", "practise night photography"), ("running group", "try a new riverside route"),
         ("coding club", "build a small weather app")]  # fmt: skip
ROOMS = ["room 4", "the main hall", "the back room of the cafe", "the library annex"]


def club(rng):
    (name, act), day, time, room = rng.choice(CLUBS), rng.choice(DAYS), rng.choice(TIMES), rng.choice(ROOMS)
    text = _para(
        rng,
        [
            f"The {name} meets on {day} at {time} in {room}.",
            f"This time the members will {act}.",
            "Newcomers are welcome and no experience is needed.",
        ],
    )
    return (
        _frame(rng, "club"),
        text,
        f"The {name} meets on {day} at {time} in {room} to {act}, and newcomers are welcome.",
    )


def summarization_families():
    return [
        ("biography", "templated", biography),
        ("closure", "templated", closure),
        ("study", "templated", study),
        ("lost-item", "templated", lost_item),
        ("app-update", "templated", app_update),
        ("club", "templated", club),
    ]
