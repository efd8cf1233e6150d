"""Sandbox: bigcommerce (placeholder until its module lands)."""

from flask import Blueprint

from . import bind_account

bp = Blueprint("sandbox_bigcommerce", __name__, url_prefix="/bigcommerce/<account_key>")
bind_account(bp, "bigcommerce")
