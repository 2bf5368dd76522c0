"""The demo's scaling timeline as a PNG: per workload, the value the HPA read against its target,
and the replicas it chose (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

from adapter.demo_hpa import HpaState


def write_plot(states: list[HpaState], path: Path) -> Path:
    import matplotlib  # noqa: PLC0415 - only the demo needs it, and only at the end

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(len(states), 1, figsize=(10, 2.6 * len(states)), sharex=True, squeeze=False)
    for ax, st in zip(axes[:, 0], states, strict=True):
        w = st.workload
        ts = [p.t for p in st.history]
        ax.plot(ts, [float("nan") if p.value is None else p.value for p in st.history], color="tab:blue",
                marker=".", label=f"{w.metric} (read by the HPA)")
        ax.axhline(w.target, color="tab:blue", linestyle="--", linewidth=1, label=f"target {w.target:g}")
        ax.set_ylabel(w.metric, fontsize=7)
        ax.set_title(f"{w.title}  -  {w.metric_type} {w.metric}, {w.target_field} {w.target:g}", fontsize=9)
        twin = ax.twinx()
        twin.step(ts, [p.replicas for p in st.history], where="post", color="tab:orange", label="replicas")
        twin.set_ylim(0, w.max_replicas + 1)
        twin.set_ylabel("replicas", fontsize=7)
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the first samples")
    fig.tight_layout()
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
