"""``report.md`` of an ``eval chat`` run, from its ``metrics.json`` alone (so a report can be
written again from a finished run)."""

from __future__ import annotations

from typing import Any


def _ci(cell: dict[str, float] | None) -> str:
    if not cell:
        return "–"
    return f"{cell['mean']:.4f} [{cell['low']:.4f}, {cell['high']:.4f}]"


def _delta(cell: dict[str, Any]) -> str:
    star = " *" if cell.get("excludes_zero") else ""
    return f"{cell['delta']:+.4f} [{cell['low']:+.4f}, {cell['high']:+.4f}]{star}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    aligns = ["---"] + ["---:"] * (len(header) - 1)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def metric_names(metrics: dict[str, Any]) -> list[str]:
    p = metrics["protocol"]
    return [f"recall@{k}" for k in p["k"]] + [f"mrr@{p['mrr_k']}"]


def overall_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the overall table: every system with its intervals."""
    names = metric_names(metrics)
    header = ["system", *(n.replace("recall", "Recall").replace("mrr", "MRR") for n in names),
              "empty list", "named back"]
    rows = []
    for system, values in metrics["systems"].items():
        extra = [_ci(values.get(n)) if n in values else "–" for n in ("empty", "named_back")]
        rows.append([system, *(_ci(values.get(n)) for n in names), *extra])
    return header, rows


def difference_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["difference", "Recall@10", "MRR@10"]
    rows = [[name, _delta(d["recall@10"]), _delta(d["mrr@10"])]
            for name, d in metrics["differences"].items()]
    return header, rows


def report_markdown(metrics: dict[str, Any]) -> str:
    p = metrics["protocol"]
    chat = p["chat"]
    skipped = ", ".join(f"{v} {k}" for k, v in p["skipped"].items()) or "none"
    how = (f"in process, LLM {'on' if chat.get('llm') else 'off'}, re-rank "
           f"{chat.get('rerank')!r}, k = {chat.get('k')}" if chat.get("mode") == "in-process"
           else f"over HTTP at {chat.get('url')} (k = the server's chat.k)")
    lines = [
        f"# Conversational recommendation: protocol '{p['name']}'", "",
        f"- dataset **{p['dataset']}**, dialogues `{p['dialogues']}`, split **{p['split']}**"
        + (f", first {p['limit']} cases" if p.get("limit") else ""),
        f"- {p['n_cases']} cases from {p['n_conversations']} conversations "
        f"({p['n_conversations_in_split']} in the split, "
        f"{p.get('n_conversations_in_file', '?')} in the file); skipped: {skipped}",
        f"- chat: {how}",
        f"- commit {p.get('commit') or 'unknown'}; bootstrap over conversations: "
        f"{p['bootstrap']['n_resamples']} resamples, {p['bootstrap']['confidence']:.0%}, "
        f"seed {p['bootstrap']['seed']}", "",
        "## Overall (mean [95 % interval])", "",
        "*empty list*: no list, or an empty one; *named back*: the chat's list holds a film "
        "named before the target.", ""]
    lines += _table(*overall_rows(metrics))
    if metrics["differences"]:
        lines += ["", "## Chat minus each baseline (paired; * = the interval excludes 0)", ""]
        lines += _table(*difference_rows(metrics))
    lines += ["", "## Per case kind (Recall@10 / MRR@10)", ""]
    systems = list(metrics["systems"])
    rows = []
    for kind, block in metrics["by_kind"].items():
        cells = [f"{block['systems'][s]['recall@10']['mean']:.4f} / "
                 f"{block['systems'][s]['mrr@10']['mean']:.4f}" if block["n_cases"] else "–"
                 for s in systems]
        rows.append([kind, str(block["n_cases"]), *cells])
    lines += _table(["kind", "cases", *systems], rows)
    lat = metrics["latency"]["seeker_turns"]
    turns = metrics["chat_turns"]
    lines += ["", "## The chat's turns", ""]
    if lat.get("n"):
        lines += [f"- wall time per seeker turn (measured by the harness): p50 "
                  f"{lat['p50_s']:.3f} s, p95 {lat['p95_s']:.3f} s, mean {lat['mean_s']:.3f} s, "
                  f"max {lat['max_s']:.3f} s over {lat['n']} turns"]
    obs = metrics["latency"]["observed_turns"]
    if obs.get("n"):
        lines += [f"- recorded recommender turns: {obs['n']}, p50 {obs['p50_s']:.3f} s"]
    lines += [f"- turn kinds: {_counts(turns['kinds'])}; read by: {_counts(turns['paths'])}",
              f"- cases with no list at all: {turns['cases_without_list']}; longest list: "
              f"{turns['max_list_length']}; turns that failed: {turns['errors']}"]
    if turns["max_list_length"] < max(p["k"]):
        lines.append(f"- **the chat's lists held at most {turns['max_list_length']} items**: "
                     f"Recall@{max(p['k'])} counts only those (over HTTP the server's chat.k "
                     "sets the size)")
    for example in turns.get("error_examples", []):
        lines.append(f"  - {example}")
    if metrics["baselines"]:
        lines += ["", "## Baselines", ""]
        if metrics.get("fallback_note"):
            lines += [f"- {metrics['fallback_note']}."]
        for name, b in metrics["baselines"].items():
            lines.append(f"- {name}: {b['fallback_cases']} cases by the popularity fallback; "
                         f"fit {b['fit_seconds']:.1f} s, scoring {b['score_seconds']:.1f} s")
    m = metrics["matching"]
    lines += ["", "## Title matching (the conversations of the split)", ""]
    for what in ("titles", "mentions"):
        c = m[what]
        lines.append(f"- {what}: {c['rate']:.1%} of {c['n']} matched (exact year "
                     f"{c['exact']}, year off by one {c['year-off-by-one']}, without a year "
                     f"{c['no-year']}, catalog id {c['id']}; ambiguous {c['ambiguous']}, "
                     f"unmatched {c['unmatched']})")
    if m["unmatched_examples"]:
        lines.append("- unmatched, e.g.: " + "; ".join(f"\"{t.strip()}\""
                                                        for t in m["unmatched_examples"][:12]))
    return "\n".join(lines) + "\n"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k or '?'} {v}" for k, v in sorted(counts.items(), key=lambda x: -x[1])
                     ) or "none"
