"""``python -m survey create|list|close|open|export|plan|reset-rater``: manage studies from the command line.

Examples::

    python -m survey create --name set14-x4 --images ../shared/data/eval/Set14/HR \\
        --methods bicubic,edsr --reference --anchors
    python -m survey create --name set14-theirs --images ../shared/data/eval/Set14/HR \\
        --outputs theirs/Set14 --methods edsr --reference
    python -m survey create --name set14-pc --images ../shared/data/eval/Set14/HR \\
        --methods edsr,edsr_srgan --reference --protocol pc --allow-tie
    python -m survey create --name set14-crowd --images ../shared/data/eval/Set14/HR \\
        --methods bicubic,edsr --reference --anchors --crop 256x256 --completion-code C0DE42 --gold
    python -m survey plan --protocol pc --conditions 4 --images 10 --difference 0.65
    python -m survey list
    python -m survey export --study set14-x4 --out results/set14-x4
    python -m survey close --study set14-x4
    python -m survey reset-rater --study set14-crowd --rater 5f3e0c

The data directory is ``--data-dir``, else ``$SR_LAB_DATA``, else ``~/.local/share/sr-lab``; the database is
``$DATABASE_URL`` when set. Rater links start with ``--base-url``, by default the address ``python app.py`` recorded
in the data directory when it last started (``http://127.0.0.1:7860`` before it ever has). A rater link is
``<base url>/rate/<study id>``; for a crowd platform, add the rater's id there as ``?PROLIFIC_PID=...`` (Prolific),
``?workerId=...`` (MTurk) or ``?rater=...``: it is stored and exported, and it resumes the same rater in the browser
that started with it (``reset-rater`` lets it start afresh elsewhere).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sr_app.cli import add_data_dir_option, run_command
from sr_app.data_dir import DEFAULT_BASE_URL, app_url
from sr_app.methods import REGISTRY
from sr_app.weights import WEIGHTS_DIR
from survey.creation import DEFAULT_MIN_VIEW_MS, create_study
from survey.crowd import CROWD, NO_CROWD_CHECKS, CrowdChecks
from survey.db import ACR, CLOSED, FLIP, OPEN, PC, PRESENTATIONS, PROTOCOLS, Store
from survey.export import CSV_FILES, PC_CSV_FILES, REPORT_FILE, export_study
from survey.plan import (
    IMAGE_SD,
    NOISE_SD,
    RATER_SD,
    SIMULATIONS,
    TARGET_CI_WIDTH,
    TARGET_POWER,
    Assumptions,
    plan_text,
)
from survey.report import counted
from survey.stimuli import Crop
from survey.store import open_store
from survey.studies import StudySummary, list_studies, rater_path, reset_rater, set_status

BASE_URL_HELP = f"address of the app for rater links (default: the one it recorded at start, or {DEFAULT_BASE_URL})"


def rater_link(summary: StudySummary, base_url: str = DEFAULT_BASE_URL) -> str:
    """The address to send raters: the app's rater page of the study (by its opaque id)."""
    return f"{base_url.rstrip('/')}{rater_path(summary.public_id)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m survey", description="Manage blind MOS (ACR) and pair comparison (PC) studies."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create", help="create a study and precompute its stimuli")
    create.add_argument("--name", required=True, help="unique study name (private to the admin)")
    create.add_argument("--images", required=True, type=Path, help="folder of ground-truth images (at least 2)")
    create.add_argument(
        "--methods", default="", help=f"comma-separated, from {','.join(REGISTRY)}, or label=path/to/model.pth"
    )
    create.add_argument(
        "--outputs", type=Path, help="folder of precomputed outputs, <method>/<image>.png: each method a condition"
    )
    create.add_argument("--reference", action="store_true", help="add the original as a hidden reference")
    create.add_argument("--anchors", action="store_true", help="add nearest-neighbour ×4 as a low anchor")
    create.add_argument(
        "--protocol", choices=PROTOCOLS, default=ACR,
        help="acr: score one image at a time from 1 to 5 (default); pc: choose the better of two versions",
    )  # fmt: skip
    create.add_argument("--allow-tie", action="store_true", help="pc: raters may answer 'no difference'")
    create.add_argument(
        "--presentation", choices=PRESENTATIONS, default=FLIP,
        help="pc: flip both versions in place at the same position (default), or show them side by side",
    )  # fmt: skip
    create.add_argument(
        "--crop", metavar="WxH",
        help="cut every image (and the calibration and gold images) to its centre W×H pixels first, multiples of 4: "
        "e.g. 360x480 fits a phone's screen one image pixel to one screen pixel",
    )  # fmt: skip
    create.add_argument(
        "--completion-code", metavar="CODE", help="shown to raters who finish, for a crowd platform (Prolific, MTurk)"
    )
    create.add_argument(
        "--gold", action="store_true",
        help="acr: add gold items (P.808): the nearest-neighbour ×4 (to score 1–2) and the original (4–5) of an image "
        "outside the study; raters who score one outside its range are flagged",
    )  # fmt: skip
    create.add_argument("--gold-image", type=Path, help="the gold items' image (default: a coffee cup)")
    create.add_argument(
        "--crowd", action="store_true",
        help=f"the crowd checks of ITU-T P.808: {CROWD.traps} trapping items, a training round of "
        f"{CROWD.training_items} (again after {CROWD.training_pause_s // 60} min away), the window qualification, the "
        "completion code only for raters who pass, gold items (acr) and at least the default minimum viewing time; "
        "the flags below change each part",
    )  # fmt: skip
    create.add_argument(
        "--traps", type=int, metavar="N", help="trapping items per rater: a photo that says which score to give "
        "(acr), or a pair with a broken version (pc)",
    )  # fmt: skip
    create.add_argument("--training", type=int, metavar="N", help="training photos (acr) or pairs (pc) first")
    create.add_argument(
        "--training-pause-min", type=int, metavar="MIN", help="training again after a pause of more than MIN minutes"
    )
    create.add_argument("--training-image", type=Path, help="the training photo (default: an astronaut)")
    create.add_argument(
        "--qualification", action="store_true",
        help="a rater starts only if their window shows the largest photo at 1:1 in device pixels",
    )  # fmt: skip
    create.add_argument(
        "--withhold-code", action="store_true",
        help="the completion code only for raters who pass trap, gold, too-fast and straight-lining checks",
    )  # fmt: skip
    create.add_argument(
        "--max-raters", type=int, metavar="N", help="at most N raters may start; later ones are told it is full"
    )
    create.add_argument(
        "--min-view-ms", type=int, default=DEFAULT_MIN_VIEW_MS, metavar="MS",
        help=f"refuse answers sooner than MS milliseconds after the photo was sent (default {DEFAULT_MIN_VIEW_MS})",
    )  # fmt: skip
    create.add_argument("--instructions", help="text shown to raters (default: one for the protocol)")
    create.add_argument("--calibration", type=Path, help="calibration image, not one of the study's (default: a cat)")
    create.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="folder of the weights files")
    create.add_argument("--device", help="where networks run: cuda, mps or cpu (default: the best available)")
    create.add_argument("--base-url", help=BASE_URL_HELP)

    listing = commands.add_parser("list", help="list studies with their status, counts and rater links")
    listing.add_argument("--base-url", help=BASE_URL_HELP)

    statuses = [
        commands.add_parser(name, help=text)
        for name, text in (("close", "stop accepting ratings"), ("open", "accept ratings again"))
    ]
    for status in statuses:
        status.add_argument("--study", required=True, help="study name")

    reset = commands.add_parser(
        "reset-rater", help="delete the unfinished session of a crowd rater id, so that it can start afresh elsewhere"
    )
    reset.add_argument("--study", required=True, help="study name")
    reset.add_argument("--rater", required=True, help="the rater's id on the crowd platform (raters.csv external_id)")

    export = commands.add_parser(
        "export", help=f"write {', '.join(CSV_FILES)} (pc: {', '.join(PC_CSV_FILES)}) and {REPORT_FILE}"
    )
    export.add_argument("--study", required=True, help="study name")
    export.add_argument("--out", required=True, type=Path, help="output folder")
    export.add_argument(
        "--all-raters", action="store_true",
        help="analyse every rater's answers (default: the accepted raters', with everyone's figures beside)",
    )  # fmt: skip

    planning = commands.add_parser(
        "plan", help="simulate a design: the raters needed for a target power and a target interval width"
    )
    planning.add_argument("--protocol", choices=PROTOCOLS, default=ACR, help="acr (default) or pc")
    planning.add_argument("--conditions", required=True, help="how many conditions, or their names comma-separated")
    planning.add_argument("--images", required=True, type=int, help="the number of images")
    planning.add_argument(
        "--difference", required=True, type=float,
        help="expected difference between neighbouring conditions: in MOS points (acr), or the probability that "
        "the better one is preferred (pc, between 0.5 and 1; Bradley-Terry d = logit(p))",
    )  # fmt: skip
    for flag, default, text in (
        ("--ci-width", TARGET_CI_WIDTH, "target width of the 95 %% intervals: MOS points (acr) or log strength (pc)"),
        ("--power", TARGET_POWER, "target power of the Holm-adjusted tests"),
        ("--rater-sd", RATER_SD, "SD of the raters' leniency (acr, MOS points) or taste per condition (pc, strength)"),
        ("--image-sd", IMAGE_SD, "SD of the images' difficulty (acr) or of each condition's strength per image (pc)"),
        ("--noise-sd", NOISE_SD, "acr: SD of a single score's scatter"),
    ):
        planning.add_argument(flag, type=float, default=default, help=f"{text} (default {default})")
    planning.add_argument(
        "--simulations", type=int,
        help=f"simulated studies per number of raters (default {SIMULATIONS[ACR]} acr, {SIMULATIONS[PC]} pc)",
    )  # fmt: skip
    planning.add_argument("--seed", type=int, default=0, help="random seed of the simulations (default 0)")
    data_commands = [create, listing, *statuses, reset, export]  # plan reads and writes no data
    add_data_dir_option(parser, data_commands, help="folder of the database and stimuli (default $SR_LAB_DATA)")
    return parser


def describe(summary: StudySummary, base_url: str) -> str:
    kind, answer = ("pair comparison", "choice") if summary.protocol == PC else ("ACR", "rating")
    notes = ["gold items"] if summary.gold else []
    crowd = summary.crowd
    if crowd.traps:
        notes.append(f"{counted(crowd.traps, 'trapping item')}")
    if crowd.training_items:
        again = f", again after {crowd.training_pause_s // 60} min away" if crowd.training_pause_s else ""
        notes.append(f"training {crowd.training_items}{again}")
    notes += ["window check"] * crowd.qualification + ["code only for raters who pass"] * crowd.withhold_code
    if summary.completion_code:
        notes.append(f"completion code {summary.completion_code}")
    limits = [f"at most {counted(summary.max_raters, 'rater')}"] if summary.max_raters is not None else []
    if summary.min_view_ms:
        limits.append(f"answers after {summary.min_view_ms} ms")
    return (
        f"{summary.name} [{summary.status}] {kind}, created {summary.created_at:%Y-%m-%d %H:%M} UTC: "
        f"{counted(summary.images, 'image')} × {counted(len(summary.conditions), 'condition')} "
        f"({', '.join(summary.conditions)}{''.join(f'; {note}' for note in notes)}); "
        f"{counted(summary.raters, 'rater')} ({summary.finished_raters} finished), {counted(summary.ratings, answer)}"
        f"{''.join(f'; {limit}' for limit in limits)}\n"
        f"  rater link: {rater_link(summary, base_url)}"
    )


def crowd_checks(args: argparse.Namespace) -> CrowdChecks:
    """The crowd checks ``create``'s flags ask for: those of :data:`~survey.crowd.CROWD` with ``--crowd``, none
    without, each changed by its own flag."""
    preset = CROWD if args.crowd else NO_CROWD_CHECKS
    return CrowdChecks(
        traps=preset.traps if args.traps is None else args.traps,
        training_items=preset.training_items if args.training is None else args.training,
        training_pause_s=preset.training_pause_s if args.training_pause_min is None else args.training_pause_min * 60,
        qualification=preset.qualification or args.qualification,
        withhold_code=preset.withhold_code or args.withhold_code,
    )


def run(args: argparse.Namespace, store: Store) -> None:
    base_url = getattr(args, "base_url", None) or app_url(store.data_dir)
    if args.command == "create":
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        summary = create_study(
            store, args.name, args.images, methods, outputs=args.outputs, reference=args.reference,
            anchors=args.anchors, instructions=args.instructions, weights_dir=args.weights_dir, device=args.device,
            calibration=args.calibration, protocol=args.protocol, allow_tie=args.allow_tie,
            presentation=args.presentation, crop=Crop.parse(args.crop) if args.crop else None,
            completion_code=args.completion_code,
            gold=args.gold or args.gold_image is not None or (args.crowd and args.protocol == ACR),
            gold_image=args.gold_image, max_raters=args.max_raters,
            min_view_ms=max(args.min_view_ms, DEFAULT_MIN_VIEW_MS) if args.crowd else args.min_view_ms,
            crowd=crowd_checks(args), training_image=args.training_image,
        )  # fmt: skip
        print(describe(summary, base_url))
    elif args.command == "list":
        studies = list_studies(store)
        print("\n".join(describe(s, base_url) for s in studies) or f"No studies yet in {store.data_dir}.")
    elif args.command in ("close", "open"):
        set_status(store, args.study, CLOSED if args.command == "close" else OPEN)
        print(f"{args.study} is now {args.command}{'d' if args.command == 'close' else ''}.")
    elif args.command == "reset-rater":
        answers = reset_rater(store, args.study, args.rater)
        print(f"Rater {args.rater} of {args.study} reset: their unfinished session and {counted(answers, 'answer')} "
              "deleted; the id can start afresh.")  # fmt: skip
    elif args.command == "export":
        for path in export_study(store, args.study, args.out, exclude_flagged=not args.all_raters):
            print(path)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "plan":  # a simulation: it reads and writes no data
        assumptions = Assumptions(args.rater_sd, args.image_sd, args.noise_sd)
        print(
            plan_text(
                args.protocol, args.conditions, args.images, args.difference, assumptions, args.power,
                args.ci_width, args.simulations, args.seed,
            )
        )  # fmt: skip
    else:
        run(args, open_store(args.data_dir))


if __name__ == "__main__":
    run_command(main)
