"""`benchmark`: strategies × seeds × cycles with the al_cycle nodes → AL curves and a summary.

Needs a prepared dataset (`kedro run --pipeline=prepare`); each seed draws its own split from it.
Interrupted runs resume from `<benchmark.output_dir>/runs/`.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import al_curve, benchmark_metrics, compare, plot_al_curve, run_benchmark, summarise


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(run_benchmark,
                 ["image_index", "oracle_annotations", "params:benchmark", "params:dataset",
                  "params:detector", "params:embedding", "params:lut", "params:agent",
                  "params:al"],
                 "benchmark_results", name="run_benchmark"),
            Node(al_curve, "benchmark_results", "benchmark_al_curve", name="al_curve"),
            Node(plot_al_curve, "benchmark_al_curve", "benchmark_al_curve_plot",
                 name="plot_al_curve"),
            Node(compare, "benchmark_al_curve", "benchmark_comparisons", name="compare"),
            Node(summarise, ["benchmark_al_curve", "benchmark_results", "benchmark_comparisons"],
                 "benchmark_summary", name="summarise"),
            Node(benchmark_metrics, "benchmark_summary", "benchmark_metrics",
                 name="benchmark_metrics"),
        ]
    )
