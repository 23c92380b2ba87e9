"""The offline lexicon labeller of FFN concept components (our word lists and rules; see
docs/concepts.md): task labels from topic lexicons, linguistic levels from word shapes, and a "cannot
tell" outcome (Wu et al.'s labeller says "Cannot Tell" when no concept covers more than half the words)."""

import re
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["TASKS", "LEVELS", "UNEXPLAINABLE", "Labeller", "lexicon_labeller", "normalise_label"]

TASKS = ("writing", "coding", "math", "translation", "none")
LEVELS = ("phonology", "morphology", "syntax", "semantics")
UNEXPLAINABLE = "cannot tell"
Labeller = Callable[[list[str]], dict]

# ------------------------------------------------------------------------------------------------
# The offline lexicon labeller (our word lists and rules; see docs/concepts.md)

_TASK_LEXICON: dict[str, frozenset[str]] = {
    "writing": frozenset(
        """
        write writer writing wrote written essay essays story stories poem poems poetry poet novel
        novels fiction narrative narrator letter letters email paragraph paragraphs article articles
        blog draft drafts author authors chapter chapters prose verse rhyme stanza plot character
        characters dialogue tale tales fable memoir biography diary journal headline headlines
        caption slogan speech report summary summarize summarise review reviews outline thesis
        introduction conclusion sentence sentences word words text texts tone style genre literary
        literature fairy romance mystery editorial column resume cover proposal memo pitch tweet
        post describe description describing narrate compose composition manuscript publish
        published publishing editor editing revise rewrite paraphrase quote quotes""".split()
    ),
    "coding": frozenset(
        """
        code codes coding coder program programs programming programmer function functions method
        methods class classes object objects variable variables loop loops array arrays list lists
        string strings integer int float bool boolean null none void return returns def lambda
        python java javascript typescript cpp rust golang ruby php html css sql json xml yaml api
        apis script scripts compile compiler debug debugging bug bugs syntax parse parser query
        queries database server client algorithm algorithms recursion recursive iterate iterator
        index indexes import module modules package library libraries framework runtime exception
        error errors stack queue tree node nodes pointer struct enum git github terminal console
        command commands shell bash linux regex http url thread async await software developer
        implement implementation repository binary hash dict tuple print printf println self""".split()
    ),
    "math": frozenset(
        """
        math maths mathematics mathematical number numbers numeral digit digits add addition
        subtract subtraction multiply multiplication divide division sum sums total product
        quotient remainder equation equations formula formulas formulae calculate calculation
        calculations compute solve solution solutions algebra geometry calculus arithmetic
        integral derivative derivatives matrix matrices vector vectors theorem proof prove lemma
        angle angles triangle triangles circle square squares cube root roots prime primes fraction
        fractions decimal decimals percent percentage ratio ratios probability statistics mean
        median average variance exponent logarithm log sine cosine tangent zero one two three four
        five six seven eight nine ten hundred thousand million billion half twice double triple
        plus minus times equals equal greater less odd even integer integers infinity""".split()
    ),
    "translation": frozenset(
        """
        translate translated translating translation translations translator interpreter language
        languages english french spanish german italian portuguese russian chinese japanese korean
        arabic hindi dutch swedish greek latin turkish polish hebrew vietnamese thai persian urdu
        bengali mandarin cantonese indonesian swahili danish norwegian finnish czech hungarian
        romanian ukrainian bilingual multilingual native foreign dialect dialects vocabulary
        grammar phrase phrases idiom idioms meaning synonym synonyms antonym equivalent spelling
        pronunciation accent fluent fluency lingua bonjour hola merci gracias danke ciao""".split()
    ),
}

_FUNCTION_WORDS = frozenset(
    """
    a an the this that these those some any each every either neither no all both few many much more
    most other another such what which who whom whose whatever whichever whoever i me my mine myself
    you your yours yourself we us our ours ourselves he him his himself she her hers herself it its
    itself they them their theirs themselves one ones and or but nor so yet for if then else because
    although though while whereas unless until since as than whether of in on at by to from with
    without within into onto upon about above below over under between among through throughout
    during before after against along across around behind beyond beside besides near toward towards
    via per is am are was were be been being do does did done have has had having will would shall
    should can could may might must not never also just only even too very quite rather here there
    where when why how whenever wherever however therefore thus hence moreover furthermore
    nevertheless otherwise indeed""".split()
)
_AFFIXES = (
    "ing",
    "ed",
    "ly",
    "tion",
    "sion",
    "ment",
    "ness",
    "able",
    "ible",
    "ful",
    "less",
    "ous",
    "ive",
    "ize",
    "ise",
    "ity",
    "est",
    "ism",
    "ist",
    "al",
    "er",
)
_SHARE = 0.4  # a level needs this share of the top words (our choice)
_MIN_TASK_HITS = 2  # a task label needs at least this many of the top words in its lexicon (our choice)


def _stems(word: str) -> set[str]:
    """The word and its forms with one common inflection removed (for lexicon look-up)."""
    out = {word}
    for suffix in ("s", "es", "ed", "d", "ing", "er", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            out.add(word[: -len(suffix)])
    return out


def normalise_label(label: object) -> dict:
    """A labeller's dict with ``explainable`` (bool) and ``tasks`` (list) filled in.

    A labeller may return only ``{"task": ..., "level": ...}`` (one task): then ``explainable`` is True
    unless the level is :data:`UNEXPLAINABLE`, and ``tasks`` is ``[task]`` (empty for ``"none"``).
    """
    if not isinstance(label, dict):
        raise ValueError(
            f"labeller must return a dict (e.g. {{'task': ..., 'level': ...}}); got {type(label)}."
        )
    out = dict(label)
    if "tasks" not in out:
        task = out.get("task", "none")
        out["tasks"] = [] if task in ("none", UNEXPLAINABLE, None) else [task]
    out["tasks"] = [t for t in out["tasks"] if t != "none"]
    out.setdefault("explainable", out.get("level") != UNEXPLAINABLE)
    out["explainable"] = bool(out["explainable"])
    return out


def lexicon_labeller(words: Sequence[str]) -> dict:
    """Label a component from its top words with fixed word lists and rules (deterministic, offline).

    ``tasks``: every task whose lexicon (our lists of writing, coding, math and translation words; a word
    matches when it or its form with one common inflection stripped is listed) holds at least 2 of the
    words, most hits first — several tasks are allowed, as in the authors' labels. ``task``: the first of
    them (strictly more hits than any other task), else ``"none"``.

    ``level``, checked in this order, each needing 40% of the words: ``syntax`` (closed-class function
    words: determiners, pronouns, prepositions, conjunctions, auxiliaries), ``morphology`` (one shared
    derivational/inflectional suffix, or words sharing a stem of 4+ letters with another listed word),
    ``phonology`` (the same final two letters, not a listed suffix, i.e. rhyme; or, for half of the
    words, the same first two letters, i.e. alliteration); else ``semantics`` when the words share a
    topic (some task matched); else :data:`UNEXPLAINABLE` — the component is then ``explainable=False``
    and left out of every share, as the authors drop their "Cannot Tell" components.

    Args:
        words: the component's top words (the paper labels the top 15).

    Returns:
        ``{"explainable": bool, "tasks": [...], "task": one of TASKS, "level": one of LEVELS or
        "cannot tell"}``.

    Examples:
        >>> lexicon_labeller(["python", "function", "loop", "cat", "return"])
        {'explainable': True, 'tasks': ['coding'], 'task': 'coding', 'level': 'semantics'}
    """
    words = [re.sub(r"[^a-z]", "", w.lower()) for w in words]
    words = [w for w in words if w]
    if not words:
        return {"explainable": False, "tasks": [], "task": "none", "level": UNEXPLAINABLE}
    n = len(words)
    hits = {task: sum(bool(_stems(w) & lex) for w in words) for task, lex in _TASK_LEXICON.items()}
    ranked = sorted(hits.items(), key=lambda kv: -kv[1])
    best, second = ranked[0], ranked[1]
    task = best[0] if best[1] >= _MIN_TASK_HITS and best[1] > second[1] else "none"
    tasks = [t for t, h in ranked if h >= _MIN_TASK_HITS]

    def share(count: int) -> float:
        return count / n

    if share(sum(w in _FUNCTION_WORDS for w in words)) >= _SHARE:
        level = "syntax"
    else:
        affix = max((sum(w.endswith(a) and len(w) > len(a) + 2 for w in words) for a in _AFFIXES), default=0)
        stem = sum(
            any(
                o != w
                and min(len(o), len(w)) >= 4
                and (o.startswith(w) or w.startswith(o) or o[:5] == w[:5] and len(w) >= 5)
                for o in words
            )
            for w in words
        )
        rime = Counter(w[-2:] for w in words if len(w) >= 3 and not w.endswith(_AFFIXES))
        onset = Counter(w[:2] for w in words if len(w) >= 2)
        if share(max(affix, stem)) >= _SHARE:
            level = "morphology"
        elif share(max(rime.values(), default=0)) >= _SHARE or share(max(onset.values(), default=0)) >= 0.5:
            level = "phonology"
        else:
            level = "semantics" if tasks else UNEXPLAINABLE
    return {"explainable": level != UNEXPLAINABLE, "tasks": tasks, "task": task, "level": level}
