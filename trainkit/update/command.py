"""`trainkit update ARCH_DIR [KEY=VALUE ...]`: bring the installed template's changes into an
architecture, keeping your edits.

Bakes the template that made ARCH_DIR (named by its .trainkit-answers.json, or for an
architecture of trainkit 0.1.0, recognised by its docker/run_control.py) with its answers and
the installed template with the same answers, in temp dirs, and merges the difference into
your files: files you never edited take the new version, files you and the template both
changed are merged line by line (conflicts are left as <<<<<<< ======= >>>>>>> markers and
listed), files the template dropped are removed unless you edited them, new ones are added.
Nothing outside ARCH_DIR is written; on any error ARCH_DIR is left as it was.

KEY=VALUE changes an answer (author_name=...). For an architecture without a record they say
how it was made; provider, category and architecture come from its path, the others are read
from its files where they can be (the plan shows where each came from).

Exit status: 0 done (or up to date), 1 done with conflicts left to resolve (with --check:
an update is available), 2 bad arguments, 3 cannot update (nothing changed).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from trainkit.errors import TrainkitError, UsageError
from trainkit.new import parse_extra_context
from trainkit.update import record, versions
from trainkit.update.apply import apply
from trainkit.update.plan import ATTENTION, Plan, make_plan

CONFLICTS_EXIT = 1
UPDATE_AVAILABLE_EXIT = 1
CANNOT_UPDATE_EXIT = 3
SUMMARY_VERBS = {
    "update": "updated",
    "merge": "merged",
    "add": "added",
    "remove": "removed",
    "keep": "kept (edited, dropped by the template)",
    "skip": "left deleted",
    "conflict": "with conflicts",
}


class CannotUpdate(TrainkitError):
    exit_code = CANNOT_UPDATE_EXIT


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "update",
        help="move an architecture to the installed template, keeping your edits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("arch_dir", type=Path, metavar="ARCH_DIR")
    parser.add_argument("answers", nargs="*", metavar="KEY=VALUE", help="answers to change or give")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when an update is available, 0 when up to date (for CI); changes nothing",
    )
    parser.add_argument(
        "--from",
        dest="from_version",
        metavar="VERSION",
        help="the trainkit release that made ARCH_DIR (when it has no record and is not "
        "recognised)",
    )
    parser.add_argument(
        "--base-template",
        type=Path,
        metavar="DIR",
        help="the cookiecutter template that made ARCH_DIR (e.g. trainkit/template/ of a "
        "checkout of that trainkit); its hooks run, as with `cookiecutter DIR`",
    )
    parser.set_defaults(func=run)


def _answer_lines(plan: Plan) -> list[str]:
    """Without a record: every answer the base was baked with and where it came from. With
    one: only the answers that differ from it."""
    if plan.has_record:
        keys = [k for k in sorted(plan.answers) if plan.answer_sources.get(k) != record.RECORD_NAME]
        shown = {k: plan.answers[k] for k in keys if k in plan.answer_sources}
        title = "answers changed:"
    else:
        shown = dict(sorted(plan.base_answers.items()))
        title = f"no {record.RECORD_NAME}; made with these answers (KEY=VALUE to correct):"
    if not shown:
        return []
    width = max(len(f"{k}={v}") for k, v in shown.items())
    return [title] + [
        f"  {f'{k}={v}':<{width}}  {plan.answer_sources.get(k, 'template default')}"
        for k, v in shown.items()
    ]


def describe(plan: Plan, dry_run: bool) -> list[str]:
    lines = [f"{plan.arch_dir}: template {plan.base} -> {plan.theirs}"]
    lines += _answer_lines(plan)
    lines += [f"note: {note}" for note in plan.notes]
    width = max((len(c.path) for c in plan.changes), default=0)
    for change in plan.changes:
        action = change.action.upper() if change.action in ATTENTION else change.action
        lines.append(f"  {action:<9} {change.path:<{width}}  {change.reason}")
    if plan.record_changed:
        lines.append(f"  {'record':<9} {record.RECORD_NAME}  names template {plan.theirs.name}")
    counts: dict[str, list[str]] = {}
    for change in plan.changes:
        counts.setdefault(change.action, []).append(change.path)
    parts = [f"{len(counts[a])} {SUMMARY_VERBS[a]}" for a in SUMMARY_VERBS if a in counts]
    summary = ", ".join(parts) or "no file changes"
    lines.append(("dry run, nothing written: would be " if dry_run else "done: ") + summary)
    if plan.conflicts:
        names = ", ".join(c.path for c in plan.conflicts)
        verb = "would need" if dry_run else "need"
        lines.append(
            f"conflicts: {names} {verb} you: resolve the <<<<<<< ... >>>>>>> markers "
            "(yours first, the template's after =======)"
        )
    return lines


def check(args: argparse.Namespace) -> int:
    plan_record = record.read_record(args.arch_dir)
    installed = versions.installed()
    if plan_record is not None and plan_record.template_hash == installed.hash:
        print(f"{args.arch_dir}: up to date with template {installed}")
        return 0
    made = (
        f"template {plan_record.template_hash[:19]} (trainkit {plan_record.trainkit_version})"
        if plan_record
        else f"no {record.RECORD_NAME} (an older trainkit)"
    )
    print(f"{args.arch_dir}: update available: {made} -> {installed}; run trainkit update")
    return UPDATE_AVAILABLE_EXIT


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)
    overrides = parse_extra_context(args.answers)
    try:
        if args.check:
            if overrides:
                raise UsageError("--check takes no KEY=VALUE answers")
            return check(args)
        plan = make_plan(
            args.arch_dir,
            overrides,
            from_version=args.from_version,
            base_template=args.base_template,
        )
        if plan.up_to_date:
            print(f"{args.arch_dir}: up to date with template {plan.theirs}")
            return 0
        if not args.dry_run:
            apply(plan)
    except UsageError:
        raise
    except TrainkitError as exc:
        raise CannotUpdate(str(exc)) from None
    for line in describe(plan, args.dry_run):
        print(line)
    return CONFLICTS_EXIT if plan.conflicts else 0
