"""Processing a shipment records one write-back per package, atomically with the shipment."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import Shipment, db
from shipgear_exchange_plugin.devhost.shipments import process_shipment
from shipgear_exchange_plugin.models import StoreAccount, Writeback
from shipgear_exchange_plugin.outbox import record_shipment


def _amazon_account(app) -> StoreAccount:
    return db.session.execute(sa.select(StoreAccount).where(
        StoreAccount.platform == "amazon").order_by(StoreAccount.id).limit(1)).scalar_one()


PACKAGES = [
    {"tracking_number": "1ZA", "items": [{"sku": "A", "order_item_id": "11", "quantity": 2}]},
    {"tracking_number": "1ZB", "items": [{"sku": "B", "order_item_id": "12", "quantity": 1},
                                         {"sku": "C", "order_item_id": "13", "quantity": 3}]},
]


def test_each_package_becomes_a_pending_writeback(seeded):
    host = seeded.extensions["exchange.host"]
    with seeded.app_context():
        account = _amazon_account(seeded)
        shipment = process_shipment(host, company_id=account.company_id,
                                    order_source=account.order_source, order_id="111-222-333",
                                    carrier="UPS", service="Ground", packages=PACKAGES)
        rows = db.session.execute(sa.select(Writeback).where(
            Writeback.shipment_id == shipment.id).order_by(Writeback.package_key)).scalars().all()
        assert [(r.tracking_number, r.shipped_quantity, r.status, r.error_count) for r in rows] == [
            ("1ZA", 2, "pending", 0), ("1ZB", 4, "pending", 0)]
        assert [r.package_key for r in rows] == [f"{shipment.id}01", f"{shipment.id}02"]
        assert all(r.account_id == account.id and r.next_attempt_at is not None for r in rows)


def test_processing_the_same_shipment_again_adds_no_duplicate(seeded):
    host = seeded.extensions["exchange.host"]
    with seeded.app_context():
        account = _amazon_account(seeded)
        shipment = process_shipment(host, company_id=account.company_id,
                                    order_source=account.order_source, order_id="1",
                                    carrier="UPS", service="Ground", packages=PACKAGES)
        from shipgear_exchange_plugin.host_contract import ProcessedShipment, ShippedPackage

        again = ProcessedShipment(
            company_id=account.company_id, shipment_id=shipment.id,
            order_source=account.order_source, order_id="1", ship_date=shipment.ship_date,
            carrier="UPS", service="Ground",
            packages=[ShippedPackage(p["tracking_number"], p["items"]) for p in PACKAGES])
        assert record_shipment(db.session, again) == []
        db.session.commit()
        count = db.session.execute(sa.select(sa.func.count()).select_from(Writeback).where(
            Writeback.shipment_id == shipment.id)).scalar()
        assert count == 2


def test_shipment_from_an_unconnected_source_records_nothing(seeded):
    host = seeded.extensions["exchange.host"]
    with seeded.app_context():
        before = db.session.execute(sa.select(sa.func.count()).select_from(Writeback)).scalar()
        process_shipment(host, company_id=1, order_source="phone-order", order_id="9",
                         carrier="UPS", service="Ground", packages=PACKAGES)
        after = db.session.execute(sa.select(sa.func.count()).select_from(Writeback)).scalar()
    assert after == before


def test_a_failing_hook_stores_neither_shipment_nor_writeback(seeded):
    host = seeded.extensions["exchange.host"]
    with seeded.app_context():
        account = _amazon_account(seeded)
        shipments_before = db.session.execute(
            sa.select(sa.func.count()).select_from(Shipment)).scalar()
        writebacks_before = db.session.execute(
            sa.select(sa.func.count()).select_from(Writeback)).scalar()
        broken = [{"tracking_number": "1ZC", "items": [{"sku": "A", "quantity": "two"}]}]
        with pytest.raises(ValueError):
            process_shipment(host, company_id=account.company_id,
                             order_source=account.order_source, order_id="2",
                             carrier="UPS", service="Ground", packages=broken)
        assert db.session.execute(
            sa.select(sa.func.count()).select_from(Shipment)).scalar() == shipments_before
        assert db.session.execute(
            sa.select(sa.func.count()).select_from(Writeback)).scalar() == writebacks_before
