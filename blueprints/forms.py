"""Forms of the plugin's pages (WTForms: validation and messages in one place)."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms import DateField, Form, PasswordField, SelectMultipleField, StringField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..models import WritebackStatus

MAX_BULK = 1000
STATUS_CHOICES = [SelectChoice(s.value, s.value.capitalize()) for s in WritebackStatus]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def process_formdata(self, valuelist):
        # Accept both ?status=failed&status=pending and ?status=failed,pending.
        values = [v.strip() for raw in valuelist for v in raw.split(",") if v.strip()]
        super().process_formdata(values)


class OrderFilterForm(Form):
    """The grid's filters (GET, so no CSRF)."""

    status = MultiCheckboxField("Status", choices=STATUS_CHOICES, validate_choice=True)
    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("'To' is before 'From'.")


class CredentialsForm(FlaskForm):
    """New credentials for one store account. Fields are added per platform; nothing is
    ever pre-filled: stored secrets are not sent back to the browser."""


def credentials_form(field_names: tuple[str, ...], formdata=None) -> CredentialsForm:
    fields = {
        name: PasswordField(name.replace("_", " ").capitalize(),
                            validators=[DataRequired(), Length(max=4000)])
        for name in field_names
    }
    form_class = type("PlatformCredentialsForm", (CredentialsForm,), fields)
    return form_class(formdata=formdata)


class ConfirmForm(FlaskForm):
    """A bare POST button: CSRF token only."""


class MarkConfirmedForm(FlaskForm):
    """Support confirmed the shipment on the store by hand; the note goes to the audit."""

    note = StringField("Note", validators=[Optional(), Length(max=500)])


class BulkRetryForm(FlaskForm):
    """Retry selected: the grid's checked write-back ids."""

    ids = StringField("ids", validators=[DataRequired(message="Select at least one order.")])

    def validate_ids(self, field):
        values = [v for raw in request.form.getlist("ids") for v in raw.split(",") if v.strip()]
        if not values or not all(v.strip().isdigit() for v in values):
            raise ValidationError("Select orders by their ids (whole numbers).")
        if len(values) > MAX_BULK:
            raise ValidationError(f"Retry at most {MAX_BULK} orders at once.")
        self.id_list = sorted({int(v) for v in values})


class AlertsForm(FlaskForm):
    """Where Connection Status changes are posted (a company setting)."""

    alert_webhook_url = URLField("Webhook URL", validators=[
        Optional(), Length(max=500),
        URL(require_tld=False, message="Enter a full http:// or https:// address.")])

    def validate_alert_webhook_url(self, field):
        if field.data and not field.data.lower().startswith(("http://", "https://")):
            raise ValidationError("Enter a full http:// or https:// address.")
