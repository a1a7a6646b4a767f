#!/usr/bin/python3
"""The plots of `convoy report`, drawn with matplotlib from its report.json (numbers from the runs only):

  throughput   images/s per rank count, with the ideal (linear from the smallest run)
  efficiency   speedup beside the ideal, and efficiency (%) per rank count
  breakdown    the per-step time split into forward, backward, exposed communication, data wait,
               optimizer and the rest, as stacked bars
  buckets      every gradient bucket's all-reduce bus bandwidth against the link's measured peak

  /usr/bin/python3 tools/report_plots.py REPORT.json OUT_DIR      (writes NAME.png and NAME.svg)

Needs python3-matplotlib (Debian); convoy report runs it.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PARTS = ["forward", "backward", "exposed communication", "data wait", "optimizer", "other"]


def save(fig, out, name):
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, f"{name}.{ext}"), dpi=120)
    plt.close(fig)


def label(run):
    where = f"{run['nodes']} node" + ("s" if run["nodes"] > 1 else "")
    if run.get("link_rate"):
        where += f", {run['link_rate']}"
    return f"{run['ranks']}\n({where})"


def main():
    report_path, out = sys.argv[1], sys.argv[2]
    report = json.load(open(report_path))
    runs = report["runs"]
    ranks = [r["ranks"] for r in runs]
    base = runs[0]
    title = f"{report['workload']} workload, {report['scaling']} scaling"

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ranks, [r["images_per_s"] for r in runs], "o-", label="measured")
    ax.plot(ranks, [base["images_per_s"] * r["ranks"] / base["ranks"] for r in runs], "--", color="gray",
            label="ideal (linear)")
    ax.set_xlabel("ranks")
    ax.set_ylabel("images/s (all ranks)")
    ax.set_xticks(ranks)
    ax.set_title(f"Throughput: {title}")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, out, "throughput")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    a1.plot(ranks, [r["speedup"] for r in runs], "o-", label="measured")
    a1.plot(ranks, [r["ideal_speedup"] for r in runs], "--", color="gray", label="ideal")
    a1.set_xlabel("ranks")
    a1.set_ylabel(f"speedup over {base['ranks']} rank(s)")
    a1.set_xticks(ranks)
    a1.legend()
    a1.grid(alpha=0.3)
    a2.bar([str(r) for r in ranks], [100 * r["efficiency"] for r in runs], color="tab:green")
    a2.axhline(100, ls="--", color="gray")
    a2.set_xlabel("ranks")
    a2.set_ylabel("scaling efficiency (%)")
    for i, r in enumerate(runs):
        a2.text(i, 100 * r["efficiency"], f"{100 * r['efficiency']:.0f} %", ha="center", va="bottom")
    fig.suptitle(f"Speedup and efficiency: {title}")
    save(fig, out, "efficiency")

    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0.0] * len(runs)
    labels = [label(r) for r in runs]
    for part in PARTS:
        values = [r["breakdown_ms"][part] for r in runs]
        if not any(values):
            continue
        ax.bar(labels, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("ranks")
    ax.set_ylabel("ms per step")
    ax.set_title(f"Where a step's time goes: {title}")
    ax.legend(fontsize=8)
    save(fig, out, "breakdown")

    with_buckets = [r for r in runs if r["buckets"]]
    if with_buckets:
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(with_buckets)
        for k, r in enumerate(with_buckets):
            xs = [b["index"] + k * width for b in r["buckets"]]
            ax.bar(xs, [b["busbw_GBps"] for b in r["buckets"]], width=width, label=f"{r['ranks']} ranks")
            if r.get("link_peak_busbw_GBps"):
                ax.axhline(r["link_peak_busbw_GBps"], ls="--", color=f"C{k}",
                           label=f"link peak (sustained), {r['ranks']} ranks ({r['link_peak_at']})")
        ax.set_xlabel("gradient bucket (0 = the first to start, the last layers')")
        ax.set_ylabel("bus bandwidth (GB/s)")
        ax.set_title("All-reduce per bucket against the measured link peak")
        ax.legend(fontsize=8)
        save(fig, out, "buckets")


if __name__ == "__main__":
    main()
