"""Comparisons of instruction scores with intervals and power (METHODS.md section 5; Wu et al.).

:func:`compare_models` compares two models on the same prompts (Table 2 of Wu et al.): the authors'
one-sided Welch test, and, since both models see the same prompts, a paired t-test and a Wilcoxon
signed-rank test, a bootstrap interval of the mean difference, and the power of the design actually
run to detect the paper's effect. :func:`followed_vs_not` is Table 1: followed against not-followed
responses of one model, from ratings the user supplies or a judge the user chooses, with the authors'
filters. Both return :class:`~instr_interp.results.Result` subclasses; nothing here renders prose.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from ..results import Result
from ..stats import detectable_difference, paired_t_power, welch, welch_power
from .attribution_results import AttributionSet

__all__ = [
    "FOLLOWED_AT",
    "MIN_RESPONSE_TOKENS",
    "PAPER_FOLLOWED_EFFECT",
    "PAPER_MODEL_EFFECT",
    "FollowedComparison",
    "ScoreComparison",
    "compare_models",
    "followed_vs_not",
]

# Wu et al. (arXiv 2310.00492), LIMA prompts, recomputed from the authors' released matrices
# (METHODS.md section 5): Vicuna-7B 1.556 vs LLaMA-7B 1.266; followed 1.616 vs not followed 1.276.
PAPER_MODEL_EFFECT = 1.556 - 1.266
PAPER_FOLLOWED_EFFECT = 1.616 - 1.276
MIN_RESPONSE_TOKENS = 5  # Table 1: responses with fewer tokens are dropped
FOLLOWED_AT = 2  # Table 1: ratings >= 2 are merged into "followed"; ratings <= 0 are dropped


def _scores(x: "AttributionSet | pd.DataFrame", exclude_template: bool) -> pd.DataFrame:
    if isinstance(x, AttributionSet):
        return x.to_frame(exclude_template=exclude_template)
    if isinstance(x, pd.DataFrame):
        missing = {"id", "instruction_score"} - set(x.columns)
        if missing:
            raise ValueError(
                f"A score frame needs the columns id and instruction_score; missing {sorted(missing)}."
            )
        if exclude_template:
            raise ValueError("exclude_template needs AttributionSets (a frame holds scores already).")
        return x
    raise ValueError(f"Expected an AttributionSet or a DataFrame of scores, got {type(x).__name__}.")


def _bootstrap_ci(samples: tuple, statistic, *, paired: bool, n_resamples: int, level: float, seed: int):
    """Percentile bootstrap interval (``scipy.stats.bootstrap``); NaNs when a sample has < 2 values."""
    if min(len(s) for s in samples) < 2:
        return float("nan"), float("nan")
    res = sps.bootstrap(
        samples,
        statistic,
        paired=paired,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean_diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


@dataclass(kw_only=True, repr=False)
class ScoreComparison(Result):
    """Instruction scores of model ``b`` against model ``a`` on the same prompts, paired by record id."""

    a: str
    b: str
    ids: list[str]
    scores_a: torch.Tensor  # one per id, float64
    scores_b: torch.Tensor
    summary: dict  # means, interval, tests and power (see compare_models)
    settings: dict = field(default_factory=dict)

    @property
    def differences(self) -> np.ndarray:
        return (self.scores_b - self.scores_a).numpy()

    def to_frame(self) -> pd.DataFrame:
        """One row per record: id, score under a, score under b, difference b - a."""
        return pd.DataFrame(
            {
                "id": self.ids,
                "score_a": self.scores_a.numpy(),
                "score_b": self.scores_b.numpy(),
                "difference": self.differences,
            }
        )

    def _facts(self) -> dict[str, object]:
        s = self.summary
        return {
            "models": f"{self.a} -> {self.b}, {len(self.ids)} paired records",
            "means": f"{s['mean_a']:.3f} -> {s['mean_b']:.3f} (difference {s['difference']:+.3f}, "
            f"{s['level']:.0%} CI {s['ci_low']:+.3f} .. {s['ci_high']:+.3f})",
            "tests (b > a)": f"paired t p={s['paired_p']:.3g}, Wilcoxon p={s['wilcoxon_p']:.3g}, "
            f"Welch p={s['welch_p']:.3g}",
            "power": f"{s['power_paired']:.2f} (paired) / {s['power_welch']:.2f} (Welch) for a difference of "
            f"{s['effect']:.3f}",
        }

    def _saved(self):
        return {"scores_a": self.scores_a, "scores_b": self.scores_b}, {
            "a": self.a,
            "b": self.b,
            "ids": self.ids,
            "summary": self.summary,
            "settings": self.settings,
        }

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "ScoreComparison":
        return cls(
            scores_a=tensors["scores_a"],
            scores_b=tensors["scores_b"],
            **{k: meta[k] for k in ("a", "b", "ids", "summary", "settings")},
        )


def compare_models(
    a: "AttributionSet | pd.DataFrame",
    b: "AttributionSet | pd.DataFrame",
    *,
    exclude_template: bool = False,
    effect: float = PAPER_MODEL_EFFECT,
    alpha: float = 0.05,
    level: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> ScoreComparison:
    """Do model ``b``'s instruction scores exceed model ``a``'s on the same prompts?

    Records are paired by id (both sets must hold the same ids). Reported, all one-sided ``b > a``:
    the authors' Welch test (``scipy.stats.ttest_ind(b, a, equal_var=False)``), the paired t-test
    (``ttest_rel``) and the Wilcoxon signed-rank test (``wilcoxon``, zero differences dropped); the
    mean difference with a percentile bootstrap interval over records (paired resampling); and the
    power of the paired and of the Welch test at level ``alpha`` to detect a true difference of
    ``effect`` given this design's n and the observed standard deviations (noncentral t;
    :func:`~instr_interp.stats.paired_t_power`), with the difference each detects at 80% power.

    Args:
        a: the reference model's scores (e.g. the base model): an ``AttributionSet`` or a frame with
            ``id`` and ``instruction_score``.
        b: the model hypothesised to score higher (e.g. its instruction-tuned version).
        exclude_template: score without the prompt format's tokens (AttributionSets only).
        effect: the difference the power is computed for; default the paper's LIMA difference
            (Vicuna-7B − LLaMA-7B, 0.290).
        alpha: test level for the power.
        level: confidence level of the bootstrap interval.
        n_resamples, seed: bootstrap resamples and seed.
    """
    fa, fb = _scores(a, exclude_template), _scores(b, exclude_template)
    ids = list(fa["id"])
    if sorted(ids) != sorted(fb["id"]) or len(set(ids)) != len(ids):
        only_a, only_b = set(ids) - set(fb["id"]), set(fb["id"]) - set(ids)
        raise ValueError(
            "compare_models pairs records by id, so a and b must hold the same unique ids; "
            f"only in a: {sorted(only_a)[:5]}, only in b: {sorted(only_b)[:5]}."
        )
    sa = fa.set_index("id").loc[ids, "instruction_score"].to_numpy(float)
    sb = fb.set_index("id").loc[ids, "instruction_score"].to_numpy(float)
    d = sb - sa
    n = len(d)
    nan = float("nan")
    sd_a, sd_b, sd_d = (float(x.std(ddof=1)) if n >= 2 else nan for x in (sa, sb, d))
    paired = sps.ttest_rel(sb, sa, alternative="greater") if n >= 2 and sd_d > 0 else None
    nonzero = d[d != 0]
    wil = sps.wilcoxon(nonzero, alternative="greater") if len(nonzero) >= 1 else None
    w = welch(sb, sa, alternative="greater")
    ci = _bootstrap_ci((sb, sa), _mean_diff, paired=True, n_resamples=n_resamples, level=level, seed=seed)
    summary = {
        "n": n,
        "mean_a": float(sa.mean()) if n else nan,
        "mean_b": float(sb.mean()) if n else nan,
        "sd_a": sd_a,
        "sd_b": sd_b,
        "difference": float(d.mean()) if n else nan,
        "sd_difference": sd_d,
        "level": level,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "paired_t": float(paired.statistic) if paired else nan,
        "paired_p": float(paired.pvalue) if paired else nan,
        "wilcoxon_w": float(wil.statistic) if wil else nan,
        "wilcoxon_p": float(wil.pvalue) if wil else nan,
        "welch_t": w.statistic,
        "welch_p": w.p_value,
        "welch_note": w.note,
        "alpha": alpha,
        "effect": effect,
        "power_paired": paired_t_power(effect, sd_d, n, alpha=alpha),
        "power_welch": welch_power(effect, sd_a, sd_b, n, n, alpha=alpha),
        "detectable_paired": detectable_difference(lambda e: paired_t_power(e, sd_d, n, alpha=alpha)),
        "detectable_welch": detectable_difference(lambda e: welch_power(e, sd_a, sd_b, n, n, alpha=alpha)),
        "alternative": "b > a",
    }
    names = [x.name if isinstance(x, AttributionSet) else x.attrs.get("name", "") for x in (a, b)]
    return ScoreComparison(
        a=names[0] or "a",
        b=names[1] or "b",
        ids=ids,
        scores_a=torch.tensor(sa, dtype=torch.float64),
        scores_b=torch.tensor(sb, dtype=torch.float64),
        summary=summary,
        settings={"exclude_template": exclude_template, "n_resamples": n_resamples, "seed": seed},
    )


# ---------------------------------------------------------------------------------------------
# Table 1: followed vs not followed


@dataclass(kw_only=True, repr=False)
class FollowedComparison(Result):
    """Table 1 of Wu et al.: instruction scores of followed vs not-followed responses, per group."""

    table: pd.DataFrame  # one row per group and "overall"
    records: pd.DataFrame  # the kept records: id, group, rating, followed, instruction_score, n_response
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def _facts(self) -> dict[str, object]:
        row = self.table.set_index("group").loc["overall"]
        return {
            "records": f"{int(row['n_followed'])} followed, {int(row['n_not'])} not followed "
            f"({self.settings.get('dropped', 0)} dropped by the filters)",
            "means": f"not {row['mean_not']:.3f} vs followed {row['mean_followed']:.3f}, "
            f"Welch p={row['p_value']:.3g}, power {row['power']:.2f}",
        }

    def _saved(self):
        return {}, {
            "table": self.table.to_dict(orient="list"),
            "records": self.records.to_dict(orient="list"),
            "settings": self.settings,
        }

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "FollowedComparison":
        return cls(
            table=pd.DataFrame(meta["table"]),
            records=pd.DataFrame(meta["records"]),
            settings=meta["settings"],
        )


def _ratings(frame: pd.DataFrame, items, ratings, judge) -> np.ndarray:
    if (ratings is None) == (judge is None):
        raise ValueError(
            "Pass exactly one of ratings= (a column, a mapping id -> rating, or a list) and judge=."
        )
    if judge is not None:
        if not callable(judge):
            raise ValueError(f"judge must be a callable returning a rating, got {type(judge).__name__}.")
        subjects = list(items) if isinstance(items, AttributionSet) else [row for _, row in frame.iterrows()]
        return np.array([float(judge(x)) for x in subjects])
    if isinstance(ratings, str):
        if ratings not in frame.columns:
            raise ValueError(f"ratings={ratings!r} is not a column; the columns are {list(frame.columns)}.")
        return frame[ratings].to_numpy(float)
    if isinstance(ratings, Mapping):
        missing = [i for i in frame["id"] if i not in ratings]
        if missing:
            raise ValueError(f"ratings has no rating for ids {missing[:5]}.")
        return np.array([float(ratings[i]) for i in frame["id"]])
    if isinstance(ratings, Sequence | np.ndarray | pd.Series):
        if len(ratings) != len(frame):
            raise ValueError(f"ratings has {len(ratings)} values for {len(frame)} records.")
        return np.asarray(ratings, dtype=float)
    raise ValueError(f"ratings must be a column name, a mapping or a list, got {type(ratings).__name__}.")


def followed_vs_not(
    items: "AttributionSet | pd.DataFrame",
    ratings: "str | Mapping[str, float] | Sequence[float] | None" = None,
    *,
    judge: Callable[[object], float] | None = None,
    by: str | None = None,
    min_response_tokens: int = MIN_RESPONSE_TOKENS,
    followed_at: float = FOLLOWED_AT,
    exclude_template: bool = False,
    effect: float = PAPER_FOLLOWED_EFFECT,
    alpha: float = 0.05,
    level: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> FollowedComparison:
    """Table 1: do followed responses score higher than not-followed ones?

    The authors' filters: records rated ``<= 0`` are dropped, and so are responses with fewer than
    ``min_response_tokens`` tokens; ratings ``>= followed_at`` (2) are merged into "followed", the
    rest (``0 < rating < 2``) are "not followed". Their test: one-sided Welch, not followed < followed
    (``ttest_ind(not, followed, equal_var=False, alternative="less")``). Added: the difference's
    percentile bootstrap interval and the test's power for ``effect`` at the observed SDs and ns.

    Args:
        items: one model's attributions (an ``AttributionSet``) or a frame with ``id``,
            ``instruction_score`` and ``n_response`` (and any rating or group columns).
        ratings: a column of ``items``' frame, a mapping id -> rating, or one rating per record.
        judge: instead of ``ratings``, a callable the user chooses that rates each
            :class:`~instr_interp.shift.attribution.Attribution` (or each frame row).
        by: a column to group by (e.g. ``"source"``: the authors' LIMA / MT-Bench / Self-Instruct rows);
            None: overall only.
        min_response_tokens, followed_at: the filters (defaults the authors' 5 and 2).
        exclude_template: score without the prompt format's tokens (AttributionSets only).
        effect: difference the power is computed for (default the paper's LIMA 1.616 − 1.276).
        alpha, level, n_resamples, seed: test level, interval level and bootstrap settings.
    """
    frame = _scores(items, exclude_template).reset_index(drop=True)
    if "n_response" not in frame.columns:
        raise ValueError("followed_vs_not needs n_response (response tokens) to apply the >= 5 token filter.")
    if by is not None and by not in frame.columns:
        raise ValueError(f"Cannot group by {by!r}; the columns are {list(frame.columns)}.")
    rating = _ratings(frame, items, ratings, judge)
    keep = (rating > 0) & (frame["n_response"].to_numpy() >= min_response_tokens)
    kept = frame.loc[keep, ["id", "instruction_score", "n_response"] + ([by] if by else [])].copy()
    kept["rating"] = rating[keep]
    kept["followed"] = kept["rating"] >= followed_at
    kept["group"] = kept[by] if by else "overall"
    groups = ([] if by is None else list(dict.fromkeys(kept["group"]))) + ["overall"]
    rows = []
    for group in groups:
        sub = kept if group == "overall" else kept[kept["group"] == group]
        yes = sub.loc[sub["followed"], "instruction_score"].to_numpy(float)
        no = sub.loc[~sub["followed"], "instruction_score"].to_numpy(float)
        test = welch(yes, no, alternative="greater")  # = ttest_ind(no, yes, alternative="less")
        ci = _bootstrap_ci(
            (yes, no), _mean_diff, paired=False, n_resamples=n_resamples, level=level, seed=seed
        )
        sd_no = float(no.std(ddof=1)) if len(no) >= 2 else float("nan")
        sd_yes = float(yes.std(ddof=1)) if len(yes) >= 2 else float("nan")
        rows.append(
            {
                "group": group,
                "n_not": len(no),
                "mean_not": float(no.mean()) if len(no) else float("nan"),
                "std_not": sd_no,
                "n_followed": len(yes),
                "mean_followed": float(yes.mean()) if len(yes) else float("nan"),
                "std_followed": sd_yes,
                "difference": float(yes.mean() - no.mean()) if len(yes) and len(no) else float("nan"),
                "ci_low": ci[0],
                "ci_high": ci[1],
                "t": test.statistic,
                "p_value": test.p_value,
                "power": welch_power(effect, sd_no, sd_yes, len(no), len(yes), alpha=alpha),
                "note": test.note,
            }
        )
    return FollowedComparison(
        table=pd.DataFrame(rows),
        records=kept.drop(columns=[by] if by and by != "group" else []).reset_index(drop=True),
        settings={
            "min_response_tokens": min_response_tokens,
            "followed_at": followed_at,
            "dropped": int((~keep).sum()),
            "judge": getattr(judge, "__name__", repr(judge)) if judge is not None else None,
            "exclude_template": exclude_template,
            "effect": effect,
            "alpha": alpha,
            "level": level,
        },
    )
