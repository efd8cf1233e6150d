"""Product images for the sandbox's catalogues, served by the sandbox itself.

Real stores link product images on their own CDNs; the sandbox's products link here, so
the demo's Products tab shows a thumbnail for every product with no outside host. Each
image is a small SVG tile, its colour and letters taken from the product, so one
product always looks the same and neighbours look different.
"""

from __future__ import annotations

import hashlib
from typing import Any
from xml.sax.saxutils import escape

from flask import Blueprint, abort, current_app, request

bp = Blueprint("images", __name__, url_prefix="/images")

#: BigCommerce lists a product image in several sizes; the sandbox serves one drawing.
VARIANTS = ("", "-thumb", "-tiny")
_PALETTE = ("#5b7fa6", "#7a9a6b", "#b07a4f", "#8c6fa8", "#4f9a94", "#a65b6b", "#9a8a4f")


def image_url(product: dict[str, Any], variant: str = "") -> str:
    """The absolute URL of ``product``'s image as the store answering now would give it,
    or the link a test set on the product itself (``image_url``) to see what the plugin
    makes of an odd one."""
    if "image_url" in product:
        return product["image_url"]
    return f"{request.url_root.rstrip('/')}/images/{product['image']}{variant}.svg"


def _drawing(title: str, sku: str) -> str:
    digest = hashlib.sha256(sku.encode()).digest()
    colour = _PALETTE[digest[0] % len(_PALETTE)]
    letters = "".join(word[0] for word in title.split()[:2]).upper() or "?"
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" '
            f'viewBox="0 0 96 96" role="img"><title>{escape(f"{title} ({sku})")}</title>'
            f'<rect width="96" height="96" rx="8" fill="{colour}"/>'
            '<text x="48" y="60" font-family="sans-serif" font-size="36" '
            f'text-anchor="middle" fill="#fff">{escape(letters)}</text></svg>')


@bp.get("/<platform>/<key>/<name>")
def product_image(platform: str, key: str, name: str):
    if not name.endswith(".svg"):
        abort(404)
    stem = name.removesuffix(".svg")
    for variant in VARIANTS[1:]:
        stem = stem.removesuffix(variant)
    try:
        account = current_app.extensions["sandbox"].account(platform, key)
    except KeyError:
        abort(404)
    wanted = f"{platform}/{key}/{stem}"
    product = next((p for p in account.products if p["image"] == wanted), None)
    if product is None:
        abort(404)
    answer = current_app.response_class(_drawing(product["title"], product["sku"]),
                                        mimetype="image/svg+xml")
    answer.headers["Cache-Control"] = "public, max-age=86400"
    return answer
