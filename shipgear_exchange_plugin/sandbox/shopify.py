"""Sandbox: shopify (placeholder until its module lands)."""

from flask import Blueprint

from . import bind_account

bp = Blueprint("sandbox_shopify", __name__, url_prefix="/shopify/<account_key>")
bind_account(bp, "shopify")
