"""Offline evaluation: configs, protocols, metrics, bootstrap CIs, the harness and reports.

- :mod:`tastelens.eval.config` — the run config (TOML under ``eval/configs/``).
- :mod:`tastelens.eval.protocols` — split, case selection, masking, candidate sampling.
- :mod:`tastelens.eval.metrics` — NDCG/Recall/HR@K, MRR, coverage, ILD, novelty (+ ties).
- :mod:`tastelens.eval.bootstrap` — paired bootstrap CIs over users.
- :mod:`tastelens.eval.harness` — ``run_eval(config, settings)``: fit, score, write.
- :mod:`tastelens.eval.aggregate` / :mod:`tastelens.eval.report` — metrics.json, report.md,
  the plot and the terminal table.
- :mod:`tastelens.eval.baselines` — the evaluated systems and their registry.

Nothing is imported here, so ``import tastelens.eval.baselines`` stays light.
"""
