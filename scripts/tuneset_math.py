"""Math families of the tuning set (see build_tuneset.py): answers computed here, stored as ``check``."""

from __future__ import annotations

import math

NAMES = [
    "Aisha", "Bruno", "Chen", "Dalia", "Emeka", "Freya", "Gustavo", "Hiro", "Ines", "Jamal",
    "Kira", "Lars", "Mei", "Nadia", "Oscar", "Priya", "Quinn", "Rosa", "Samir", "Tess",
    "Umar", "Vera", "Wendell", "Ximena", "Yusuf", "Zoe",
]  # fmt: skip
THINGS = ["stickers", "marbles", "pencils", "stamps", "shells", "cards", "beads", "coins", "buttons"]
ITEMS = [("jacket", 80), ("lamp", 40), ("backpack", 60), ("kettle", 30), ("tent", 120), ("chair", 50),
         ("rug", 200), ("helmet", 70), ("blender", 90), ("scarf", 20)]  # fmt: skip


def _ck(kind: str, args: dict, answer) -> dict:
    return {"kind": kind, "args": args, "answer": answer}


def arith(rng):
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(11, 99), rng.randint(3, 29)
    else:
        a, b = rng.randint(100, 999), rng.randint(10, 899)
        if op == "-" and b > a:
            a, b = b, a
    c = {"+": a + b, "-": a - b, "*": a * b}[op]
    phr = {
        "+": ["Add {a} and {b}.", "What do you get when you add {a} to {b}?", "Find the total of {a} and {b}.",
              "Compute {a} plus {b}.", "Work out {a} + {b}."],
        "-": ["Subtract {b} from {a}.", "What is {a} take away {b}?", "Compute {a} minus {b}.",
              "Work out {a} - {b}.", "How much is left if you remove {b} from {a}?"],
        "*": ["Multiply {a} by {b}.", "Compute {a} times {b}.", "Work out {a} x {b}.",
              "How much is {a} multiplied by {b}?", "Find the product of {a} and {b}."],
    }[op]  # fmt: skip
    sym = {"+": "+", "-": "-", "*": "x"}[op]
    ins = rng.choice(phr).format(a=a, b=b)
    return ins, "", f"{a} {sym} {b} = {c}. Answer: {c}", _ck("arith", {"op": op, "a": a, "b": b}, c)


def divmod_task(rng):
    b = rng.randint(3, 19)
    a = rng.randint(b * 4, 600)
    q, r = divmod(a, b)
    ins = rng.choice([
        "Divide {a} by {b} and give the quotient and the remainder.",
        "What are the quotient and remainder when {a} is divided by {b}?",
        "Perform long division: {a} / {b}. State the quotient and remainder.",
    ]).format(a=a, b=b)  # fmt: skip
    resp = f"{b} x {q} = {b * q}, and {a} - {b * q} = {r}. Answer: {q} remainder {r}"
    return ins, "", resp, _ck("divmod", {"a": a, "b": b}, [q, r])


def gcd_lcm(rng):
    g = rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 12])
    a, b = g * rng.randint(2, 12), g * rng.randint(2, 12)
    if a == b:
        b += g
    if rng.random() < 0.5:
        ins = rng.choice(
            [
                "Find the highest common factor of {a} and {b}.",
                "What is gcd({a}, {b})?",
                "Which is the largest whole number that divides both {a} and {b}?",
            ]
        ).format(a=a, b=b)
        steps, x, y = [], max(a, b), min(a, b)
        while y:
            steps.append(f"{x} = {x // y} x {y} + {x % y}")
            x, y = y, x % y
        resp = "; ".join(steps) + f". The last nonzero remainder is {x}. Answer: {x}"
        return ins, "", resp, _ck("gcd", {"a": a, "b": b}, x)
    lcm = a * b // math.gcd(a, b)
    ins = rng.choice(
        [
            "Find the lowest common multiple of {a} and {b}.",
            "What is lcm({a}, {b})?",
            "What is the smallest positive number that both {a} and {b} divide into?",
        ]
    ).format(a=a, b=b)
    resp = f"gcd({a}, {b}) = {math.gcd(a, b)}, so lcm = {a} x {b} / {math.gcd(a, b)} = {lcm}. Answer: {lcm}"
    return ins, "", resp, _ck("lcm", {"a": a, "b": b}, lcm)


def power(rng):
    base, exp = rng.randint(2, 12), rng.randint(2, 4)
    if base > 6 and exp > 3:
        exp = 3
    val = base**exp
    word = {2: "squared", 3: "cubed"}.get(exp)
    opts = [f"Compute {base}^{exp}.", f"Raise {base} to the power {exp}."]
    if word:
        opts.append(f"What is {base} {word}?")
    resp = f"{base}^{exp} = {' x '.join([str(base)] * exp)} = {val}. Answer: {val}"
    return rng.choice(opts), "", resp, _ck("power", {"base": base, "exp": exp}, val)


def sequence(rng):
    if rng.random() < 0.6:
        start, step = rng.randint(1, 40), rng.randint(2, 12)
        terms = [start + step * i for i in range(4)]
        nxt = terms[-1] + step
        rule = f"Each term is {step} more than the one before"
        kind, args = "arith_seq", {"terms": terms}
    else:
        start, ratio = rng.randint(1, 5), rng.choice([2, 3])
        terms = [start * ratio**i for i in range(4)]
        nxt = terms[-1] * ratio
        rule = f"Each term is {ratio} times the one before"
        kind, args = "geom_seq", {"terms": terms}
    seq = ", ".join(map(str, terms))
    ins = rng.choice(["What number comes next in the pattern {s}, ...?", "Continue the sequence {s}, ... with one more term.",
                      "Give the next term: {s}, ..."]).format(s=seq)  # fmt: skip
    return ins, "", f"{rule}, so the next term is {nxt}. Answer: {nxt}", _ck(kind, args, nxt)


def median(rng):
    nums = rng.sample(range(1, 60), rng.choice([5, 7]))
    srt = sorted(nums)
    m = srt[len(srt) // 2]
    ins = rng.choice(["Find the middle value (median) of this list.", "Which value is the median of these numbers?",
                      "Determine the median of the data set below."])  # fmt: skip
    resp = f"In order: {', '.join(map(str, srt))}. The middle value is {m}. Answer: {m}"
    return ins, ", ".join(map(str, nums)), resp, _ck("median", {"nums": nums}, m)


def rectangle(rng):
    w, h = rng.randint(3, 25), rng.randint(2, 20)
    shape = rng.choice(["garden", "rug", "poster", "field", "table top", "tile"])
    unit = rng.choice(["m", "cm", "ft"])
    if rng.random() < 0.5:
        ins = f"A rectangular {shape} measures {w} {unit} by {h} {unit}. What is its perimeter in {unit}?"
        p = 2 * (w + h)
        return (
            ins,
            "",
            f"Perimeter = 2 x ({w} + {h}) = {p} {unit}. Answer: {p}",
            _ck("perimeter", {"w": w, "h": h}, p),
        )
    ins = f"How many square {unit} does a {w} {unit} by {h} {unit} rectangular {shape} cover?"
    a = w * h
    return ins, "", f"Area = {w} x {h} = {a} square {unit}. Answer: {a}", _ck("area", {"w": w, "h": h}, a)


def speed(rng):
    name, t = rng.choice(NAMES), rng.randint(2, 9)
    mode, lo, hi = rng.choice(
        [("cycles", 12, 30), ("drives", 40, 100), ("jogs", 6, 14), ("rows", 3, 8), ("sails", 5, 20)]
    )
    v = rng.randint(lo, hi)
    if rng.random() < 0.5:
        ins = f"{name} {mode} at a steady {v} km/h for {t} hours. How many kilometres does {name} cover?"
        d = v * t
        return (
            ins,
            "",
            f"Distance = speed x time = {v} x {t} = {d} km. Answer: {d}",
            _ck("distance", {"v": v, "t": t}, d),
        )
    v = rng.randint(30, 90)
    d = v * t
    ins = f"A bus travels {d} km in {t} hours at a constant speed. What is its speed in km/h?"
    return (
        ins,
        "",
        f"Speed = distance / time = {d} / {t} = {v} km/h. Answer: {v}",
        _ck("speed", {"d": d, "t": t}, v),
    )


def share(rng):
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    k, q = rng.randint(2, 9), rng.randint(3, 25)
    n = k * q
    ins = rng.choice([
        "{name} splits {n} {thing} equally among {k} friends. How many {thing} does each friend receive?",
        "{n} {thing} are packed into {k} boxes with the same number in each. How many {thing} go in one box?",
    ]).format(name=name, n=n, thing=thing, k=k)  # fmt: skip
    return ins, "", f"{n} / {k} = {q}. Answer: {q}", _ck("divide", {"a": n, "b": k}, q)


def running(rng):
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(10, 80), rng.randint(5, 40)
    c = rng.randint(1, a + b - 1)
    ins = (f"{name} starts with {a} {thing}, gets {b} more from a friend, then gives {c} away. "
           f"How many {thing} does {name} end up with?")  # fmt: skip
    r = a + b - c
    return ins, "", f"{a} + {b} - {c} = {r}. Answer: {r}", _ck("add_sub", {"a": a, "b": b, "c": c}, r)


def discount(rng):
    item, price = rng.choice(ITEMS)
    pct = rng.choice([p for p in (10, 20, 25, 50) if price * p % 100 == 0])
    off = price * pct // 100
    ins = rng.choice([
        "A {item} priced at ${p} is reduced by {pct}% in a sale. What does it cost now, in dollars?",
        "During a {pct}%-off sale, how many dollars do you pay for a {item} that normally costs ${p}?",
    ]).format(item=item, p=price, pct=pct)  # fmt: skip
    resp = f"The reduction is {pct}% of ${price} = ${off}, so the price is ${price} - ${off} = ${price - off}. Answer: {price - off}"
    return ins, "", resp, _ck("discount", {"price": price, "pct": pct}, price - off)


def ages(rng):
    a, b = rng.sample(NAMES, 2)
    age_b, diff, years = rng.randint(5, 40), rng.randint(2, 15), rng.randint(2, 12)
    ins = f"{a} is {diff} years older than {b}, who is {age_b}. How old will {a} be in {years} years?"
    now = age_b + diff
    resp = f"{a} is {age_b} + {diff} = {now} now, so in {years} years {a} will be {now + years}. Answer: {now + years}"
    return ins, "", resp, _ck("age", {"younger": age_b, "diff": diff, "years": years}, now + years)


def savings(rng):
    name, s, w = rng.choice(NAMES), rng.randint(3, 45), rng.randint(3, 20)
    ins = rng.choice([
        "{name} puts ${s} into a piggy bank every week. How many dollars are saved after {w} weeks?",
        "If {name} saves ${s} each week for {w} weeks, how much money is that in total?",
    ]).format(name=name, s=s, w=w)  # fmt: skip
    return ins, "", f"{w} x ${s} = ${s * w}. Answer: {s * w}", _ck("multiply", {"a": s, "b": w}, s * w)


def fraction_of(rng):
    den = rng.choice([2, 3, 4, 5, 6, 8, 10])
    num = rng.randint(1, den - 1)
    while math.gcd(num, den) != 1:
        num = rng.randint(1, den - 1)
    n = den * rng.randint(2, 15)
    val = n // den * num
    ins = rng.choice(["What is {num}/{den} of {n}?", "Calculate {num}/{den} of {n}.",
                      "Find {num} {over} {den} of {n}."]).format(num=num, den=den, n=n, over="over")  # fmt: skip
    return (
        ins,
        "",
        f"{n} / {den} = {n // den}, and {n // den} x {num} = {val}. Answer: {val}",
        _ck("fraction_of", {"num": num, "den": den, "n": n}, val),
    )


def square_root(rng):
    r = rng.randint(4, 30)
    ins = rng.choice(
        ["What is the square root of {n}?", "Find the positive number whose square is {n}."]
    ).format(n=r * r)
    return (
        ins,
        "",
        f"{r} x {r} = {r * r}, so the square root is {r}. Answer: {r}",
        _ck("sqrt", {"n": r * r}, r),
    )


def math_families():
    return [
        ("arith", "programmatic", arith),
        ("divmod", "programmatic", divmod_task),
        ("gcd-lcm", "programmatic", gcd_lcm),
        ("power", "programmatic", power),
        ("sequence", "programmatic", sequence),
        ("median", "programmatic", median),
        ("rectangle", "programmatic", rectangle),
        ("speed", "programmatic", speed),
        ("share", "programmatic", share),
        ("running-total", "programmatic", running),
        ("discount", "programmatic", discount),
        ("ages", "programmatic", ages),
        ("savings", "programmatic", savings),
        ("fraction-of", "programmatic", fraction_of),
        ("square-root", "programmatic", square_root),
    ]


def _word_problem(ins: str, steps: str, answer, kind: str, args: dict):
    return ins, "", f"{steps} Answer: {answer}", _ck(kind, args, answer)


# handwritten math: instruction, input, response, check (checked by the same independent verifier)
HANDWRITTEN_MATH = [
    _word_problem("A baker makes 14 trays of 12 rolls and sells all but 9 rolls. How many rolls are sold?",
                  "14 x 12 = 168 rolls, and 168 - 9 = 159 are sold.", 159, "expr", {"expr": "14*12-9"}),
    _word_problem("A concert hall has 28 rows of 35 seats. How many seats does it have?",
                  "28 x 35 = 980 seats.", 980, "expr", {"expr": "28*35"}),
    _word_problem("A tank holds 750 litres and drains at 25 litres per minute. How many minutes until it is empty?",
                  "750 / 25 = 30 minutes.", 30, "expr", {"expr": "750//25"}),
    _word_problem("Convert 3 hours into seconds.", "3 x 60 x 60 = 10800 seconds.", 10800, "expr",
                  {"expr": "3*60*60"}),
    _word_problem("The sum of two consecutive whole numbers is 91. What is the larger one?",
                  "n + (n + 1) = 91 gives n = 45, so the larger is 46.", 46, "expr", {"expr": "(91+1)//2"}),
    _word_problem("A square has a perimeter of 52 cm. What is its area in square cm?",
                  "Each side is 52 / 4 = 13 cm, so the area is 13 x 13 = 169.", 169, "expr", {"expr": "(52//4)**2"}),
    _word_problem("Add up all the whole numbers from 1 to 50.",
                  "The sum is 50 x 51 / 2 = 1275.", 1275, "expr", {"expr": "sum(range(1,51))"}),
    _word_problem("A phone plan costs $18 a month plus a $25 setup fee. What is the cost for the first year?",
                  "12 x $18 = $216, plus $25 is $241.", 241, "expr", {"expr": "12*18+25"}),
    _word_problem("Three friends split a $96 dinner bill and a $15 tip equally. How much does each pay?",
                  "$96 + $15 = $111, and 111 / 3 = $37.", 37, "expr", {"expr": "(96+15)//3"}),
    _word_problem("If 5 pens cost $4, how much do 35 pens cost?", "35 is 7 x 5, so the cost is 7 x $4 = $28.",
                  28, "expr", {"expr": "35//5*4"}),
    _word_problem("How many edges does a cube have?", "A cube has 4 edges on top, 4 on the bottom and 4 upright.",
                  12, "expr", {"expr": "4+4+4"}),
    _word_problem("What is 1000 minus 1?", "1000 - 1 = 999.", 999, "expr", {"expr": "1000-1"}),
    _word_problem("A film starts at 7:40 pm and lasts 135 minutes. How many minutes after 9 pm does it end?",
                  "135 minutes is 2 h 15 min, so it ends at 9:55 pm, 55 minutes after 9.", 55, "expr",
                  {"expr": "40+135-120"}),
    _word_problem("Solve 4y = 3y + 17 for y.", "Subtract 3y from both sides: y = 17.", 17, "expr", {"expr": "17"}),
    _word_problem("What is the average of 15, 25 and 35?", "(15 + 25 + 35) / 3 = 75 / 3 = 25.", 25, "expr",
                  {"expr": "(15+25+35)//3"}),
    _word_problem("A school orders 9 boxes of 144 crayons. How many crayons is that?",
                  "9 x 144 = 1296 crayons.", 1296, "expr", {"expr": "9*144"}),
    _word_problem("What is 7 factorial?", "7! = 7 x 6 x 5 x 4 x 3 x 2 x 1 = 5040.", 5040, "expr",
                  {"expr": "7*6*5*4*3*2"}),
    _word_problem("How many diagonals does a hexagon have?", "n(n - 3) / 2 = 6 x 3 / 2 = 9.", 9, "expr",
                  {"expr": "6*3//2"}),
    _word_problem("A rope 84 m long is cut into pieces of 7 m. How many pieces are there?",
                  "84 / 7 = 12 pieces.", 12, "expr", {"expr": "84//7"}),
    _word_problem("Round 3,462 to the nearest hundred.", "The tens digit is 6, so round up to 3,500.", 3500,
                  "expr", {"expr": "round(3462,-2)"}),
]  # fmt: skip
