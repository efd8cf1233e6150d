"""Job functions the worker tests enqueue: they need the app context and the database."""

from __future__ import annotations

import sqlalchemy as sa

from shipgear_exchange_plugin.host_contract import get_host
from shipgear_exchange_plugin.models import Writeback


def count_writebacks(company_id: int) -> int:
    session = get_host().db.session
    return session.execute(sa.select(sa.func.count()).select_from(Writeback).where(
        Writeback.company_id == company_id)).scalar_one()
