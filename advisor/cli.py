"""The `finetune-advisor` command line. Each command imports only what it needs.

Exit codes: 0 success; 1 the run failed; 2 bad input (a message naming the file, line or key).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from knowledge.errors import InputError

__all__ = ["main", "build_parser"]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- commands

def cmd_recommend(args: argparse.Namespace) -> int:
    from advisor.answers import load_answers
    from advisor.recommend import gather_inputs, recommend

    answers = load_answers(args.answers)
    result = recommend(gather_inputs(answers, allow_network=not args.offline))
    if args.json:
        _print_json(result.to_json())
    else:
        from advisor.render import print_recommendation

        print_recommendation(result)
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from advisor.estimate import EstimateConfig, estimate_memory, estimate_time
    from advisor.model_profile import profile_model

    if args.params_b is not None and not (math.isfinite(args.params_b) and 0.001 <= args.params_b <= 2000):
        raise InputError(f"must be a size in billions from 0.001 to 2000, got {args.params_b}", key="--params-b",
                         hint="for example --params-b 7 for a 7B model")
    if args.processes % args.nodes:
        raise InputError(f"{args.processes} processes cannot be spread evenly over {args.nodes} machines",
                         key="--processes", hint="give the processes over all machines: a multiple of --nodes")
    try:
        model = profile_model(args.model, args.params_b, allow_network=not args.offline)
    except InputError as exc:
        raise InputError(exc.message, file=exc.file, key="--model",
                         hint="give a model folder, or the size with --params-b") from None
    device, gpu_name = args.device, args.gpu
    cpu: dict[str, Any] = {}
    if device is None or (device == "cuda" and gpu_name is None) or device == "cpu":
        from advisor.hardware import detect_hardware

        hw = detect_hardware()
        device = device or hw.device
        gpu_name = gpu_name or (hw.gpus[0].name if hw.gpus else None)
        cpu = {"cpu_cores": hw.cpu_cores, "cpu_vector": hw.cpu_vector, "cpu_ghz": hw.cpu_ghz}
    cfg = EstimateConfig(
        method=args.method, batch_size=args.batch_size, seq_len=args.seq_len,
        gradient_checkpointing=args.gradient_checkpointing, bits=args.bits, optimizer=args.optimizer,
        lora_rank=args.lora_rank, lora_targets=args.lora_targets, num_virtual_tokens=args.num_virtual_tokens,
        device=device, processes=args.processes, machines=args.nodes,
        strategy=(args.distributed or "ddp") if args.processes > 1 else None)
    memory = estimate_memory(model, cfg)
    per_example = args.tokens_per_example or args.seq_len
    time = estimate_time(model, cfg, tokens=args.examples * args.epochs * per_example, device_name=gpu_name, **cpu)
    result = {**memory.to_dict(), "time": time.to_dict(), "model": model.to_dict(),
              "config": {k: v for k, v in vars(cfg).items()}}
    if args.json:
        _print_json(result)
    else:
        from advisor.render import print_estimate

        print_estimate(result)
    return 0


def cmd_hardware(args: argparse.Namespace) -> int:
    from advisor.hardware import detect_hardware

    hw = detect_hardware()
    if args.json:
        _print_json(hw.to_dict())
    else:
        from advisor.render import print_hardware

        print_hardware(hw)
    return 0


def cmd_inspect_data(args: argparse.Namespace) -> int:
    from advisor.data_probe import find_overlap, probe_file

    profiles = [probe_file(f, layout=args.format, tokenizer=args.tokenizer) for f in args.files]
    overlaps = [p for i, a in enumerate(profiles) for b in profiles[i + 1:] for p in find_overlap(a, b)]
    if args.json:
        _print_json({"files": [p.to_dict() for p in profiles], "overlap": [o.to_dict() for o in overlaps]})
    else:
        from advisor.render import print_data_profiles

        print_data_profiles(profiles, overlaps)
    has_errors = overlaps or any(p.errors or p.examples == 0 for p in profiles)
    return 2 if has_errors else 0


def _follow(run_path: str, proc: Any = None, *, stop_on_interrupt: bool) -> int:
    from advisor.progress import EventPrinter
    from runner.launch import follow_with_stop

    printer = EventPrinter()

    def say(message: str) -> None:
        printer.close()
        sys.stderr.write(message + "\n")

    return follow_with_stop(run_path, printer, proc=proc, say=say, stop_on_interrupt=stop_on_interrupt)


def cmd_train(args: argparse.Namespace) -> int:
    from advisor.runs import resume_run, start_run

    if args.resume:
        started = resume_run(args.resume)
    else:
        if not args.answers:
            raise InputError("give --answers A.yaml, or --resume RUN_DIR")
        from advisor.answers import load_answers

        started = start_run(load_answers(args.answers), args.runs_dir, allow_network=not args.offline, say=print)
    for line in started.lines:
        print(line)
    if args.detach:
        print(f"training in the background; follow it with: finetune-advisor attach {started.run.path}")
        return 0
    return _follow(str(started.run.path), started.proc, stop_on_interrupt=True)


def cmd_attach(args: argparse.Namespace) -> int:
    from runner.rundir import open_run_dir

    run = open_run_dir(args.run_dir)
    if not args.plain and sys.stdin.isatty() and sys.stdout.isatty():
        return run_app(None, run_dir=str(run.path))
    return _follow(str(run.path), stop_on_interrupt=False)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from runner.evaluate import evaluate_run
    from runner.report import summary_lines
    from runner.rundir import RunDir

    out = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the JSON
    report = evaluate_run(args.run_dir, progress=lambda message: print(message, file=out, flush=True))
    if args.json:
        data = report.to_json()
        _print_json({k: data[k] for k in ("verdict", "primary_metric", "direction", "metrics", "scorecard")})
    else:
        for line in summary_lines(report, RunDir(args.run_dir))[:2]:
            print(line)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from runner.compare import compare_runs

    out = sys.stderr if args.json else sys.stdout
    result = compare_runs(args.run_dirs, progress=lambda message: print(message, file=out, flush=True))
    if args.json:
        _print_json(result)
    else:
        from advisor.render import print_comparison

        print_comparison(result)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from advisor.model_choice import STAND_IN_MODEL, suggest_models

    answers = None
    if args.answers:
        from advisor.answers import load_answers

        answers = load_answers(args.answers, default_model=STAND_IN_MODEL)  # each candidate replaces the model
    fitting, left_out = suggest_models(answers, commercial=True if args.commercial else None, limit=args.limit)
    if args.json:
        _print_json({"models": [s.to_json() for s in fitting], "left_out_by_licence": left_out})
        return 0
    if not fitting:
        print("no model in the catalog fits here with its recommended method; see finetune-advisor recommend")
    for s in fitting:
        m = s.model
        print(f"{m.id} ({m.params_b:g}B, {m.context_length:,} tokens of context"
              f"{'' if m.chat_template else ', no chat template'}): {m.good_at}")
        print(f"  fits: {s.why}")
        print(f"  licence: {m.licence.line()} ({m.source})")
    if left_out:
        print("left out:")
        for line in left_out:
            print(f"  {line}")
    return 0


def _progress(as_json: bool) -> tuple[Any, Callable[[str], None]]:
    """The training events' printer and the line printer beside it (on stderr when stdout carries JSON)."""
    from advisor.progress import EventPrinter

    out = sys.stderr if as_json else sys.stdout
    printer = EventPrinter(plain=True if as_json else None, stderr=as_json)

    def say(message: str) -> None:
        printer.close()
        out.write(message + "\n")
        out.flush()

    return printer, say


def cmd_pilot(args: argparse.Namespace) -> int:
    from advisor.answers import load_answers
    from advisor.pilot import decision_headline, pilot_rows, plan_pilot, run_pilot
    from advisor.pipeline import apply_settings

    answers = apply_settings(load_answers(args.answers), None, args.set or [])
    printer, say = _progress(args.json)
    plan = plan_pilot(answers, alternatives=args.alternatives, steps=args.steps, examples=args.examples,
                      sweep=args.sweep, methods=args.methods.split(",") if args.methods is not None else None,
                      allow_network=not args.offline)
    if args.dry_run:
        for line in plan.lines():
            say(line)
        return 0
    result = run_pilot(plan, args.runs_dir, allow_network=not args.offline, say=say, on_event=printer)
    printer.close()
    if args.json:
        _print_json(result)
        return 0
    print(f"\n{decision_headline(result)}: {result['decision']['why']}.")
    for row in pilot_rows(result):
        print("  " + "  ".join(row))
    print(f"pilot: {result['pilot']}/pilot.md\ntrain it in full: {result['next']}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from advisor.answers import load_answers
    from advisor.pipeline import apply_settings, replay, summary

    answers = apply_settings(load_answers(args.answers), args.method, args.set or [])
    printer, say = _progress(args.json)
    result = replay(answers, runs_dir=args.runs_dir, dry_run=args.dry_run, resume=args.resume,
                    allow_network=not args.offline, say=say, on_event=printer)
    printer.close()
    if args.dry_run:
        plan = result.plan.to_json()
        if args.json:
            _print_json({"recommendation": result.recommendation.to_json(), "plan": plan})
        else:
            from advisor.render import print_recommendation

            print_recommendation(result.recommendation)
            print("\nplan (dry run: nothing was trained):")
            print(json.dumps({k: plan[k] for k in ("method", "hyperparameters", "training")}, indent=2))
        return 0
    if args.json:
        _print_json(summary(result))
    elif result.report is not None and result.run is not None:
        from runner.report import summary_lines
        from runner.rundir import RunDir

        for line in summary_lines(result.report, RunDir(result.run)):
            print(line)
    return result.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from advisor.pipeline import demo, demo_compare
    from advisor.progress import EventPrinter

    printer = EventPrinter()

    def say(message: str) -> None:
        printer.close()
        print(message, flush=True)

    if args.compare:
        result = demo_compare(folder=args.dir, runs_dir=args.runs_dir, say=say, on_event=printer)
        printer.close()
        from advisor.render import print_comparison

        print_comparison(result)
        return 0
    rows = demo(folder=args.dir, runs_dir=args.runs_dir, say=say, on_event=printer)
    printer.close()
    from advisor.render import print_demo_summary

    print_demo_summary(rows)
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


def cmd_export(args: argparse.Namespace) -> int:
    from runner.export import export_merged

    if not args.merged:
        raise InputError("say what to export: --merged (a merged 16-bit model)")
    path = export_merged(args.run_dir)
    print(f"merged model: {path}")
    return 0


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-advisor",
        description="Recommends how to fine-tune a language model for your goal, data and hardware, "
                    "with memory and time estimates.")
    parser.add_argument("--answers", metavar="A.yaml", help="open the app pre-filled from an answers file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("recommend", help="recommend a method and settings for an answers file")
    p.add_argument("--answers", required=True, metavar="A.yaml", help="the answers file (see examples/)")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.add_argument("--offline", action="store_true", help="never contact the model hub")
    p.set_defaults(func=cmd_recommend)

    from knowledge import DISTRIBUTED_STRATEGIES, OPTIMIZERS, RUNNABLE_METHODS

    p = sub.add_parser("estimate", help="memory and time estimate for one configuration")
    p.add_argument("--model", required=True, metavar="PATH_OR_ID", help="a model folder or hub id")
    p.add_argument("--method", required=True, choices=RUNNABLE_METHODS)
    p.add_argument("--batch-size", type=_within("batch_size"), default=1, metavar="N")
    p.add_argument("--seq-len", type=_within("max_length"), default=1024, metavar="N")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--bits", type=int, choices=(4, 8, 16, 32), help="base weight storage (default: 4 for qlora, "
                   "16 on a GPU, 32 on the CPU)")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adamw")
    p.add_argument("--lora-rank", type=_within("lora_rank"), default=16, metavar="R")
    p.add_argument("--lora-targets", default="all-linear", metavar="q_proj,v_proj|all-linear")
    p.add_argument("--num-virtual-tokens", type=_within("num_virtual_tokens"), default=20, metavar="N")
    p.add_argument("--device", choices=("cuda", "mps", "cpu"), help="default: detected")
    p.add_argument("--gpu", metavar="NAME", help="GPU name for the time estimate (default: detected)")
    p.add_argument("--processes", type=_within(high=256 * 1024), default=1, metavar="N",
                   help="training processes in all (GPUs over all machines); memory is per process")
    p.add_argument("--nodes", type=_within(high=1024), default=1, metavar="N",
                   help="machines the processes are spread over")
    p.add_argument("--distributed", choices=DISTRIBUTED_STRATEGIES, help="with --processes > 1 (default: ddp)")
    p.add_argument("--params-b", type=float, metavar="B", help="size in billions, when the config cannot be read")
    p.add_argument("--examples", type=_within(high=10 ** 9), default=1000, metavar="N", help="for the time estimate")
    p.add_argument("--epochs", type=_within("epochs"), default=3, metavar="N", help="for the time estimate")
    p.add_argument("--tokens-per-example", type=_within("max_length", low=1), metavar="N",
                   help="default: the sequence length")
    p.add_argument("--json", action="store_true")
    p.add_argument("--offline", action="store_true", help="never contact the model hub")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("replay", help="the whole pipeline from an answers file: recommend, train, evaluate, report")
    p.add_argument("answers", metavar="A.yaml")
    p.add_argument("--dry-run", action="store_true", help="stop after the recommendation and the plan")
    p.add_argument("--json", action="store_true", help="print the report summary as JSON (progress goes to stderr)")
    p.add_argument("--method", choices=RUNNABLE_METHODS, help="use this method instead of the recommended one")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override an answer, e.g. --set overrides.epochs=5 --set priority=speed (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted replay")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="where runs go (default ./runs)")
    p.add_argument("--offline", action="store_true", help="never contact the model hub")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("models", help="base models that fit this hardware for your goal, largest first, each with its "
                                      "licence")
    p.add_argument("--answers", metavar="A.yaml", help="your goal, data, hardware and use (default: knowledge, "
                   "1000 examples, the detected hardware)")
    p.add_argument("--commercial", action="store_true", help="only models whose licence allows commercial use")
    p.add_argument("--limit", type=_within(high=50), default=5, metavar="N", help="how many to show (default 5)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("pilot", help="does the advice hold on your data? the recommended method and its strongest "
                                     "alternatives (or a setting's values) trained briefly and compared")
    p.add_argument("answers", metavar="A.yaml")
    p.add_argument("--alternatives", type=_within(high=8), metavar="N", help="alternatives beside the recommended "
                   "method (default 2, those that fit)")
    p.add_argument("--methods", metavar="M1,M2,...", help="compare these methods instead of the recommended one "
                   "and its alternatives (each must fit here), for example lora,dora,qlora,p_tuning_v2")
    p.add_argument("--steps", type=_within(high=100_000), metavar="N", help="training steps each (default: the "
                   "recommended run's, at most 30)")
    p.add_argument("--examples", type=_within(high=10 ** 7), metavar="N",
                   help="training examples each trains on (default: all, at most 400)")
    p.add_argument("--sweep", metavar="KEY[=V1,V2,V3]", help="compare values of learning_rate or lora_rank for the "
                   "recommended method instead of methods (default values: around the recommended one)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an answer (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="show the candidates and the budget; train nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON (progress goes to stderr)")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="where the pilot's folder goes (default ./runs)")
    p.add_argument("--offline", action="store_true", help="never contact the model hub")
    p.set_defaults(func=cmd_pilot)

    p = sub.add_parser("demo", help="the offline demo: the built-in SmolLM2-135M-Instruct trained and evaluated on "
                                    "the CPU for each goal")
    p.add_argument("--compare", action="store_true", help="the knowledge demo with three methods, compared")
    p.add_argument("--dir", metavar="DIR", help="where the demo's data and answers files go (default: the cache)")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="where runs go (default ./runs)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train in a process of its own, and follow it")
    p.add_argument("--answers", metavar="A.yaml", help="the answers file")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped, killed or crashed run")
    p.add_argument("--detach", action="store_true", help="return at once; follow later with attach")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="where runs go (default ./runs)")
    p.add_argument("--offline", action="store_true", help="never contact the model hub")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("attach", help="follow a running or finished run (the app's training screen in a terminal)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--plain", action="store_true", help="plain progress lines instead of the app")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("evaluate", help="evaluate a finished run against its base model; writes the report")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print the verdict, metrics and scorecard as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="compare runs that share a test split, with Holm-corrected tests")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="write a merged 16-bit model for LoRA-family runs")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--merged", action="store_true", help="merge the adapter into the 16-bit base model")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("hardware", help="what was detected: GPUs, RAM, CPU, disk")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("inspect-data", help="profile dataset files: layout, counts, lengths, problems by line")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("alpaca", "sharegpt", "messages", "text"), help="default: detected")
    p.add_argument("--tokenizer", metavar="PATH", help="a model folder or tokenizer.json, to count tokens")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect_data)
    return parser


def _within(key: str | None = None, *, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A whole-number argument within the bounds the answers file allows for `key` (or the ones given)."""
    from advisor.answers import OVERRIDE_KEYS

    bounds: tuple[int, int] = OVERRIDE_KEYS[key][1] if key else (1, high or 1)
    lo, hi = low if low is not None else bounds[0], high if high is not None else bounds[1]

    def parse(text: str) -> int:
        value = _positive(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo:,} to {hi:,}, got {value:,}")
        return value

    return parse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_app(answers_path: str | None, run_dir: str | None = None, runs_dir: str = "runs") -> int:
    """Open the Textual app (pre-filled from an answers file, or on a run's training screen)."""
    from advisor.tui import create_app

    answers = None
    if answers_path:
        from advisor.answers import load_answers

        answers = load_answers(answers_path)
    app = create_app(answers, run_dir=run_dir, runs_dir=runs_dir)
    app.run()
    if app.active_run:
        from runner.rundir import RunDir

        if RunDir(app.active_run).worker_alive():
            print(f"training continues in the background; come back with: finetune-advisor attach {app.active_run}")
        else:
            print(f"run directory: {app.active_run}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from knowledge import KnowledgeError

    if args.command is None:
        import os

        web = bool(os.environ.get("TEXTUAL_DRIVER"))  # `textual serve` draws the app in a browser
        if not web and not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()  # no terminal to draw the app on (a pipe, CI): say what there is
            return 0
        args.func = lambda a: run_app(a.answers)
        args.command = "app"
    try:
        code: int = args.func(args)
        return code
    except InputError as exc:
        sys.stderr.write(f"finetune-advisor {args.command}: error: {exc}\n")
        return 2
    except KnowledgeError as exc:
        sys.stderr.write(f"finetune-advisor: a knowledge file is malformed: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # a reader that stopped early (| head): not an error; nothing left to flush at exit
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
