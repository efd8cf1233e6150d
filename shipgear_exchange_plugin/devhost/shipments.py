"""Processing a shipment in the reference host: store it and tell the plugins, atomically."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shipgear_exchange_plugin.host_contract import ProcessedShipment, ShippedPackage

from .host import ReferenceHost
from .models import Shipment, db


def process_shipment(host: ReferenceHost, *, company_id: int, order_source: str, order_id: str,
                     carrier: str, service: str, packages: list[dict[str, Any]],
                     ship_date: dt.datetime | None = None) -> Shipment:
    """Store a shipment and call ``exchange_shipment_processed`` in the same transaction.

    If a plugin's hook raises, nothing is stored: the shipment and its write-back rows
    commit together or not at all.
    """
    shipment = Shipment(company_id=company_id, order_source=order_source, order_id=order_id,
                        ship_date=ship_date or dt.datetime.now(dt.UTC), carrier=carrier,
                        service=service, packages=packages)
    try:
        db.session.add(shipment)
        db.session.flush()
        host.plugins.pm.hook.exchange_shipment_processed(host=host, shipment=ProcessedShipment(
            company_id=company_id, shipment_id=shipment.id, order_source=order_source,
            order_id=order_id, ship_date=shipment.ship_date, carrier=carrier, service=service,
            packages=[ShippedPackage(tracking_number=p["tracking_number"],
                                     items=list(p.get("items", []))) for p in packages],
        ))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return shipment
