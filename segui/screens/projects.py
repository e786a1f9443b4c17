"""The Projects screen: new projects, label sets, members, the training source, accounts."""
from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from ..errors import UserError
from ..guard import user_errors
from ..handlers import Studio
from ..imageops import hex_color
from . import TYPED_OUTPUTS, Screen
from .label import forget_uploads

def _class_table(studio: Studio, project: str | None) -> pd.DataFrame:
    rows = []
    if project:
        rows = [[c.index, c.name, hex_color(c.color)] for c in studio.project(project).classes]
    return pd.DataFrame(rows, columns=["index", "name", "colour"])


def projects_screen(studio: Studio, project_dd: gr.Dropdown) -> Screen:
    with gr.Blocks() as blocks:
        with gr.Row():
            with gr.Column():
                gr.Markdown("### New project")
                new_name = gr.Textbox(label="Project name")
                new_classes = gr.Textbox(label="Label set: one class per line, optional #rrggbb colour",
                                         lines=6, placeholder="road\ncar #4000ff\ntraffic light")
                # or the label set of labels made elsewhere: their export's zip or label-set file
                # (upload the zip on the Label screen next: its labels come with it)
                from_export = gr.File(label="…or the label set of an export (a zip of this studio, CVAT or "
                                            "Label Studio; or its classes.json, labelmap.txt, COCO json)",
                                      file_count="single", file_types=[".zip", ".json", ".txt"], height=120,
                                      elem_id="segui-label-set-file")
                create_btn = gr.Button("Create project", variant="primary")
                gr.Markdown("### The selected project")
                with gr.Row(equal_height=True):
                    rename_to = gr.Textbox(label="New name", elem_id="segui-rename-project-name", scale=3)
                    rename_btn = gr.Button("Rename", elem_id="segui-rename-project", scale=1)
                remove_project_btn = gr.Button("Remove project", variant="stop", elem_id="segui-remove-project")
                gr.Markdown("Removing takes the project out of every list. Nothing of it is deleted: "
                            "its images, annotations and models come back with it from *Removed projects*.")
                with gr.Accordion("Removed projects", open=False, elem_id="segui-removed-projects"):
                    removed_dd = gr.Dropdown([], value=None, label="Removed projects, the latest first",
                                             elem_id="segui-removed-project")
                    restore_btn = gr.Button("Restore", elem_id="segui-restore-project")
            with gr.Column():
                gr.Markdown("### Label set of the selected project")
                table = gr.Dataframe(headers=["index", "name", "colour"], datatype=["number", "str", "str"],
                                     interactive=True, label="Edit names and colours, then apply")
                apply_btn = gr.Button("Apply label-set changes")
                with gr.Row():
                    add_name = gr.Textbox(label="Add a class by name")
                    add_color = gr.ColorPicker(label="Colour", value="#ff8800")
                add_btn = gr.Button("Add class")
                with gr.Row():
                    remove_name = gr.Textbox(label="Remove a class by name (one no saved annotation uses)",
                                             elem_id="segui-remove-class-name")
                remove_btn = gr.Button("Remove class", elem_id="segui-remove-class")
                others = gr.Radio([("painted as the nearest class", "nearest"),
                                   ("left unlabelled (void)", "void")], value="nearest",
                                  label="Pixels that are none of these classes are predicted",
                                  info="Left unlabelled: for a label set that names only some of what the "
                                       "images show (the model also weighs common scene words and leaves "
                                       "what they win void). Not with a catch-all class such as 'background'.",
                                  elem_id="segui-others-unlabelled")
                counts = gr.Markdown()
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Members")
                members_md = gr.Markdown(elem_id="segui-members")
                with gr.Row():
                    member_name = gr.Textbox(label="User name", placeholder="an account's name (see Accounts below)")
                    member_add = gr.Button("Add member")
                    member_remove = gr.Button("Remove member")
            with gr.Column():
                gr.Markdown("### Review")
                source = gr.Radio([("automatic: accepted ones once the project has reviewers", "auto"),
                                   ("accepted annotations only", "accepted"),
                                   ("all submitted annotations", "submitted")], value="auto",
                                  label="Fine-tuning jobs and exports use", elem_id="segui-training-source")
                source_md = gr.Markdown()

        def summary(project):
            if not project:
                return ""
            c = studio.image_counts(project)
            return (f"{c['total']} image(s): {c['unlabelled']} unlabelled, {c['draft']} draft, "
                    f"{c['submitted']} submitted")

        def picker(value: str | None = None):
            """The header's Project picker with the projects now; ``value`` selected, else
            the first (none when there is none)."""
            names = studio.project_names()
            return gr.update(choices=names, value=value or (names[0] if names else None))

        @user_errors
        def on_create(name, classes):
            p = studio.create_project(name, classes)
            gr.Info(f"Project '{p.name}' created with {len(p.classes)} classes.")
            return picker(p.name), "", ""

        create_btn.click(on_create, [new_name, new_classes], [project_dd, new_name, new_classes],
                         api_name="create_project", **TYPED_OUTPUTS)

        def on_label_set_file(file):
            path = getattr(file, "name", file)
            try:
                text = studio.label_set_text(path)
            except UserError as err:
                raise gr.Error(str(err)) from None
            finally:
                forget_uploads([path] if path else [])
            gr.Info("The label set of the export is in the box: check it, name the project, create it; "
                    "then upload the zip on the Label screen, and its labels come with it.")
            return text, None

        from_export.upload(on_label_set_file, from_export, [new_classes, from_export],
                           api_name="label_set_from_file", **TYPED_OUTPUTS)

        def removed_state():
            names = studio.removed_project_names()
            return gr.update(choices=names, value=names[0] if names else None)

        @user_errors
        def on_rename(project, name):
            p = studio.rename_project(project, name)
            gr.Info(f"Project {project!r} is now {p.name!r}.")
            return picker(p.name), ""

        rename_btn.click(on_rename, [project_dd, rename_to], [project_dd, rename_to], api_name="rename_project",
                         **TYPED_OUTPUTS)

        @user_errors
        def on_remove_project(project):
            p = studio.remove_project(project)
            gr.Info(f"Project {p.name!r} removed: Removed projects, below, brings it back with everything it had.")
            return picker(), removed_state()

        remove_project_btn.click(on_remove_project, [project_dd], [project_dd, removed_dd], api_name="remove_project",
                                 **TYPED_OUTPUTS)

        @user_errors
        def on_restore_project(name):
            p = studio.restore_project(name)
            gr.Info(f"Project {p.name!r} is back, with its images, annotations and models.")
            return picker(p.name), removed_state()

        restore_btn.click(on_restore_project, [removed_dd], [project_dd, removed_dd], api_name="restore_project",
                          **TYPED_OUTPUTS)

        def source_state(project):
            if not project:
                return gr.update(value="auto"), ""
            raw, eff = studio.training_source(project)
            return gr.update(value=raw), f"Now: **{eff}** annotations."

        def on_label_set(project):
            return _class_table(studio, project), summary(project)

        def others_state(project):
            return gr.update(value="void" if project and studio.others_unlabelled(project) else "nearest")

        def on_settings(project):
            return studio.members(project), *source_state(project), others_state(project)

        def on_project(project):
            return (*on_label_set(project), *on_settings(project), users_df(), removed_state())

        project_dd.change(on_label_set, project_dd, [table, counts], api_name="label_set", **TYPED_OUTPUTS)
        project_dd.change(on_settings, project_dd, [members_md, source, source_md, others],
                          api_name="project_settings", **TYPED_OUTPUTS)

        @user_errors
        def on_member(project, name, add):
            note = studio.set_member(project, name, add)
            gr.Info(note)
            return studio.members(project), ""

        member_add.click(lambda p, n: on_member(p, n, True), [project_dd, member_name], [members_md, member_name],
                         api_name="add_member", **TYPED_OUTPUTS)
        member_remove.click(lambda p, n: on_member(p, n, False), [project_dd, member_name],
                            [members_md, member_name], api_name="remove_member", **TYPED_OUTPUTS)

        @user_errors
        def on_source(project, value):
            studio.set_training_source(project, value)
            return source_state(project)[1]

        source.input(on_source, [project_dd, source], source_md, api_name="training_source")

        @user_errors
        def on_others(project, value):
            on = studio.set_others_unlabelled(project, value == "void")
            if on and (held := studio.catch_all_classes(project)):
                gr.Warning(f"{held[0]!r} reads as a class for everything else: its pixels may now be left "
                           "unlabelled. With a catch-all class, keep 'painted as the nearest class'.")
            gr.Info("Pixels that are none of the classes are now " +
                    ("left unlabelled" if on else "painted as the nearest class") +
                    ": the images are predicted again (annotations are kept).")
            return summary(project)

        with gr.Accordion("Accounts (admins)", open=False, elem_id="segui-accounts"):
            users = gr.Dataframe(headers=["name", "role", "state", "projects"], datatype=["str"] * 4,
                                 interactive=False, elem_id="segui-users")
            with gr.Row():
                acct_name = gr.Textbox(label="Name", elem_id="segui-acct-name")
                acct_role = gr.Dropdown(["annotator", "reviewer", "admin"], value="annotator", label="Role",
                                        elem_id="segui-acct-role")
                acct_pw = gr.Textbox(label="Password (new accounts, or a new password)", type="password",
                                     elem_id="segui-acct-pw")
            with gr.Row():
                acct_btns = {a: gr.Button(label) for a, label in [
                    ("add", "Add account"), ("set_role", "Set role"), ("password", "Set password"),
                    ("disable", "Disable"), ("enable", "Enable"), ("unlock", "Unlock")]}
            acct_md = gr.Markdown(elem_id="segui-acct-status")

        def users_df():
            return pd.DataFrame(studio.users_table(), columns=["name", "role", "state", "projects"])

        def account_event(action):
            @user_errors
            def on_account(name, role, password):
                note = studio.manage_user(action, name, role, password)
                return users_df(), note, ""      # the password box is emptied
            return on_account

        for action, btn in acct_btns.items():
            btn.click(account_event(action), [acct_name, acct_role, acct_pw], [users, acct_md, acct_pw],
                      api_name=f"account_{action}", **TYPED_OUTPUTS)

        @user_errors
        def on_apply(project, df):
            if not project:
                raise UserError("pick a project first")
            rows = df.values.tolist() if isinstance(df, pd.DataFrame) else (df or [])
            studio.update_classes(project, rows)
            gr.Info("Label set updated.")
            return _class_table(studio, project)

        events = [apply_btn.click(on_apply, [project_dd, table], table, api_name="update_classes", **TYPED_OUTPUTS)]

        @user_errors
        def on_add(project, name, color):
            if not project:
                raise UserError("pick a project first")
            studio.add_class(project, name, _color(color))
            gr.Info(f"Added {name.strip()!r}. The model reads a new word from the word alone until a "
                    "fine-tuning job has learnt it from your labels; the queue is being predicted again with it.")
            return _class_table(studio, project), ""

        events.append(
            add_btn.click(on_add, [project_dd, add_name, add_color], [table, add_name], api_name="add_class",
                          **TYPED_OUTPUTS))

        @user_errors
        def on_remove_class(project, name):
            p = studio.remove_class(project, name)
            gr.Info(f"Removed {name.strip()!r}: the queue is being predicted again without it.")
            return _class_table(studio, p.name), ""

        events.append(
            remove_btn.click(on_remove_class, [project_dd, remove_name], [table, remove_name], api_name="remove_class",
                             **TYPED_OUTPUTS))
        # the Label screen forgets the image it prepared ahead and re-opens an untouched one
        events.append(others.input(on_others, [project_dd, others], counts, api_name="others_unlabelled"))
    PROJ_OUT = [table, counts, members_md, source, source_md, others, users, removed_dd]
    return Screen(blocks, refresh=(on_project, [project_dd], PROJ_OUT), label_set_events=events)


def _color(c: Any) -> str | None:
    """ColorPicker values can be '#rrggbb' or 'rgba(r, g, b, a)'."""
    if not c:
        return None
    c = str(c).strip()
    if c.startswith("rgb"):
        nums = [float(v) for v in c[c.index("(") + 1:c.index(")")].split(",")[:3]]
        return hex_color([round(v) for v in nums])
    return c[:7]
