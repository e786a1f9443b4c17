"""Command line: ``python -m storage import-dataset|export|upgrade|sweep ...``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .datasets import FORMATS, export_dataset, import_dataset
from .errors import StorageError
from .store import Store


def _store(args) -> Store:
    data_dir = args.data_dir
    if data_dir is None:
        # default: image files beside a SQLite file, else ./data
        if args.db and args.db.startswith("sqlite:///") and args.db != "sqlite:///:memory:":
            data_dir = Path(args.db[len("sqlite:///"):]).parent
        else:
            data_dir = Path("data")
    return Store(args.db, data_dir, max_image_megapixels=args.max_megapixels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m storage", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None,
                        help="SQLAlchemy URL (default: sqlite:///<data-dir>/studio.db)")
    common.add_argument("--data-dir", default=None,
                        help="folder for image files (default: the SQLite file's folder, else ./data)")
    common.add_argument("--max-megapixels", type=float, default=80.0)
    sub = ap.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import-dataset", parents=[common],
                         help="import images/<split>, labels/<split>, classes.json")
    imp.add_argument("--project", required=True)
    imp.add_argument("--data", required=True, help="dataset folder (CamVid layout)")
    imp.add_argument("--split", required=True)
    imp.add_argument("--author", default="import")
    imp.add_argument("--limit", type=int, default=None)
    exp = sub.add_parser("export", parents=[common], help="export submitted annotations")
    exp.add_argument("--project", required=True)
    exp.add_argument("--format", required=True, choices=FORMATS)
    exp.add_argument("--out", required=True)
    exp.add_argument("--split", default=None)
    exp.add_argument("--include-drafts", action="store_true")
    sub.add_parser("upgrade", parents=[common], help="create/upgrade the schema")
    sw = sub.add_parser("sweep", parents=[common], help="delete orphan image files")
    sw.add_argument("--min-age-s", type=float, default=3600.0)
    args = ap.parse_args(argv)
    try:
        with _store(args) as store:
            if args.cmd == "import-dataset":
                r = import_dataset(store, args.project, args.data, args.split, author=args.author,
                                   limit=args.limit)
                print(f"added {r.added}, annotated {r.annotated}, duplicates {r.duplicates}, "
                      f"without label {r.unlabelled}, kept existing labels {len(r.kept_existing)}, "
                      f"rejected {len(r.rejected)}")
                for line in r.rejected:
                    print(f"  rejected {line}", file=sys.stderr)
                return 1 if r.rejected else 0
            if args.cmd == "export":
                r = export_dataset(store, args.project, args.out, args.format, split=args.split,
                                   include_drafts=args.include_drafts)
                print(f"exported {r.images} images ({len(r.files)} files) to {args.out}; "
                      f"{r.skipped_unannotated} without a submitted annotation skipped")
                return 0
            if args.cmd == "upgrade":
                print("schema at head")
                return 0
            if args.cmd == "sweep":
                removed = store.sweep_orphans(args.min_age_s)
                print(f"removed {len(removed)} orphan files")
                return 0
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
