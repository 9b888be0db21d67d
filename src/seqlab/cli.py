"""The `seqlab` command: one subcommand per pipeline stage, plus predict.

    seqlab validate                      check params.yaml (the first DVC stage)
    seqlab fonts                         the OCR training-font manifest, data/ocr-fonts.json
    seqlab corpus                        the OCR text corpus (training and reserved prose), data/ocr-corpus/
    seqlab generate kth|binary_add|ocr   write data/<task>/
    seqlab render-reserved               the OCR test splits in the reserved font families, data/ocr-reserved/
    seqlab train kth|binary_add|ocr [--variant bilstm|crnn]
    seqlab evaluate kth|binary_add|ocr [--variant bilstm|crnn]
    seqlab evaluate ocr --gt DIR [--model MODEL] [--grid PNG] [--no-tesseract] [--drop-bad]
                                         a model and Tesseract scored on your own ground-truth lines
    seqlab export kth|binary_add|ocr [--variant bilstm|crnn]   models/<id>.onnx, checked against torch
    seqlab tesseract                     the Tesseract baseline on the OCR test splits
    seqlab rapidocr                      the RapidOCR reference (PP-OCRv6 recognizer) on the OCR test splits
    seqlab finetune ocr --gt DIR --out PATH [--from MODEL] ...   fine-tune a trained OCR model on ground truth
    seqlab predict kth|binary_add        lines on stdin -> one answer per line
    seqlab predict ocr IMAGE...          path<TAB>text per image, per text line of a page (--page, --format hocr;
                                         --engine onnxruntime: the ONNX export)
    seqlab read-pages                    read the sample pages with the default CRNN -> metrics/ocr-pages/
    seqlab bench [--quick]               speed ratios measured side by side -> metrics/bench.json

Every command runs under the project's thread policy (seqlab.core.threads, docs/threads.md), applied
before torch loads.

User errors (bad params, missing or corrupt files, unsafe checkpoints) print one line to stderr
and exit 1 without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from seqlab.core import threads
from seqlab.core.errors import SeqlabError
from seqlab.core.paths import in_workspace
from seqlab.core.registry import (
    check_variant,
    data_generator,
    entries,
    model_id,
    reader_class,
    task_class,
    task_names,
    variant_names,
)

if TYPE_CHECKING:  # a type only: core.task imports torch, which a command loads when it needs it
    from seqlab.core.task import Reference

MODEL_URI_SCHEMES = ("models:/", "runs:/")  # predict --model: an MLflow model instead of a checkpoint file


def cmd_validate(args: argparse.Namespace) -> int:
    from seqlab.core.config import load_params
    from seqlab.core.storage import write_text

    load_params(args.params)
    if args.write:
        # Constant content on purpose: downstream stages depend on this file so that DVC runs
        # validation first, yet a valid edit of one task's params changes nothing for the others.
        write_text(args.write, "params.yaml is valid\n")
    print(f"{args.params}: valid", file=sys.stderr)
    return 0


def cmd_fonts(args: argparse.Namespace) -> int:
    from seqlab.core import paths
    from seqlab.core.config import load_params
    from seqlab.tasks.ocr.config import OcrConfig
    from seqlab.tasks.ocr.synth.fonts import summary, write_manifest

    data = OcrConfig.of(load_params(args.params, args.task)).data
    manifest = write_manifest(paths.fonts_manifest(), data.charset, data.font_sources)
    print(summary(manifest), file=sys.stderr)
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    from seqlab.tasks.ocr.synth.corpus import build, corpus_dir, summary

    print(summary(build(corpus_dir())), file=sys.stderr)
    return 0


def cmd_lm(args: argparse.Namespace) -> int:
    from seqlab.core import paths
    from seqlab.core.config import load_params
    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.config import OcrConfig
    from seqlab.tasks.ocr.data import load_split
    from seqlab.tasks.ocr.recognizer.char_lm import build_language_model, lm_path
    from seqlab.tasks.ocr.synth.corpus import read_passages

    ocr = OcrConfig.of(load_params(args.params, args.task))
    order, charset = ocr.decode.lm_order, Charset.from_name(ocr.data.charset)
    labels = load_split(paths.data_dir("ocr") / "train.npz", charset).texts  # the training split only
    prose = read_passages("train")
    out = lm_path()
    lm = build_language_model([*labels, *prose], charset, order, out)
    print(f"[ocr-lm] order-{order} character model of {len(labels)} training labels and {len(prose)} prose passages: "
          f"{sum(len(t.keys) for t in lm.tables)} contexts -> {out}", file=sys.stderr)
    return 0


def cmd_render_reserved(args: argparse.Namespace) -> int:
    from seqlab.core import paths
    from seqlab.core.config import load_params
    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.config import OcrConfig
    from seqlab.tasks.ocr.data import RESERVED_DIR
    from seqlab.tasks.ocr.synth.reserved_render import generate_reserved

    params = load_params(args.params, args.task)
    ocr = OcrConfig.of(params)
    stats = generate_reserved(ocr.reserved.count, Charset.from_name(ocr.data.charset), ocr.data.height, params.seed,
                              paths.data_dir(RESERVED_DIR), ocr.reserved.workers, ocr.reserved.lines,
                              ocr.reserved.scans)
    print(f"[ocr] rendered the reserved-family test splits: {stats}", file=sys.stderr)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from seqlab.core.config import load_params

    params = load_params(args.params, args.task)
    t0 = time.perf_counter()
    stats = data_generator(args.task)(params.section(args.task).data, params.seed)
    print(f"[{args.task}] generated {stats} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from seqlab.core.config import load_params
    from seqlab.tracking.runs import check_tracking_server

    # Both checks come before importing torch (seconds): a bad edit or a down server fails at once.
    params = load_params(args.params, args.task)
    check_tracking_server()
    from seqlab.training import distributed

    variant = check_variant(args.task, args.variant)
    section = params.section(args.task).run(variant)
    if section.train.nproc > 1 and not distributed.is_rank():
        # This process becomes torchrun: it starts nproc ranks of this same command, each trains.
        distributed.launch(section.train.nproc, ["--params", str(args.params), "train", args.task,
                                                 *(["--variant", args.variant] if args.variant else [])])
        return 0
    from seqlab.tracking.runs import server_outage
    from seqlab.training.loop import train

    with distributed.reporting(), server_outage("rerun: training resumes after its last finished epoch"):
        train(task_class(args.task).for_training(section, variant), params.seed, section)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    given = [flag for flag, value in (("--model", args.model), ("--grid", args.grid), ("--no-tesseract", args.no_tesseract),
                                      ("--drop-bad", args.drop_bad), ("--greedy", args.greedy)) if value]
    if given:
        raise SeqlabError(f"{', '.join(given)}: only with --gt DIR (scoring on your own ground truth)")
    from seqlab.core.config import load_params
    from seqlab.evaluation.evaluate import evaluate, headline
    from seqlab.tracking.runs import server_outage

    variant = check_variant(args.task, args.variant)
    params = load_params(args.params, args.task)
    with server_outage("rerun"):
        metrics = evaluate(args.task, variant, params)
    print(headline(task_class(args.task), model_id(args.task, variant), metrics), file=sys.stderr)
    return 0


def cmd_evaluate_gt(args: argparse.Namespace) -> int:
    """`seqlab evaluate ocr --gt DIR`: the model and Tesseract scored on a ground-truth folder, a table on stdout."""
    import tempfile

    from seqlab.core.checkpoint import load_model
    from seqlab.tasks.ocr.documents.ground_truth import read_ground_truth
    from seqlab.tasks.ocr.recognizer.score_ground_truth import score_ground_truth, scores_table
    from seqlab.tasks.ocr.recognizer.task import OcrTask

    if args.task != "ocr":
        raise SeqlabError(f"--gt scores OCR models on transcribed lines, not {args.task}")
    with tempfile.TemporaryDirectory(prefix="seqlab-model-") as tmp:
        checkpoint, name = model_checkpoint(args.task, args.model, args.variant, Path(tmp))
        task, model, _ = load_model(checkpoint, args.task, name=name)
    assert isinstance(task, OcrTask)  # load_model checked the checkpoint's task
    if not args.greedy and Path(args.params).is_file():  # decoding as predict reads
        from seqlab.core.config import load_params

        task.use_params(load_params(args.params, args.task))

    def echo(line: str) -> None:
        print(line, file=sys.stderr)

    lines = read_ground_truth(args.gt, task.charset, drop_bad=args.drop_bad, echo=echo)
    scores = score_ground_truth(task, model, lines, name or str(checkpoint), tesseract=not args.no_tesseract,
                                grid=args.grid, echo=echo)
    print(scores_table(scores))
    return 0


def model_checkpoint(task: str, model: str | None, variant: str | None, tmp: Path) -> tuple[Path, str | None]:
    """The checkpoint `--model` names (a file, or an MLflow model URI downloaded under `tmp`), else the one the
    pipeline trained for `variant`; and the URI as the model's name (None for files)."""
    from seqlab.core import paths

    if model and model.startswith(MODEL_URI_SCHEMES):
        from seqlab.tracking.mlflow_model import download_checkpoint

        return download_checkpoint(model, tmp), model  # errors name the URI
    default = paths.in_workspace(paths.model_path(model_id(task, check_variant(task, variant))))
    return (Path(model) if model else default), None


def cmd_export(args: argparse.Namespace) -> int:
    from seqlab.core import paths
    from seqlab.export.mlflow_onnx import attach_to_run
    from seqlab.export.onnx import export_checkpoint
    from seqlab.tracking.runs import server_outage

    variant = check_variant(args.task, args.variant)
    checkpoint = paths.in_workspace(paths.model_path(model_id(args.task, variant)))
    report = export_checkpoint(checkpoint, args.task, checkpoint.with_suffix(".onnx"))
    print(f"[{model_id(args.task, variant)}] {report.summary()}", file=sys.stderr)
    with server_outage("rerun"):
        attach_to_run(args.task, checkpoint, report.path)
    return 0


def cmd_tesseract(args: argparse.Namespace) -> int:
    from seqlab.core.config import load_params
    from seqlab.tracking.runs import check_tracking_server

    params = load_params(args.params, args.task)
    check_tracking_server()
    from seqlab.tasks.ocr.config import OcrConfig
    from seqlab.tasks.ocr.recognizer.tesseract import reference, run_tesseract_stage

    tesseract = OcrConfig.of(params).tesseract
    run_tesseract_stage(tesseract.word_psm, tesseract.line_psm)
    _log_reference(reference())
    return 0


def cmd_rapidocr(args: argparse.Namespace) -> int:
    from seqlab.tracking.runs import check_tracking_server

    check_tracking_server()
    from seqlab.tasks.ocr.recognizer.rapidocr import reference, run_rapidocr_stage

    run_rapidocr_stage()
    _log_reference(reference())
    return 0


def _log_reference(baseline: Reference | None) -> None:
    """A reference engine's run, from the files its stage just wrote, beside the OCR models in MLflow."""
    from seqlab.tracking.runs import log_reference_run, server_outage

    assert baseline is not None  # the stage just wrote its files
    with server_outage("rerun"):
        log_reference_run("ocr", baseline)  # `seqlab evaluate ocr` logs it too when missing


# `seqlab finetune ocr` flag -> the ocr.finetune key it overrides
FINETUNE_FLAGS = {"gt": "gt", "test_gt": "test_gt", "val_share": "val_share", "epochs": "epochs", "minutes": "minutes",
                  "lr": "lr", "batch_size": "batch_size", "augment": "augment", "synthetic_share": "synthetic_share",
                  "extend_charset": "extend_charset", "drop_bad": "drop_bad", "seed": "seed"}


def cmd_finetune(args: argparse.Namespace) -> int:
    import tempfile

    from seqlab.core import paths
    from seqlab.core.config import load_params, parse_params
    from seqlab.tracking.runs import check_tracking_server

    params = load_params(args.params, args.task)
    overrides = {key: getattr(args, flag) for flag, key in FINETUNE_FLAGS.items() if getattr(args, flag) is not None}
    if overrides:  # validated as params.yaml is: errors name the ocr.finetune key
        raw = params.model_dump()
        raw["ocr"]["finetune"].update(overrides)
        params = parse_params(raw, args.task)
    from seqlab.tasks.ocr.config import OcrConfig

    ocr = OcrConfig.of(params)
    config = ocr.finetune
    check_tracking_server()
    from seqlab.evaluation.evaluate import log_evaluation
    from seqlab.tasks.ocr.data import split_path
    from seqlab.tasks.ocr.recognizer.finetune import Start, prepare, score, summary_line
    from seqlab.tracking.runs import server_outage
    from seqlab.training.loop import train

    def echo(line: str) -> None:
        print(f"[finetune] {line}", file=sys.stderr)

    start_name = args.start or str(paths.model_path(model_id(args.task, check_variant(args.task, None))))
    with tempfile.TemporaryDirectory(prefix="seqlab-model-") as tmp:
        if start_name.startswith(MODEL_URI_SCHEMES):
            from seqlab.tracking.mlflow_model import download_checkpoint

            start = Start.load(download_checkpoint(start_name, Path(tmp)), start_name)
        else:
            start = Start.load(Path(start_name))
    out: Path = args.out
    model = out.stem  # metrics/<stem>/, the MLflow model seqlab-<stem>
    run = prepare(config, start, model, out, paths.state_dir() / "finetune" / model, ocr.augment,
                  split_path("train"), echo)
    echo(f"from {start.name}: {run.counts}")
    reading = run.task.reading(params)  # scored, logged and registered decoding as predict reads
    run.task.use_reading(reading)  # a missing language model fails now, not after training
    with server_outage("rerun: fine-tuning resumes after its last finished epoch"):
        summary = train(run.task, config.seed, run.section, run.cpu_budget_s)
    files, metrics = score(run, summary, paths.metrics_dir(model), echo, reading)
    with server_outage("rerun"):
        log_evaluation(run.task, out, files, metrics, run.task.data_meta(None), reading)
    print(summary_line(model, metrics), file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from seqlab.bench.suite import FULL, QUICK, run_suite
    from seqlab.core import paths
    from seqlab.core.config import load_params

    params = load_params(args.params)
    run_suite(params, Path(args.params), QUICK if args.quick else FULL, args.quick, args.project or paths.repo_root(), args.out)
    return 0


def cmd_read_pages(args: argparse.Namespace) -> int:
    import json

    from seqlab.core import paths
    from seqlab.core.checkpoint import load_model
    from seqlab.core.config import load_params
    from seqlab.tasks.ocr.config import OcrConfig
    from seqlab.tasks.ocr.documents.page_eval import evaluate_pages
    from seqlab.tasks.ocr.recognizer.task import OcrTask

    params = load_params(args.params, args.task)
    samples = Path(args.samples or OcrConfig.of(params).pages.samples)
    checkpoint = Path(args.model) if args.model else paths.model_path(model_id(args.task, check_variant(args.task, None)))
    task, model, _ = load_model(checkpoint, args.task)
    if not isinstance(task, OcrTask):
        raise SeqlabError(f"{checkpoint}: not an OCR model")
    task.use_params(params)
    summary = evaluate_pages(task.recognizer(model), task.height, samples, args.out)
    shown = {k: summary[k] for k in ("pages", "cer", "cer_nocase", "lines_found", "lines_expected", "all_in_order")}
    print(f"[pages] {json.dumps(shown)}; timing {json.dumps(summary['timing'])}", file=sys.stderr)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import tempfile

    from torch import nn

    from seqlab.core.checkpoint import load_model

    with tempfile.TemporaryDirectory(prefix="seqlab-model-") as tmp:
        model: nn.Module
        checkpoint, name = model_checkpoint(args.task, args.model, None, Path(tmp))
        if args.engine == "torch" and checkpoint.suffix == ".onnx":
            raise SeqlabError(f"{checkpoint}: an ONNX export, which the default engine (torch) does not read; "
                              "pass --engine onnxruntime")
        if args.engine == "onnxruntime":
            from seqlab.export.runtime import load_for_predict

            task, model, config = load_for_predict(checkpoint, args.task, name=name)
        else:
            task, model, ckpt = load_model(checkpoint, args.task, name=name)
            config = ckpt["config"]
    task = reader_class(args.task).from_checkpoint(config)  # the task as predict reads (ocr: pages too)
    if not args.greedy and Path(args.params).is_file():  # decoding as the evaluate stage measured it
        from seqlab.core.config import load_params

        task.use_params(load_params(args.params, args.task))
    if task.predict_from_args:
        if not args.inputs:
            raise SeqlabError(f"predict {args.task} needs one or more inputs (image paths)")
        inputs = args.inputs
    else:
        if args.inputs:
            raise SeqlabError(f"predict {args.task} reads its input lines from stdin, not arguments")
        inputs = sys.stdin
    options: dict[str, object] = {}
    if args.page:
        options["page"] = True
    if args.format is not None:
        options["output_format"] = args.format
    if set(options) - task.predict_options:
        raise SeqlabError(f"predict {args.task} takes neither --page nor --format (they read OCR pages)")
    failures = task.predict(model, config["meta"], inputs, sys.stdout, sys.stderr, **options)
    return 1 if failures else 0


class GroundTruthMode(argparse.Action):
    """`evaluate --gt DIR` switches the command to cmd_evaluate_gt when parsed, so the evaluate stage (which never
    passes --gt) runs and depends on nothing of it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.func = cmd_evaluate_gt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqlab", description="Sequence-learning pipeline stages and predict.")
    parser.add_argument("--params", type=Path, default=os.environ.get("SEQLAB_PARAMS") or in_workspace(Path("params.yaml")),
                        help="params file (default: params.yaml at the root of the project the current directory is in)")
    sub = parser.add_subparsers(dest="command", required=True)
    variants = "; ".join(f"{e.name}: {', '.join(e.variants)}, default {e.default_variant}" for e in entries() if e.variants)

    p = sub.add_parser("validate", help="validate params.yaml")
    p.add_argument("--write", help="on success, write a marker file (used by the DVC stage)")
    p.set_defaults(func=cmd_validate)

    for name, func, helptext in (("generate", cmd_generate, "generate a task's data"),
                                 ("train", cmd_train, "train a task's model"),
                                 ("evaluate", cmd_evaluate, "evaluate a trained model on the test splits")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("task", choices=task_names())
        if name != "generate":
            p.add_argument("--variant", choices=variant_names(), help=f"model variant, for tasks that have them ({variants})")
        if name == "evaluate":
            p.add_argument("--gt", type=Path, metavar="DIR", action=GroundTruthMode,
                           help="ocr: score the model and Tesseract on your own ground truth instead of the test splits: a folder of line images beside NAME.gt.txt "
                           "and/or PAGE XML, or a name<TAB>text .tsv file (docs/documents.md)")
            p.add_argument("--model", help="with --gt: checkpoint file or MLflow model URI (models:/...) to score "
                           "(default: the pipeline's model of --variant, models/ocr-crnn.pt)")
            p.add_argument("--grid", type=Path, metavar="PNG", help="with --gt: write the prediction grid (errors "
                           "first) here, Tesseract's beside it as <stem>-tesseract.png")
            p.add_argument("--no-tesseract", action="store_true", help="with --gt: score the model only")
            p.add_argument("--drop-bad", action="store_true", help="with --gt: leave bad ground-truth lines out "
                           "(and say how many) instead of listing them and exiting 1")
            p.add_argument("--greedy", action="store_true", help="with --gt: greedy CTC decoding instead of "
                           "params.yaml's ocr.decode, as predict --greedy (without a params.yaml: greedy)")
        p.set_defaults(func=func)

    p = sub.add_parser("export", help="export a trained model to models/<id>.onnx, checked against torch")
    p.add_argument("task", choices=task_names())
    p.add_argument("--variant", choices=variant_names(), help=f"model variant, for tasks that have them ({variants})")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fonts", help="write the OCR training-font manifest (data/ocr-fonts.json)")
    p.set_defaults(func=cmd_fonts, task="ocr")  # an OCR stage: reads ocr's section only

    p = sub.add_parser("corpus", help="write the OCR text corpus: training and reserved prose (data/ocr-corpus/)")
    p.set_defaults(func=cmd_corpus, task="ocr")  # an OCR stage

    p = sub.add_parser("lm", help="build the OCR decoder's character language model from the training text "
                                  "(models/ocr-lm.npz)")
    p.set_defaults(func=cmd_lm, task="ocr")  # an OCR stage

    p = sub.add_parser("render-reserved", help="render the OCR test splits in the reserved font families")
    p.set_defaults(func=cmd_render_reserved, task="ocr")  # an OCR stage: reads ocr's section only

    p = sub.add_parser("tesseract", help="run the Tesseract baseline on the OCR test splits")
    p.set_defaults(func=cmd_tesseract, task="ocr")  # an OCR stage: reads ocr's section only

    p = sub.add_parser("rapidocr", help="run the RapidOCR reference (PP-OCRv6 recognizer) on the OCR test splits")
    p.set_defaults(func=cmd_rapidocr, task="ocr")  # an OCR stage: reads no params

    p = sub.add_parser("read-pages", help="read the transcribed sample pages with the default CRNN and score them "
                       "(metrics/ocr-pages/)")
    p.add_argument("--samples", help="folder of page images beside NAME.gt.txt (default: params ocr.pages.samples)")
    p.add_argument("--model", help="OCR checkpoint (default: the pipeline's CRNN, models/ocr-crnn.pt)")
    p.add_argument("--out", type=Path, default=Path("metrics/ocr-pages"), help="where eval.json, lines.csv, hocr/ go")
    p.set_defaults(func=cmd_read_pages, task="ocr")  # an OCR stage: reads ocr's section only

    p = sub.add_parser("finetune", help="fine-tune a trained OCR model on ground-truth lines (docs/finetuning.md); "
                       "the flags override params.yaml's ocr.finetune")
    p.add_argument("task", choices=("ocr",))
    p.add_argument("--gt", help="ground-truth folder to train on (ocr.finetune.gt)")
    p.add_argument("--test-gt", dest="test_gt", help="ground-truth folder to score on instead of the held-back lines")
    p.add_argument("--from", dest="start", metavar="MODEL", help="checkpoint or MLflow model URI (models:/...) to "
                   "start from (default: the pipeline's models/ocr-crnn.pt)")
    p.add_argument("--out", type=Path, required=True, help="the fine-tuned checkpoint; its file stem names "
                   "metrics/<stem>/ and the MLflow model seqlab-<stem>")
    p.add_argument("--drop-bad", dest="drop_bad", action="store_true", default=None,
                   help="leave bad ground-truth lines out (counted) instead of stopping on them")
    p.add_argument("--minutes", type=float, help="CPU-minute budget (process CPU time)")
    p.add_argument("--epochs", type=int, help="at most this many epochs")
    p.add_argument("--lr", type=float, help="learning rate (constant)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="lines per batch")
    p.add_argument("--val-share", dest="val_share", type=float, help="share of the lines held back for validation")
    p.add_argument("--synthetic-share", dest="synthetic_share", type=float,
                   help="share of each epoch's samples drawn from the synthetic training data")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="augment the training batches as ocr.augment says")
    p.add_argument("--extend-charset", dest="extend_charset", action=argparse.BooleanOptionalAction, default=None,
                   help="add output classes for characters the ground truth needs")
    p.add_argument("--seed", type=int, help="seed of the hold-out, new output rows, batches and augmentation")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("bench", help="benchmark suite: each figure a ratio measured in this run (metrics/bench.json)")
    p.add_argument("--quick", action="store_true", help="smoke test: one repeat, tiny sizes (ratios mean little)")
    p.add_argument("--out", type=Path, default=in_workspace(Path("metrics/bench.json")), help="where the report goes")
    p.add_argument("--project", type=Path, help="DVC project whose no-op repro is timed (default: this repository)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("predict", help="predict with a trained model")
    p.add_argument("task", choices=task_names())
    p.add_argument("inputs", nargs="*", help="image paths (ocr); kth and binary_add read lines from stdin")
    p.add_argument("--model", help="checkpoint file, or an MLflow model URI such as models:/seqlab-kth@champion "
                   "(default: the checkpoint the pipeline trained); with --engine onnxruntime also an .onnx file")
    p.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch",
                   help="torch (default), or onnxruntime on the model's ONNX export (models/<id>.onnx, made by "
                   "`seqlab export`; a checkpoint without one is exported on the fly)")
    p.add_argument("--greedy", action="store_true",
                   help="ocr: greedy CTC decoding instead of params.yaml's ocr.decode (the beam search and its "
                        "language model, models/ocr-lm.npz); without a params.yaml predict decodes greedily")
    p.add_argument("--page", action="store_true",
                   help="ocr: read every image as a page: find its text lines, print one output line per text line "
                   "(without it, an image where two or more whole lines are found is read as a page)")
    p.add_argument("--format", choices=("text", "hocr"),
                   help="ocr: text (default: PATH<TAB>TEXT per line) or hocr (one hOCR document with line boxes)")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        threads.apply()  # before anything imports torch: OpenMP reads its wait policy when it starts
    except SeqlabError as exc:
        print(f"seqlab: error: {exc}", file=sys.stderr)
        return 1
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "predict" and not any(e.startswith("-") for e in extra):
        args.inputs += extra  # `predict ocr --model m.pt a.png`: argparse leaves paths after an option over
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except SeqlabError as exc:
        print(f"seqlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seqlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
