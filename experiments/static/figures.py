"""``curves.png`` of ``check static``: metrics against iterations, engines beside VB, the
Wiener filter and the optimum (SPEC §4 "per-iteration curve")."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLES = {"ladder": dict(marker="s", ls="none", label="Ladder"),
          "rladder": dict(marker="o", ls="-", label="RLadder"),
          "vb": dict(marker="^", ls="--", label="VB, linear init (sweeps)"),
          "vb_prior": dict(marker="v", ls=":", label="VB, prior init (sweeps)"),
          "rladder_horizon": dict(marker=".", ls="-", lw=0.8, alpha=0.6, color="tab:orange",
                                  label="RLadder beyond its trained iterations")}
PANELS = (("mse_ratio", "excess MSE: MSE / Bayes MSE − 1", 0.0),
          ("kl", "KL(p(c|x̃) ‖ q(c|x̃)) [nats]", 0.0),
          ("error_gap", "error − Bayes error", 0.0))


def plot_curves(results: dict, path: Path) -> None:
    fig = draw_curves(results)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_curves(results: dict):
    """The figure of :func:`plot_curves` (one panel per metric that has values)."""
    panels = [p for p in PANELS if any(results.get(k, {}).get(p[0]) for k in STYLES)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (metric, title, optimum) in zip(axes[0], panels):
        for key, style in STYLES.items():
            values = _excess(results.get(key, {}).get(metric) or [], metric)
            if values:
                ax.plot(range(1, len(values) + 1), values, **style)
        if metric == "mse_ratio":  # above the VB lines it may coincide with (VB starts from it)
            ax.axhline(results["wiener"]["mse_ratio"] - 1.0, color="tab:red", ls=(0, (1, 1)), lw=1.6,
                       zorder=5, label="Wiener (best linear)")
        ax.set_xlabel("iteration")
        if _positive(results, metric):  # the optimum, 0, is off a log axis: said in the title
            ax.set_yscale("log")
            ax.set_title(f"{title}\n(0 is optimal)", fontsize=10)
        else:  # exact zeros (e.g. the Wiener filter on the linear model): linear near 0
            ax.axhline(optimum, color="k", lw=0.8, label="Bayes optimum (0)")
            ax.set_title(title, fontsize=10)
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_ylim(bottom=-2e-4)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].legend(fontsize=8)
    settings = results["settings"]
    which = settings.get("explicit_model") or Path(settings["model_file"]).name
    fig.suptitle(f"check static — explicit model {which}, preset {settings['preset']}, "
                 f"seed {settings['seed']}", fontsize=10)
    fig.tight_layout()
    return fig


def _excess(values: list, metric: str) -> list:
    """MSE ratios are shown as their excess over the optimum, ``ratio − 1``."""
    return [v - 1.0 for v in values] if metric == "mse_ratio" else list(values)


def _positive(results: dict, metric: str) -> bool:
    return all(v > 0 for k in STYLES for v in _excess(results.get(k, {}).get(metric) or [], metric))
