"""The labelling studio: ``python app.py`` opens http://127.0.0.1:7860.

On an empty database it creates the "CamVid demo" project (CamVid label set, the
shipped model as active version, four sample street images with predictions).
Fine-tuning jobs are queued in the database; the app starts one local worker
(`python -m jobs.worker` on the same database and data folder) and stops it when it
exits. --no-worker leaves the jobs to workers started elsewhere (e.g. a GPU machine).

Logging in: when the database has accounts (``python -m storage users add NAME --role
admin``), everyone logs in with theirs and roles apply; ``--auth USER`` is a
one-person quick start without accounts (the password from ``SEGUI_AUTH_PASSWORD`` or a
prompt, never the command line); with neither, the app serves only this machine
(127.0.0.1) unless --allow-anyone says otherwise.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading

from models.inference import DEFAULT_MODEL_DIR
from storage import DB_URL_ENV, ValidationError, check_password


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data", help="image files and the default SQLite database (default: data)")
    ap.add_argument("--db", default=os.environ.get(DB_URL_ENV) or None,
                    help=f"SQLAlchemy database URL (default: ${DB_URL_ENV}, else sqlite in --data-dir); a password "
                         f"here is readable by anyone on this machine (`ps`): prefer ${DB_URL_ENV}")
    ap.add_argument("--model", default=None, help=f"default model folder (default: {DEFAULT_MODEL_DIR})")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--auth", default=None, metavar="USER",
                    help="one-person quick start without accounts: require a login as USER (that person is an "
                         f"admin), the password from ${AUTH_PASSWORD_ENV} or asked at the terminal (never on the "
                         "command line, where anyone on this machine can read it); with accounts in the database "
                         "people log in with those instead")
    ap.add_argument("--allow-anyone", action="store_true",
                    help="serve a non-loopback --host without any login (everyone who reaches it is an admin)")
    ap.add_argument("--no-demo", action="store_true", help="do not create the demo project on an empty database")
    ap.add_argument("--instant-adaptation", action=argparse.BooleanOptionalAction, default=True,
                    help="each submitted annotation tunes the class vectors the next predictions use, in about "
                         "a second, no job (on by default since 2026-12-06; --no-instant-adaptation turns it off)")
    ap.add_argument("--predict-scale", type=float, default=1.0, metavar="S",
                    help="the network sees each image enlarged S times (1.5: CamVid val mIoU 0.762 instead of 0.745, "
                         "poles 0.261 instead of 0.200, about 75 instead of 48 ms an image on 2 CPU cores with one "
                         "view, 126-133 instead of 58 with both views, the default). Default 1")
    ap.add_argument("--predict-flip", action=argparse.BooleanOptionalAction, default=True,
                    help="each image is also seen mirrored and the two views averaged (a test-time augmentation: "
                         "CamVid val mIoU 0.752 instead of 0.745, 7%% fewer fixes; about 58 instead of 47 ms an "
                         "image on 2 CPU cores). On by default since 2026-12-06; --no-predict-flip turns it off")
    ap.add_argument("--no-worker", action="store_true",
                    help="do not start the local job worker (run `python -m jobs.worker` elsewhere)")
    args = ap.parse_args(argv)
    from models.inference import check_input_scale    # the one owner of the bound
    try:
        check_input_scale(args.predict_scale)
    except ValueError as e:
        ap.error(f"--predict-scale: {e}")
    args.auth_password = None
    if args.auth is not None:
        if ":" in args.auth:
            ap.error(f"--auth takes the user name only (--auth {args.auth.split(':', 1)[0] or 'alice'}); a password "
                     "on the command line is readable by anyone on this machine (ps). Give it in "
                     f"${AUTH_PASSWORD_ENV} or type it at the prompt")
        if not args.auth.strip():
            ap.error("--auth needs a user name")
        # from the variable now (main() then removes it); the prompt waits for login_for, which
        # first refuses --auth on a database with accounts: nobody types a password for nothing
        args.auth_password = auth_password(args.auth, ap.error, ask=False)
    return args


AUTH_PASSWORD_ENV = "SEGUI_AUTH_PASSWORD"


def auth_password(user: str, fail, ask: bool = True) -> str | None:
    """--auth's password: $SEGUI_AUTH_PASSWORD, else asked at the terminal (None without
    ``ask``); checked as an account's would be (length). ``fail(message)`` exits."""
    pw = os.environ.get(AUTH_PASSWORD_ENV)
    if pw is None:
        if not ask:
            return None
        if sys.stdin is None or not sys.stdin.isatty():
            fail(f"--auth {user}: set {AUTH_PASSWORD_ENV} to the password (no terminal to ask it at)")
        pw = getpass.getpass(f"Password for {user} (the app's login): ")
    try:
        return check_password(pw)
    except ValidationError as e:
        fail(f"--auth {user}: {e}")


def create(args: argparse.Namespace, words: bool = True):
    """The Studio and its Gradio app. ``words=False``: the label sets' BERT encoding is
    not waited for (main() runs it beside the server, which then answers seconds sooner:
    BENCHMARKS.md, *App: time to start*)."""
    from segui.handlers import Studio
    from segui.ui import build_app
    from storage import Store

    store = Store(args.db, data_dir=args.data_dir)
    studio = Studio(store, args.model, args.device, instant=args.instant_adaptation, input_scale=args.predict_scale,
                    flip=args.predict_flip)
    if args.auth is not None:
        studio.single_user = args.auth
    login_for(args, studio)          # an unsafe --host stops here, before the demo project exists
    studio.relink_shipped_model()    # the code (and its weights/) moved, or a backup restored elsewhere
    if not args.no_demo:
        studio.ensure_demo()
    studio.warm_up(words=words)
    return studio, build_app(studio, auth_enabled=args.auth is not None or studio.uses_accounts())


def login_for(args: argparse.Namespace, studio):
    """Gradio's ``auth``: the accounts (a callable), the one --auth pair, or None.
    Raises SystemExit with the reason when the configuration is unsafe or ambiguous."""
    from segui.access import open_host_refusal

    accounts = studio.uses_accounts()
    if accounts and args.auth is not None:
        raise SystemExit("error: the database has accounts, so people log in with those; drop --auth "
                         "(it is a one-person quick start for a database without accounts)")
    why = open_host_refusal(args.host, accounts, args.auth is not None, args.allow_anyone)
    if why:
        raise SystemExit(f"error: {why}")
    if accounts:
        return studio.login
    if args.auth and args.auth_password is None:
        args.auth_password = auth_password(args.auth, _exit_with)
    return (args.auth, args.auth_password) if args.auth else None


def _exit_with(message: str):
    raise SystemExit(f"error: {message}")


def start_worker(args: argparse.Namespace, store):
    """The app's one local job worker (None with --no-worker): a `python -m jobs.worker`
    child on the app's database (URL in its environment) and data folder; training
    uses the app's --device unless it is auto (then each job's own setting)."""
    if args.no_worker:
        return None
    from jobs.worker import LocalWorker

    device = args.device if args.device and args.device != "auto" else None
    return LocalWorker(store.url, store.data_dir, device=device).start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.pop(AUTH_PASSWORD_ENV, None)   # read: the worker and its jobs do not inherit it
    studio, app = create(args, words=False)
    # the label sets' BERT encoding beside the server (a prediction asked meanwhile waits
    # for it under the predictors' lock): the page is up sooner; stored masks need no model
    threading.Thread(target=studio.warm_up, name="warm-up", daemon=True).start()
    auth = login_for(args, studio)
    print(f"Inference device: {studio.device_name}", flush=True)
    from segui.security import launch_options
    from segui.ui import LAUNCH_OPTIONS
    worker = start_worker(args, studio.store)
    studio.start_explore_worker()   # the Explore screen's per-image metrics, in the background
    # the second reviewer on submissions it never scored (the demo's, command-line imports)
    threading.Thread(target=studio.score_unscored, name="score-unscored", daemon=True).start()
    try:
        # launch_options: the accounts' check off the event loop, login throttling,
        # sessions that end, security headers (segui/security.py, README "Security")
        app.queue(default_concurrency_limit=2).launch(
            server_name=args.host, server_port=args.port,
            auth_message="Log in with your studio account." if callable(auth) else None,
            **launch_options(studio, auth), **LAUNCH_OPTIONS)
    finally:
        studio.stop_explore_worker()
        if worker is not None:
            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
