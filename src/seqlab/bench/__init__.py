"""`seqlab bench`: each figure a ratio of two things measured side by side in one run.

One module per benchmark, each returning its section of metrics/bench.json:

    training   samples/s of the real training step vs a seed-style batch-1 loop (kth, binary_add)
    rendering  trdg rendering, 2 worker processes vs 1, and vs trdg's own command-line tool
    ocr        CRNN words/s and CER vs Tesseract on the same images and threads
    inference  the CRNN on torch eager vs onnxruntime (fp32 and dynamic int8) vs Tesseract, words/s and CER
    compute    CRNN training step GFLOP/s as a fraction of this machine's sgemm GFLOP/s
    threads    training steps idle and beside a busy process, torch's thread defaults vs the project's policy
    pipeline   no-op `dvc repro` of the project vs DVC's floor on a one-stage pipeline

`report` holds what they share (a figure's repeats, median and spread, the ratio and whether its
target is met, machine information, the printed table); `suite` runs them in that order.
"""
