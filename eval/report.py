"""Human-readable views of a run's metrics.json: markdown report, PNG plot, rich table.

Everything here reads only the metrics dict (``{"protocol": ..., "systems": ...}``), so a
report can be re-rendered from a saved metrics.json without re-running anything.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tastelens.fsutil import atomic_write_text


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def columns(ks: list[int], *, compact: bool = False) -> list[tuple[str, str]]:
    """(header, metrics key) pairs of the results table; compact: first K only for the
    beyond-accuracy metrics (for narrow terminals)."""
    beyond = ks[:1] if compact else ks
    cols = [(f"NDCG@{k}", f"ndcg@{k}") for k in ks]
    cols += [(f"Recall@{k}", f"recall@{k}") for k in ks]
    cols.append(("MRR", "mrr"))
    cols += [(f"Cov@{k}", f"coverage@{k}") for k in beyond]
    cols.append(("UserCov", "user_coverage"))
    cols += [(f"ILD@{k}", f"ild@{k}") for k in beyond]
    cols += [(f"Nov@{k}", f"novelty@{k}") for k in beyond]
    cols += [("Fit s", "fit_seconds"), ("Score s", "score_seconds")]
    return cols


def table_rows(metrics: dict[str, Any], *, compact: bool = False
               ) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows, one per system, in config order (compact: fewer columns,
    three decimals)."""
    digits = 3 if compact else 4
    ks = metrics["protocol"]["k"]
    cols = columns(ks, compact=compact)
    rows = []
    for name, entry in metrics["systems"].items():
        row = [name]
        for _, key in cols:
            value = entry.get(key)
            if key.endswith("_seconds"):
                row.append(_seconds(value))
            elif key.startswith("novelty"):
                row.append(_fmt(value, 2))
            else:
                row.append(_fmt(value, digits))
        rows.append(row)
    return ["System", *[h for h, _ in cols]], rows


def ci_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Paired-bootstrap differences vs the reference, as 'Δ [low, high]' cells."""
    ks = metrics["protocol"]["k"]
    keys = [f"ndcg@{ks[0]}", f"recall@{ks[0]}", "mrr"]
    names = [f"NDCG@{ks[0]}", f"Recall@{ks[0]}", "MRR"]
    rows = []
    for name, entry in metrics["systems"].items():
        if "ci" not in entry:
            continue
        cells = []
        for key in keys:
            ci = entry["ci"][key]
            mark = " *" if ci["low"] > 0 or ci["high"] < 0 else ""
            cells.append(f"{ci['delta']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]{mark}")
        rows.append([name, *cells])
    return ["System", *[f"Δ {n}" for n in names]], rows


def pair_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per extra pair of the bootstrap section: each metric's difference, interval."""
    names = None
    rows = []
    for name, entry in metrics["systems"].items():
        for other, cis in entry.get("ci_vs", {}).items():
            names = names or list(cis)
            cells = []
            for metric in names:
                ci = cis[metric]
                mark = " *" if ci["low"] > 0 or ci["high"] < 0 else ""
                cells.append(f"{ci['delta']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]{mark}")
            rows.append([f"{name} − {other}", *cells])
    return (["Pair", *[f"Δ {n}" for n in names]] if names else []), rows


def card_sections(metrics: dict[str, Any]) -> list[str]:
    """A section per system that reported a card (a learned ranker: its data, held-out
    metrics and the features that matter most)."""
    out: list[str] = []
    for name, entry in metrics["systems"].items():
        card = entry.get("card")
        if not card:
            continue
        out += [f"## `{name}`: learned ranker", ""]
        data = card.get("data", {})
        if data:
            out += [f"Trained on {data.get('cases', 0):,} cases ({data.get('labelled_cases', 0):,}"
                    f" with the target among {data.get('candidates')} candidates, "
                    f"{data.get('later_cases', 0):,} of them validation targets); "
                    f"{data.get('llm_cases', 0):,} cases with LLM scores.", ""]
        val = card.get("validation", {})
        if val:
            cells = [f"{k.removeprefix('ndcg@10_')} {v:.4f}" for k, v in val.items()
                     if k.startswith("ndcg@10")]
            out += [f"Held-out users ({val.get('users')}, {val.get('cases')} cases) NDCG@10: "
                    + ", ".join(cells) + ".", ""]
        for kind, gains in card.get("importances", {}).items():
            top = list(gains.items())[:10]
            total = sum(gains.values()) or 1.0
            out += [f"Feature importance ({kind} ensemble, share of gain): "
                    + ", ".join(f"{n} {g / total:.0%}" for n, g in top) + ".", ""]
    return out


DIAGNOSTIC_LABELS = {
    "n_users": "Users",
    "llm_requests": "LLM requests",
    "invalid_rate": "Invalid",
    "fallback_rate": "Fallback",
    "latency_per_user_s": "Latency/user s",
    "prompt_tokens_per_user": "Prompt tok/user",
    "completion_tokens_per_user": "Compl. tok/user",
    "candidate_recall@20": "Cand. R@20",
    "candidate_recall@50": "Cand. R@50",
    "candidate_recall@100": "Cand. R@100",
}
"""Column headers of the well-known diagnostics keys; other keys are shown by name."""


def _diagnostic(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–" if value is None else str(value)
    if key.endswith("_rate") or key.startswith("candidate_recall"):
        return "–" if math.isnan(value) else f"{value:.1%}"
    if isinstance(value, int):
        return str(value)
    return _fmt(float(value), 2 if key.endswith("_s") or "tokens" in key else 4)


def diagnostics_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the systems that reported ``diagnostics`` (LLM systems: invalid
    output and fallback rates, latency and tokens per user); empty rows when none did."""
    reporting = {name: entry["diagnostics"] for name, entry in metrics["systems"].items()
                 if entry.get("diagnostics")}
    known = [k for k in DIAGNOSTIC_LABELS if any(k in d for d in reporting.values())]
    extra = [k for k in dict.fromkeys(k for d in reporting.values() for k in d)
             if k not in DIAGNOSTIC_LABELS]
    keys = known + extra
    rows = [[name, *[_diagnostic(k, d.get(k)) for k in keys]] for name, d in reporting.items()]
    return ["System", *[DIAGNOSTIC_LABELS.get(k, k) for k in keys]], rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(metrics: dict[str, Any], plot_name: str | None = None) -> str:
    p = metrics["protocol"]
    ks = p["k"]
    out = [f"# Evaluation: {p['dataset']} — {p['protocol']} protocol, {p['split']} split", ""]
    out += ["## Results", ""]
    if p["user_sample"].get("n"):
        # Sampled runs are only comparable on the same users: say which, up front.
        out += [f"On a random sample of {p['users']} users (users.n = {p['user_sample']['n']}, "
                f"seed {p['user_sample']['seed']}); every system saw the same users.", ""]
    out += [_markdown_table(*table_rows(metrics)), ""]
    out += ["Cov@K: share of the catalog in any top-K list. UserCov: share of users who got an "
            "informative ranking (not every item scored the same). ILD@K: 1 - mean pairwise "
            "cosine of genre vectors. Nov@K: mean -log2 training popularity (bits). "
            "Times in seconds (fit; score() calls only).", ""]
    header, rows = diagnostics_rows(metrics)
    if rows:
        out += ["## Diagnostics", "", _markdown_table(header, rows), "",
                "Reported by the systems themselves. Invalid: share of model outputs that were "
                "unusable before any fallback (after the one retry, where there is one). "
                "Fallback: share of users whose answer came from the deterministic fallback. "
                "Latency/user: wall seconds of the stages that call the model (llm-pipeline, "
                "full protocol: the whole pipeline call), divided by the users scored; "
                "requests are batched, so it is throughput, not one user's wait. Tokens per "
                "user: prompt and completion tokens of all model calls per user scored.", ""]
    header, rows = ci_rows(metrics)
    if rows:
        b = p["bootstrap"]
        out += [f"## Difference vs `{p['reference']}` (paired bootstrap over users, "
                f"{b['n_resamples']} resamples, {b['confidence']:.0%} CI)", "",
                _markdown_table(header, rows), "", "`*`: the interval excludes 0.", ""]
    header, rows = pair_rows(metrics)
    if rows:
        out += ["## More differences (paired bootstrap)", "", _markdown_table(header, rows), "",
                "`*`: the interval excludes 0.", ""]
    out += card_sections(metrics)
    if plot_name:
        out += [f"![NDCG@{ks[0]} and Recall@{ks[0]}]({plot_name})", ""]
    sample = p["user_sample"]
    users = f"{p['users']} ({p['cases']} cases)"
    if sample.get("n"):
        users += f", random sample of {sample['n']} (seed {sample['seed']})"
    protocol = p["protocol"]
    if protocol == "candidates":
        protocol += f": target + {p['n_negatives']} sampled negatives (seed {p['candidate_seed']})"
    else:
        protocol += ": whole catalog ranked, items seen before the target masked"
    split = p["split"]
    if p.get("split_skipped_users"):
        split += " (skipped users: " + ", ".join(
            f"{k}: {v}" for k, v in p["split_skipped_users"].items()) + ")"
    out += ["## Protocol", "",
            f"- Dataset: {p['dataset']} ({p['n_items']} items, {p['n_interactions']} "
            f"interactions; {p['n_train_interactions']} for training){_src(p)}",
            f"- Split: {split}; evaluated on: {p['evaluate_on']}",
            f"- Protocol: {protocol}",
            f"- Users: {users}",
            f"- Seeds: {', '.join(map(str, p['seeds']))}; cut-offs K: {', '.join(map(str, ks))}",
            f"- Ties: {p['ties']}",
            f"- Commit: {p.get('commit') or 'unknown'}",
            "- Systems: " + "; ".join(
                f"`{s['name']}` = {s['type']}{' ' + str(s['params']) if s['params'] else ''}"
                for s in p["systems"]), ""]
    return "\n".join(out)


def _src(p: dict[str, Any]) -> str:
    return f", from `{p['source']}`" if p.get("source") else ""


def write_report(metrics: dict[str, Any], path: Path, plot_name: str | None = None) -> None:
    atomic_write_text(path, render_markdown(metrics, plot_name))


def write_plot(metrics: dict[str, Any], path: Path) -> None:
    """Bars of NDCG@K and Recall@K (first K) per system, bootstrap 95% CIs as error bars."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    k = metrics["protocol"]["k"][0]
    names = list(metrics["systems"])
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.1 * len(names) + 3), 3.8))
    for ax, key, title in zip(axes, (f"ndcg@{k}", f"recall@{k}"), (f"NDCG@{k}", f"Recall@{k}")):
        values = [metrics["systems"][n][key] for n in names]
        cis = [metrics["systems"][n].get("mean_ci", {}).get(key) for n in names]
        low = [v - c["low"] if c else 0.0 for v, c in zip(values, cis)]
        high = [c["high"] - v if c else 0.0 for v, c in zip(values, cis)]
        ax.bar(range(len(names)), values, yerr=[low, high], capsize=4, color="#4C72B0")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    p = metrics["protocol"]
    fig.suptitle(f"{p['dataset']} — {p['protocol']} protocol, {p['users']} users "
                 "(bars: bootstrap CI of the mean)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rich_table(metrics: dict[str, Any]):  # -> rich.table.Table
    """The results table for the terminal (compact columns)."""
    from rich import box
    from rich.table import Table

    header, rows = table_rows(metrics, compact=True)
    p = metrics["protocol"]
    # Narrow box and padding: 12 columns must fit an 80-column terminal.
    table = Table(title=f"{p['dataset']} · {p['protocol']} · {p['split']} · {p['users']} users",
                  box=box.SIMPLE_HEAD, padding=0, pad_edge=False)  # the box's space separates
    table.add_column(header[0], overflow="fold",  # long system names wrap, numbers never do
                     min_width=min(14, max((len(row[0]) for row in rows), default=6)))
    for i, h in enumerate(header[1:], start=1):
        width = max(len(row[i]) for row in rows) if rows else 4
        short = h.replace("Recall", "Rec").replace("UserCov", "User cov").replace("@", " @")
        table.add_column(short.replace(" ", "\n"), justify="right", no_wrap=True,
                         min_width=width)
    for row in rows:
        table.add_row(*row)
    return table
