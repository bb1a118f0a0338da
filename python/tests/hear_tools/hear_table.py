"""heareval's test scores beside the project's own `logistic` on the same clips, as Markdown.

    python hear_table.py EMBEDDINGS_DIR OUR_RUN_DIR

EMBEDDINGS_DIR holds `<model>/slicer/<task>-v1/test.predicted-scores.json` (heareval's
predictions runner); OUR_RUN_DIR is a run of experiments/hear.yaml, whose `scores.parquet`
scores the same exported encoders on the same clips (encoder rows named after the model
folders, `-` written `_`).
"""

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq


def heareval_scores(embeddings):
    """{(model, task): {metric: value}} of every test.predicted-scores.json found."""
    found = {}
    for path in sorted(Path(embeddings).glob("*/*/*/test.predicted-scores.json")):
        model, task = path.parts[-4], path.parts[-2].removesuffix("-v1")
        test = json.loads(path.read_text())["test"]
        found[(model, task)] = {k.removeprefix("test_"): v for k, v in test.items()}
    return found


def our_scores(run_dir):
    """{(encoder, task): test accuracy} of the run's `logistic` rows."""
    rows = pq.read_table(Path(run_dir) / "scores.parquet").to_pylist()
    return {
        (r["encoder"], r["task"]): r["value"]
        for r in rows
        if r["protocol"] == "logistic" and r["metric"] == "test_accuracy"
    }


def main(embeddings, run_dir):
    hear, ours = heareval_scores(embeddings), our_scores(run_dir)
    if not hear:
        sys.exit(f"no test.predicted-scores.json under {embeddings}")
    print("| encoder | task | heareval: test score | ours, `logistic`: test accuracy | heareval − ours |")
    print("|---|---|---|---|---|")
    for (model, task), scores in sorted(hear.items()):
        if "top1_acc" in scores:
            mine = ours.get((model.replace("-", "_"), task))
            ours_cell = f"{100 * mine:.1f}" if mine is not None else "—"
            diff = f"{100 * (scores['top1_acc'] - mine):+.1f}" if mine is not None else "—"
            print(f"| {model} | {task} | top1_acc {100 * scores['top1_acc']:.1f} | {ours_cell} | {diff} |")
        else:
            onset = scores.get("event_onset_200ms_fms", float("nan"))
            error = scores.get("segment_1s_er", float("nan"))
            print(
                f"| {model} | {task} | onset F-measure (200 ms) {100 * onset:.1f}, "
                f"segment error rate (1 s) {error:.2f} | — (no event protocol) | — |"
            )
    floor = {task: v for (enc, task), v in ours.items() if enc == "bag_of_frames"}
    if floor:
        cells = ", ".join(f"{task} {100 * v:.1f}" for task, v in sorted(floor.items()))
        print(f"\nOur bag-of-frames floor, `logistic`, on the same clips: {cells}.")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
