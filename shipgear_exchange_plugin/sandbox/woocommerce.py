"""Sandbox: woocommerce (placeholder until its module lands)."""

from flask import Blueprint

from . import bind_account

bp = Blueprint("sandbox_woocommerce", __name__, url_prefix="/woocommerce/<account_key>")
bind_account(bp, "woocommerce")
