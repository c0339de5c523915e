"""Labelling commands: label, relabel, unknown, reject, restore, flag, note.

Each takes images as ids, paths or sha256 prefixes, from arguments, from ``--file`` (``-`` for
stdin, one per line), or every image under a label with ``--of CLASS[/SUBCLASS]``.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, print_json, read_refs

Images = Annotated[Optional[list[str]], typer.Argument(help="Image ids, imported paths or sha256 prefixes.", show_default=False)]
File = Annotated[Optional[str], typer.Option("--file", "-f", help="Read image references from a file, one per line ('-' for stdin).")]
Of = Annotated[Optional[str], typer.Option("--of", help="Every image labelled CLASS[/SUBCLASS], 'unknown' or 'unlabelled'.")]
Class = Annotated[str, typer.Option("--class", help="The class (or CLASS/SUBCLASS).")]
Sub = Annotated[Optional[str], typer.Option("--subclass", help="A sub-class of --class.")]
Create = Annotated[bool, typer.Option("--create", help="Create the class or sub-class if it does not exist.")]


def register(app: typer.Typer) -> None:
    for name, fn in (("label", label), ("relabel", relabel), ("unknown", unknown),
                     ("reject", reject), ("restore", restore), ("flag", flag), ("note", note)):
        app.command(name)(fn)


def _run(db, images, file, of, json_, action, **kwargs) -> None:
    """Select images, apply one labels.* action in one transaction, report what changed."""
    from curator import labels

    change = labels.apply_to(open_lib(db), read_refs(images, file), of, action, **kwargs)
    if json_:
        return print_json({"action": change.action, "changed": change.changed,
                           "unchanged": change.unchanged})
    console.print(f"{change.action}: {len(change.changed)} changed, {change.unchanged} already so.")


def _label_of(class_: str, subclass: str | None) -> str:
    from curator.classes import parse_label

    # parse_label refuses `--class kangaroo/joey --subclass adult` with a clear message.
    return str(parse_label(class_, subclass))


def label(images: Images = None, class_: Class = ..., subclass: Sub = None, file: File = None,
          of: Of = None, create: Create = False, db: DbOption = None, json_: JsonOption = False) -> None:
    """Label images that have no class yet (unlabelled or unknown).

    Example: curator label 12 13 14 --class kangaroo --subclass joey
    """
    from curator import labels

    _run(db, images, file, of, json_, labels.label, label=_label_of(class_, subclass), create=create)


def relabel(images: Images = None, class_: Class = ..., subclass: Sub = None, file: File = None,
            of: Of = None, create: Create = False, db: DbOption = None, json_: JsonOption = False) -> None:
    """Change the label of images, whatever they had; the old label stays in history.

    Example: curator relabel --of kangaroo/joey --class wallaby --create
    """
    from curator import labels

    _run(db, images, file, of, json_, labels.relabel, label=_label_of(class_, subclass), create=create)


def unknown(images: Images = None, file: File = None, of: Of = None, db: DbOption = None,
            json_: JsonOption = False) -> None:
    """Mark images unknown: good images whose class nobody knows yet (never trained on).

    Example: curator unknown 57 58
    """
    from curator import labels

    _run(db, images, file, of, json_, labels.mark_unknown)


def reject(images: Images = None,
           reason: Annotated[str, typer.Option(help="Why: blurry, not a part, watermark...")] = "rejected by user",
           file: File = None, of: Of = None, db: DbOption = None, json_: JsonOption = False) -> None:
    """Reject images for quality: kept, with the reason, but used for nothing.

    Example: curator reject 99 --reason blurry
    """
    from curator import labels

    _run(db, images, file, of, json_, labels.reject, reason=reason)


def restore(images: Images = None, file: File = None, of: Of = None, db: DbOption = None,
            json_: JsonOption = False) -> None:
    """Restore rejected images.

    Example: curator restore 99
    """
    from curator import labels

    _run(db, images, file, of, json_, labels.restore)


def flag(
    images: Images = None,
    staged: Annotated[Optional[bool], typer.Option("--staged/--no-staged", help="Staged (posed) photo.", show_default=False)] = None,
    synthetic: Annotated[Optional[bool], typer.Option("--synthetic/--no-synthetic", help="Synthetic (rendered) image.", show_default=False)] = None,
    benchmark: Annotated[Optional[bool], typer.Option("--benchmark/--no-benchmark", help="In the benchmark set.", show_default=False)] = None,
    file: File = None, of: Of = None, db: DbOption = None, json_: JsonOption = False,
) -> None:
    """Set or clear the staged, synthetic and benchmark flags.

    Example: curator flag 7 8 --synthetic --no-benchmark
    """
    from curator import labels

    _run(db, images, file, of, json_, labels.set_flags, staged=staged, synthetic=synthetic,
         benchmark=benchmark)


def note(image: Annotated[str, typer.Argument(help="An image id, path or sha256 prefix.")],
         text: Annotated[str, typer.Argument(help="The note ('' clears it).")],
         db: DbOption = None, json_: JsonOption = False) -> None:
    """Attach a free-text note to an image.

    Example: curator note 42 "label printed on the back"
    """
    from curator import labels

    _run(db, [image], None, None, json_, lambda s, ims: labels.set_note(s, ims[0], text))
