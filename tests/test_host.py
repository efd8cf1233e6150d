"""The reference host: sign-in, My Companies buttons, the admin Plugins page."""

from __future__ import annotations

import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import Company, HostAudit, PluginCompany, db
from shipgear_exchange_plugin.models import AuditEvent

from .conftest import csrf_token_from, login


def test_wrong_password_says_so_without_saying_which_part(seeded):
    client = seeded.test_client()
    for username, password in (("admin", "nope"), ("nobody", "demo")):
        response = login(client, username, password)
        assert response.status_code == 401
        assert "Wrong username or password." in response.get_data(as_text=True)


def test_login_requires_the_csrf_token(make_app):
    from shipgear_exchange_plugin.devhost.seed import seed

    app = make_app()  # CSRF on
    with app.app_context():
        seed(app, companies=1, shipments=0)
    client = app.test_client()
    without = login(client, "admin")
    assert without.status_code == 400
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    ok = client.post("/login", data={"username": "admin", "password": "demo",
                                     "csrf_token": token})
    assert ok.status_code == 302


def test_login_never_redirects_to_another_site(seeded):
    client = seeded.test_client()
    response = client.post("/login?next=//evil.example/", data={"username": "admin",
                                                                 "password": "demo"})
    assert response.headers["Location"] == "/companies/"


def test_my_companies_shows_view_ecommerce_only_where_enabled(client_as, seeded):
    html = client_as("admin").get("/companies/").get_data(as_text=True)
    with seeded.app_context():
        companies = db.session.execute(sa.select(Company).order_by(Company.id)).scalars().all()
    acme, birch, cobalt = companies
    assert f'href="/companies/{acme.id}/ecommerce/"' in html
    assert f'href="/companies/{birch.id}/ecommerce/"' in html
    assert f'href="/companies/{cobalt.id}/ecommerce/"' not in html
    viewer_html = client_as("viewer").get("/companies/").get_data(as_text=True)
    assert "Birch" not in viewer_html and "View eCommerce" in viewer_html


def test_plugins_page_is_for_host_admins_only(client_as):
    assert client_as("viewer").get("/admin/plugins").status_code == 403
    assert client_as("support").post("/admin/plugins", data={}).status_code == 403
    assert "ShipGear eCommerce" in client_as("admin").get("/admin/plugins").get_data(as_text=True)


def test_admin_enables_and_disables_per_company_and_it_is_audited(client_as, seeded):
    with seeded.app_context():
        cobalt = db.session.execute(
            sa.select(Company).where(Company.name.startswith("Cobalt"))).scalar_one()
    admin = client_as("admin")
    url = f"/companies/{cobalt.id}/ecommerce/"
    assert admin.get(url).status_code == 404
    form = {"plugin_id": "shipgear-ecommerce", "company_id": str(cobalt.id)}
    assert admin.post("/admin/plugins", data={**form, "action": "enable"}).status_code == 302
    assert admin.get(url).status_code == 200
    assert admin.post("/admin/plugins", data={**form, "action": "disable"}).status_code == 302
    assert admin.get(url).status_code == 404
    with seeded.app_context():
        host_audit = db.session.execute(
            sa.select(HostAudit.action, HostAudit.username).order_by(HostAudit.id)).all()
        plugin_audit = db.session.execute(
            sa.select(AuditEvent.action).where(AuditEvent.company_id == cobalt.id)
            .order_by(AuditEvent.id)).scalars().all()
        assert db.session.get(PluginCompany, ("shipgear-ecommerce", cobalt.id)) is None
    assert host_audit == [("plugin.enable", "admin"), ("plugin.disable", "admin")]
    assert plugin_audit == ["plugin.enabled", "plugin.disabled"]
    page = admin.get("/admin/plugins").get_data(as_text=True)
    assert "plugin.disable" in page


def test_plugins_page_rejects_unknown_input_with_4xx(client_as):
    admin = client_as("admin")
    unknown_plugin = admin.post("/admin/plugins", data={"plugin_id": "nope", "action": "enable",
                                                        "company_id": "1"})
    assert unknown_plugin.status_code == 404
    bad_company = admin.post("/admin/plugins", data={
        "plugin_id": "shipgear-ecommerce", "action": "enable", "company_id": "x1"})
    assert bad_company.status_code == 400
    bad_action = admin.post("/admin/plugins", data={
        "plugin_id": "shipgear-ecommerce", "action": "explode", "company_id": "1"})
    assert bad_action.status_code == 400


def test_install_from_the_plugins_page_creates_the_plugin_tables(make_app):
    from shipgear_exchange_plugin.devhost.models import InstalledPlugin
    from shipgear_exchange_plugin.devhost.seed import ensure_users_and_companies

    app = make_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        db.session.query(InstalledPlugin).delete()
        ensure_users_and_companies(1)
        db.session.commit()
    client = app.test_client()
    login(client, "admin")
    assert ">Install</button>" in client.get("/admin/plugins").get_data(as_text=True)
    response = client.post("/admin/plugins", data={"plugin_id": "shipgear-ecommerce",
                                                   "action": "install"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(InstalledPlugin, "shipgear-ecommerce").version == "0.1.0"
        assert "sgx_writeback" in sa.inspect(db.engine).get_table_names()
    assert "Installed." in client.get("/admin/plugins").get_data(as_text=True)


def test_the_demo_backlog_comes_due_over_minutes_not_all_at_start(seeded):
    """What `make demo` does after seeding: the seeded rows waiting for a step come due
    one after another, so that new shipments are not queued behind all of them; Amazon's
    pending ones stay due and go out in a feed (one job per account)."""
    import datetime as dt

    import sqlalchemy as sa

    from shipgear_exchange_plugin.devhost.models import db
    from shipgear_exchange_plugin.devhost.seed import spread_backlog
    from shipgear_exchange_plugin.models import StoreAccount, Writeback

    now = dt.datetime.now(dt.UTC)
    amazon_pending = sa.and_(StoreAccount.platform == "amazon", Writeback.status == "pending")
    waiting = [Writeback.status.in_(["pending", "submitted"]), sa.not_(amazon_pending)]
    with seeded.app_context():
        def count(*where):
            return db.session.execute(sa.select(sa.func.count()).select_from(Writeback)
                                      .join(StoreAccount).where(*where)).scalar()

        before, feed_rows = count(*waiting), count(amazon_pending)
        assert before > 10 and feed_rows > 1
        assert spread_backlog(600, now=now) == before
        # Amazon's pending rows stay due, to go out as one feed per account
        assert count(amazon_pending, Writeback.next_attempt_at <= now) == feed_rows
        due = sorted(db.session.execute(sa.select(Writeback.next_attempt_at).join(StoreAccount)
                                        .where(*waiting)).scalars())
        assert sum(d <= now for d in due) == 1  # the first one now, the last ten minutes on
        assert now + dt.timedelta(seconds=540) < due[-1] < now + dt.timedelta(seconds=600)
        assert len(set(due)) == before
