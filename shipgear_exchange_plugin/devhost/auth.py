"""Sign in and out; loads the signed-in user into ``g.user`` (flaskr's pattern)."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

from .models import User, db

bp = Blueprint("devhost", __name__, template_folder="templates", static_folder="static",
               static_url_path="/host-static")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=200)])


@bp.before_app_request
def load_signed_in_user() -> None:
    user_id = session.get("user_id")
    g.user = db.session.get(User, user_id) if user_id is not None else None


def login_required(view):
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("devhost.login", next=request.full_path))
        return view(**kwargs)

    return wrapped


def admin_required(view):
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("devhost.login", next=request.full_path))
        if not g.user.is_admin:
            abort(403)
        return view(**kwargs)

    return wrapped


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a user to another host after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("devhost.companies")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.execute(
            sa.select(User).where(User.username == form.username.data)
        ).scalar_one_or_none()
        if user is None or not user.check_password(form.password.data):
            flash("Wrong username or password.", "error")
            return render_template("devhost/login.html", form=form), 401
        session.clear()
        session["user_id"] = user.id
        return redirect(_safe_next(request.args.get("next")))
    status = 400 if form.is_submitted() else 200
    return render_template("devhost/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("devhost.login"))
