"""Sandbox: amazon (placeholder until its module lands)."""

from flask import Blueprint

from . import bind_account

bp = Blueprint("sandbox_amazon", __name__, url_prefix="/amazon/<account_key>")
bind_account(bp, "amazon")
