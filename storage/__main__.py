"""Command line: ``python -m storage import-dataset|export|upgrade|sweep|backup|restore|users|members|projects|images|training-source|self-review|auto-finetune|others-unlabelled ...``.

Passwords (``users add``, ``users passwd``) are read from a prompt, asked twice, or from
the first line of standard input when it is not a terminal (``echo pw | python -m
storage users add ...``); never from the command line, and never printed."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from . import DB_URL_ENV
from .datasets import FORMATS, export_dataset, import_dataset
from .errors import StorageError
from .models import Action, Role, TrainingSource
from .store import Store

CLI_USER = "cli"     # who the activity log names for changes made here


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102
        # argparse would echo unknown arguments; one might be a password typed by mistake
        if message.startswith("unrecognized arguments"):
            message = ("unrecognized arguments (not shown; passwords are never given on the "
                       "command line: they are read from a prompt or standard input)")
        super().error(message)


class CliError(Exception):
    pass


def _store(args) -> Store:
    data_dir = args.data_dir
    if data_dir is None:
        # default: image files beside a SQLite file, else ./data
        if args.db and args.db.startswith("sqlite:///") and args.db != "sqlite:///:memory:":
            data_dir = Path(args.db[len("sqlite:///"):]).parent
        else:
            data_dir = Path("data")
    return Store(args.db, data_dir, max_image_megapixels=args.max_megapixels)


def read_password(name: str) -> str:
    """From a prompt (asked twice) on a terminal, else the first line of stdin."""
    if sys.stdin is not None and sys.stdin.isatty():
        pw = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Repeat it: ") != pw:
            raise CliError("the two passwords differ; nothing changed")
        return pw
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise CliError("no password on standard input; nothing changed")
    return line.rstrip("\r\n")


def _users(store: Store, args) -> int:
    cmd = args.users_cmd
    if cmd == "list":
        member_of: dict[int, list[str]] = {}
        for p in store.list_projects():
            for u in store.list_members(p.id):
                member_of.setdefault(u.id, []).append(p.name)
        rows = [("NAME", "ROLE", "DISABLED", "PROJECTS")]
        for u in store.list_users():
            projects = "(all)" if u.is_admin else ", ".join(member_of.get(u.id, [])) or "-"
            rows.append((u.name, u.role, ("yes" if u.disabled else "no") + (", locked" if u.locked else ""),
                         projects))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
        return 0
    if cmd == "add":
        pw = read_password(args.name)
        u = store.add_user(args.name, pw, args.role)
        store.record_activity(Action.USER_ADDED, CLI_USER, subject=f"user {u.name}",
                              details={"name": u.name, "role": u.role})
        print(f"added user {u.name!r} ({u.role})")
        return 0
    if cmd == "passwd":
        u = store.get_user(args.name)
        store.set_password(u.id, read_password(u.name))
        store.record_activity(Action.PASSWORD_CHANGED, CLI_USER, subject=f"user {u.name}",
                              details={"name": u.name})
        print(f"password of {u.name!r} changed")
        return 0
    if cmd == "set-role":
        before = store.get_user(args.name)
        u = store.set_role(before.id, args.role)
        if u.role != before.role:
            store.record_activity(Action.ROLE_CHANGED, CLI_USER, subject=f"user {u.name}",
                                  details={"name": u.name, "from": before.role, "to": u.role})
        print(f"{u.name!r} is {u.role}")
        return 0
    if cmd == "unlock":
        u = store.unlock_user(args.name)
        print(f"{u.name!r} is unlocked (failed logins forgotten)")
        return 0
    if cmd in ("disable", "enable"):
        before = store.get_user(args.name)
        u = (store.disable_user if cmd == "disable" else store.enable_user)(before.id)
        if u.disabled != before.disabled:
            store.record_activity(Action.USER_DISABLED if u.disabled else Action.USER_ENABLED,
                                  CLI_USER, subject=f"user {u.name}", details={"name": u.name})
        print(f"{u.name!r} is {'disabled' if u.disabled else 'enabled'}")
        return 0
    return 2


def _members(store: Store, args) -> int:
    if args.members_cmd == "list":
        p = store.get_project(args.project)
        for u in store.list_members(p.id):
            print(f"{u.name}\t{u.role}{'  (disabled)' if u.disabled else ''}")
        print(f"training source: {store.effective_training_source(p.id)}"
              f"{'' if p.training_source else ' (automatic)'}", file=sys.stderr)
        return 0
    p, u = store.get_project(args.project), store.get_user(args.user)
    if args.members_cmd == "add":
        if store.add_member(p.id, u.id):
            store.record_activity(Action.MEMBER_ADDED, CLI_USER, p.id, f"user {u.name}",
                                  {"name": u.name, "role": u.role})
            print(f"{u.name!r} is a member of {p.name!r}")
        else:
            print(f"{u.name!r} already was a member of {p.name!r}")
        return 0
    if args.members_cmd == "remove":
        if store.remove_member(p.id, u.id):
            store.record_activity(Action.MEMBER_REMOVED, CLI_USER, p.id, f"user {u.name}",
                                  {"name": u.name})
            print(f"{u.name!r} is no longer a member of {p.name!r}")
        else:
            print(f"{u.name!r} was not a member of {p.name!r}")
        return 0
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m storage", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common = _Parser(add_help=False)
    common.add_argument("--db", default=os.environ.get(DB_URL_ENV) or None,
                        help=f"SQLAlchemy URL (default: ${DB_URL_ENV}, else sqlite:///<data-dir>/studio.db); a "
                             f"password here is readable by anyone on this machine (`ps`): prefer ${DB_URL_ENV}")
    common.add_argument("--data-dir", default=None,
                        help="folder for image files (default: the SQLite file's folder, else ./data)")
    common.add_argument("--max-megapixels", type=float, default=80.0)
    sub = ap.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import-dataset", parents=[common],
                         help="import images/<split>, labels/<split>, classes.json (into an existing "
                              "project: classes matched by name)")
    imp.add_argument("--project", required=True)
    imp.add_argument("--data", required=True, help="dataset folder (CamVid layout)")
    imp.add_argument("--split", required=True)
    imp.add_argument("--author", default="import")
    imp.add_argument("--limit", type=int, default=None)
    exp = sub.add_parser("export", parents=[common],
                         help="export annotations (the project's training source)")
    exp.add_argument("--project", required=True)
    exp.add_argument("--format", required=True, choices=FORMATS)
    exp.add_argument("--out", required=True)
    exp.add_argument("--split", default=None)
    exp.add_argument("--include-drafts", action="store_true",
                     help="each image's latest revision, whatever its status or review")
    exp.add_argument("--source", choices=[s.value for s in TrainingSource], default=None,
                     help="accepted or submitted revisions (default: the project's training source)")
    sub.add_parser("upgrade", parents=[common], help="create/upgrade the schema")
    sw = sub.add_parser("sweep", parents=[common], help="delete orphan image files")
    sw.add_argument("--min-age-s", type=float, default=3600.0)

    roles = [r.value for r in Role]
    users = sub.add_parser("users", help="accounts: add, list, set-role, disable, enable, passwd, unlock")
    usub = users.add_subparsers(dest="users_cmd", required=True)
    ua = usub.add_parser("add", parents=[common],
                         help="add an account; the password is read from a prompt or stdin")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=roles)
    usub.add_parser("list", parents=[common], help="name, role, disabled, projects")
    sr = usub.add_parser("set-role", parents=[common], help="change a user's role")
    sr.add_argument("name")
    sr.add_argument("role", choices=roles)
    for name, what in (("disable", "refuse the user's logins"), ("enable", "allow them again"),
                       ("unlock", "lift a lockout after too many failed logins"),
                       ("passwd", "set a new password, read from a prompt or stdin")):
        usub.add_parser(name, parents=[common], help=what).add_argument("name")
    members = sub.add_parser("members", help="project members: add, remove, list")
    msub = members.add_subparsers(dest="members_cmd", required=True)
    for name in ("add", "remove"):
        m = msub.add_parser(name, parents=[common], help=f"{name} a member")
        m.add_argument("project")
        m.add_argument("user")
    msub.add_parser("list", parents=[common], help="a project's members").add_argument("project")
    projects = sub.add_parser("projects", help="projects: list, rename, remove, restore (nothing is deleted)")
    psub = projects.add_subparsers(dest="projects_cmd", required=True)
    psub.add_parser("list", parents=[common], help="id, name, images, and whether removed")
    pr = psub.add_parser("rename", parents=[common], help="give a project another name")
    pr.add_argument("project")
    pr.add_argument("new_name")
    for name, what in (("remove", "take a project out of every list (everything of it is kept)"),
                       ("restore", "put a removed project back")):
        psub.add_parser(name, parents=[common], help=what).add_argument("project")
    images = sub.add_parser("images", help="take images out of a project and put them back: remove, restore, "
                                           "removed (nothing is deleted)")
    isub = images.add_subparsers(dest="images_cmd", required=True)
    for name, what in (("remove", "take an image out of the project (its revisions are kept)"),
                       ("restore", "put a removed image back")):
        i = isub.add_parser(name, parents=[common], help=what)
        i.add_argument("project")
        i.add_argument("image_id", type=int)
    isub.add_parser("removed", parents=[common], help="a project's removed images").add_argument("project")
    ts = sub.add_parser("training-source", parents=[common],
                        help="show or set what jobs and exports use: accepted, submitted or auto")
    ts.add_argument("project")
    ts.add_argument("value", nargs="?", choices=[s.value for s in TrainingSource] + ["auto"])
    sr = sub.add_parser("self-review", parents=[common],
                        help="show or set whether a reviewer may accept their own submission (one-person projects)")
    sr.add_argument("project")
    sr.add_argument("value", nargs="?", choices=["on", "off"])
    af = sub.add_parser("auto-finetune", parents=[common],
                        help="show or set N: the app queues a fine-tuning job every N submitted "
                             "annotations (0 = off, the default)")
    af.add_argument("project")
    af.add_argument("every", nargs="?", type=int, metavar="N")
    bk = sub.add_parser("backup", parents=[common],
                        help="write one tar file with the database (SQLite) and the data folder's files, "
                             "while the app runs; restore it with `restore`")
    bk.add_argument("--out", required=True, help="the tar file to write (.tar, or .tar.gz to compress)")
    rs = sub.add_parser("restore", parents=[common],
                        help="unpack a backup into a new or empty --data-dir and bring its schema up to date")
    rs.add_argument("archive")
    ou = sub.add_parser("others-unlabelled", parents=[common],
                        help="show or set whether pixels that are none of the project's classes are predicted "
                             "unlabelled (on) or as the nearest class (off, the default); setting it forgets "
                             "the stored predictions, as the Projects screen does")
    ou.add_argument("project")
    ou.add_argument("value", nargs="?", choices=["on", "off"])
    args = ap.parse_args(argv)
    if args.cmd == "restore":          # before any store is opened: the folder must be empty
        from .backup import restore
        if not args.data_dir:
            print("error: give the folder to restore into: --data-dir NEW_FOLDER", file=sys.stderr)
            return 2
        try:
            r = restore(args.archive, args.data_dir, args.db)
        except StorageError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"restored {r.projects} projects, {r.images} images and {r.files} files into {r.path}; "
              f"start the app with --data-dir {r.path}")
        for w in sorted(set(r.outside)):
            print(f"warning: a model version's folder is not on this machine: {w} (the app finds its "
                  "shipped model, weights/camvid, by itself at start; copy any other there)", file=sys.stderr)
        return 0
    try:
        with _store(args) as store:
            if args.cmd == "backup":
                from .backup import backup
                r = backup(store, args.out)
                print(f"backed up {r.summary()}")
                return 0
            if args.cmd == "import-dataset":
                r = import_dataset(store, args.project, args.data, args.split, author=args.author,
                                   limit=args.limit)
                store.record_activity(Action.IMPORT, CLI_USER, args.project, f"dataset {args.data}",
                                      {"split": args.split, "added": r.added, "annotated": r.annotated,
                                       "rejected": len(r.rejected)})
                print(f"added {r.added}, annotated {r.annotated}, duplicates {r.duplicates}, "
                      f"without label {r.unlabelled}, kept existing labels {len(r.kept_existing)}, "
                      f"rejected {len(r.rejected)}")
                for line in r.rejected:
                    print(f"  rejected {line}", file=sys.stderr)
                return 1 if r.rejected else 0
            if args.cmd == "export":
                r = export_dataset(store, args.project, args.out, args.format, split=args.split,
                                   include_drafts=args.include_drafts, source=args.source)
                store.record_activity(Action.EXPORT, CLI_USER, args.project, f"export {args.format}",
                                      {"format": args.format, "images": r.images, "source": r.source,
                                       "split": args.split, "out": str(args.out)})
                print(f"exported {r.images} images ({len(r.files)} files, {r.source} revisions) to "
                      f"{args.out}; {r.skipped_unannotated} without such an annotation skipped")
                return 0
            if args.cmd == "upgrade":
                print("schema at head")
                return 0
            if args.cmd == "sweep":
                removed = store.sweep_orphans(args.min_age_s)
                print(f"removed {len(removed)} orphan files")
                return 0
            if args.cmd == "users":
                return _users(store, args)
            if args.cmd == "members":
                return _members(store, args)
            if args.cmd == "projects":
                return _projects(store, args)
            if args.cmd == "images":
                return _images(store, args)
            if args.cmd == "training-source":
                p = store.get_project(args.project)
                if args.value is not None:
                    value = None if args.value == "auto" else args.value
                    p = store.set_training_source(p.id, value)
                    store.record_activity(Action.TRAINING_SOURCE_CHANGED, CLI_USER, p.id,
                                          f"project {p.name}", {"training_source": value})
                print(f"{p.name}: {store.effective_training_source(p.id)}"
                      f"{'' if p.training_source else ' (automatic)'}")
                return 0
            if args.cmd == "self-review":
                p = store.get_project(args.project)
                if args.value is not None:
                    p = store.set_self_review(p.id, args.value == "on")
                print(f"{p.name}: self-review {'allowed' if p.allow_self_review else 'refused'}")
                return 0
            if args.cmd == "auto-finetune":
                p = store.get_project(args.project)
                if args.every is not None:
                    p = store.set_auto_finetune_every(p.id, args.every)
                print(f"{p.name}: " + (f"a job every {p.auto_finetune_every} submitted annotations"
                                       if p.auto_finetune_every else "off"))
                return 0
            if args.cmd == "others-unlabelled":
                return _others_unlabelled(store, args)
    except (StorageError, CliError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; nothing changed", file=sys.stderr)
        return 130
    return 2


def _projects(store: Store, args) -> int:
    """List the projects (removed ones too: id, name, images, "removed"), or rename, remove
    or restore one (recorded as done by ``cli``)."""
    if args.projects_cmd == "list":
        for p in store.list_projects(include_removed=True):
            print(f"{p.id}\t{p.name}\t{store.count_images(p.id)['total']}" + ("\tremoved" if p.removed else ""))
        return 0
    p = store.get_project(args.project)
    if args.projects_cmd == "rename":
        q = store.rename_project(p.id, args.new_name, by=CLI_USER)
        print(f"{p.name!r} is now {q.name!r}" if q.name != p.name else f"{p.name!r} already has that name")
    elif args.projects_cmd == "remove":
        store.remove_project(p.id, by=CLI_USER)
        print(f"{p.name!r} {'was already' if p.removed else 'is now'} removed (restore it with: projects restore)")
    else:
        store.restore_project(p.id, by=CLI_USER)
        print(f"{p.name!r} {'is back' if p.removed else 'was not removed'}")
    return 0


def _images(store: Store, args) -> int:
    """Remove / restore one image of the project (refused for another project's id), or
    list the removed ones (id, file name, status)."""
    p = store.get_project(args.project)
    if args.images_cmd == "removed":
        for im in store.removed_images(p.id):
            print(f"{im.id}\t{im.filename}\t{im.status}")
        return 0
    im = store.get_image(args.image_id)
    if im.project_id != p.id:
        raise CliError(f"project {p.name!r} has no image {args.image_id}")
    if args.images_cmd == "remove":
        was = im.removed
        store.remove_image(im.id, by=CLI_USER)
        print(f"{im.filename} (image {im.id}) {'was already' if was else 'is now'} out of {p.name!r}")
    else:
        was = not im.removed
        store.restore_image(im.id, by=CLI_USER)
        print(f"{im.filename} (image {im.id}) {'was already' if was else 'is'} back in {p.name!r}")
    return 0


def _others_unlabelled(store: Store, args) -> int:
    """Show or set the project's open-set setting. The stored predictions were made the
    other way, so a change forgets them (as the app's Projects screen does); a running
    app predicts each image again when it next prepares it."""
    p = store.get_project(args.project)
    if args.value is not None and (on := args.value == "on") != bool(p.others_unlabelled):
        p = store.set_others_unlabelled(p.id, on)
        dropped = store.delete_predictions(p.id)
        what = "left unlabelled" if on else "painted as the nearest class"
        store.record_activity(Action.CLASSES_CHANGED, CLI_USER, p.id, f"pixels that are none of the classes: {what}",
                              {"others_unlabelled": on})
        print(f"{dropped} stored prediction(s) forgotten: the images are predicted again when next opened")
    print(f"{p.name}: pixels that are none of the classes are "
          + ("left unlabelled" if p.others_unlabelled else "painted as the nearest class"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
