"""Forms of the plugin's pages (WTForms: validation and messages in one place)."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    Form,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectMultipleField,
    StringField,
    URLField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    URL,
    DataRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from ..connectors import connector_class
from ..models import WritebackStatus
from ..orders import MAX_PAGE_SIZE, parse_sort, valid_id
from ..store_accounts import option_problem

MAX_BULK = 1000
STATUS_CHOICES = [SelectChoice(s.value, s.value.capitalize()) for s in WritebackStatus]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def process_formdata(self, valuelist):
        # Accept both ?status=failed&status=pending and ?status=failed,pending.
        values = [v.strip() for raw in valuelist for v in raw.split(",") if v.strip()]
        super().process_formdata(values)


class AccountsField(SelectMultipleField):
    """Account ids; "All accounts" sends an empty value, which means no account filter."""

    def process_formdata(self, valuelist):
        values = [v for raw in valuelist for v in raw.split(",") if v.strip()]
        try:
            self.data = [int(v) for v in values]
        except ValueError:
            self.data = []
            raise ValueError("Choose accounts by their ids (whole numbers).") from None


class OrderFilterForm(Form):
    """The grid's filters, sort and page (GET, so no CSRF). ``account`` choices are the
    company's accounts, set by the view: another company's account id is refused."""

    status = MultiCheckboxField("Status", choices=STATUS_CHOICES, validate_choice=True)
    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])
    account = AccountsField("Account", coerce=int, validate_choice=True)
    q = StringField("Search", validators=[Optional(), Length(
        max=100, message="Search for at most 100 characters (an order id or a tracking "
                         "number, or their beginning).")])
    sort = StringField("Sort")
    after = StringField("Page")
    limit = IntegerField("Rows", validators=[Optional(), NumberRange(
        min=1, max=MAX_PAGE_SIZE, message=f"Ask for 1 to {MAX_PAGE_SIZE} rows.")])

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("'To' is before 'From'.")

    def validate_sort(self, field):
        try:
            field.data = parse_sort(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_q(self, field):
        if field.data and any(ord(c) < 32 for c in field.data):
            raise ValidationError("Search text cannot hold control characters.")


class CredentialsForm(FlaskForm):
    """New credentials for one store account. Fields are added per platform; nothing is
    ever pre-filled: stored secrets are not sent back to the browser."""


def _credential_fields(field_names: tuple[str, ...], required: bool = True,
                       description: str = "",
                       help_texts: dict[str, str] | None = None) -> dict[str, PasswordField]:
    """Password fields; each described by where to find it (``help_texts``), then
    ``description``."""
    def described(name: str) -> str:
        return " ".join(t for t in ((help_texts or {}).get(name, ""), description) if t)

    return {name: PasswordField(_label(name), description=described(name), validators=[
        DataRequired() if required else Optional(), Length(max=4000)])
        for name in field_names}


def _label(name: str) -> str:
    """``client_id`` -> "Client ID", ``access_token`` -> "Access token"."""
    words = name.split("_")
    return " ".join([words[0].capitalize()] + ["ID" if w == "id" else w for w in words[1:]])


def credentials_form(field_names: tuple[str, ...], formdata=None) -> CredentialsForm:
    form_class = type("PlatformCredentialsForm", (CredentialsForm,),
                      _credential_fields(field_names))
    return form_class(formdata=formdata)


def _printable(form, field):
    if field.data and any(ord(c) < 32 or ord(c) == 127 for c in field.data):
        raise ValidationError("This field cannot hold control characters.")


class AccountForm(FlaskForm):
    """A store account's settings. The platform's options (and, when connecting, its
    credentials) are added by :func:`account_form`; the address and the order source are
    checked again by the core (:mod:`..store_accounts`), which knows the other accounts."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120), _printable])
    order_source = StringField("Order source", validators=[
        DataRequired(), Length(max=120), _printable],
        description="Exactly as the shipping application names the store the orders came "
                    "from (its order source): the shipments of that source are written back "
                    "to this account.")
    endpoint = StringField("API address", validators=[
        DataRequired(), Length(max=500), _printable])


def account_form(platform: str, label: str, *, connecting: bool, formdata=None,
                 data: dict | None = None) -> AccountForm:
    """The form for one platform: its options and credentials (required when
    ``connecting``; when editing, only if the address moves to another host), and an
    Enabled box when editing."""
    connector = connector_class(platform)
    fields: dict = {}
    for option in connector.option_fields:
        def check(form, field, name=option.name):
            problem = option_problem(platform, name, (field.data or "").strip())
            if problem:
                raise ValidationError(problem)
        required = [DataRequired()] if option.required else []
        fields[option.name] = StringField(option.label, description=option.help, validators=[
            *required, Length(max=100), _printable, check])
    if not connecting:
        fields["version"] = HiddenField()  # settings_version when the form was loaded
        fields["enabled"] = BooleanField("Enabled", description=(
            "Off: no write-back, health check or product sync goes to this store; its "
            "write-backs wait and resume when it is on again, and it leaves Connection "
            "Status meanwhile."))
    fields.update(_credential_fields(
        connector.credential_fields, required=connecting, help_texts=connector.credential_help,
        description="" if connecting else "Leave empty to keep the stored one. Needed again "
                                           "when the address moves to another host."))
    form_class = type("PlatformAccountForm", (AccountForm,), fields)
    form = form_class(formdata=formdata, data=data)
    form.name.description = f"How the account is shown in the pages, e.g. 'Main {label} store'."
    form.endpoint.description = f"For example {connector.endpoint_example}"
    form.option_names = [option.name for option in connector.option_fields]
    form.credential_names = list(connector.credential_fields)
    form.connecting = connecting
    return form


class ConfirmForm(FlaskForm):
    """A bare POST button: CSRF token only."""


class MarkConfirmedForm(FlaskForm):
    """Support confirmed the shipment on the store by hand; the note goes to the audit."""

    note = StringField("Note", validators=[Optional(), Length(max=500)])


class BulkRetryForm(FlaskForm):
    """Retry selected: the grid's checked write-back ids."""

    ids = StringField("ids", validators=[DataRequired(message="Select at least one order.")])

    def validate_ids(self, field):
        values = [v.strip() for raw in request.form.getlist("ids") for v in raw.split(",")
                  if v.strip()]
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if not values or not all(v.isascii() and v.isdigit() for v in values):
            raise ValidationError("Select orders by their ids (whole numbers).")
        if len(values) > MAX_BULK:
            raise ValidationError(f"Retry at most {MAX_BULK} orders at once.")
        # An id no row can have (0, or past the id column's range) is simply not one of
        # this company's, like another company's id: left out, not sent to the database.
        self.id_list = sorted({int(v) for v in values if len(v.lstrip("0")) <= 10
                              and valid_id(int(v))})


class AlertsForm(FlaskForm):
    """Where Connection Status changes are posted (a company setting)."""

    alert_webhook_url = URLField("Webhook URL", validators=[
        Optional(), Length(max=500),
        URL(require_tld=False, message="Enter a full http:// or https:// address.")])

    def validate_alert_webhook_url(self, field):
        if field.data and not field.data.lower().startswith(("http://", "https://")):
            raise ValidationError("Enter a full http:// or https:// address.")
