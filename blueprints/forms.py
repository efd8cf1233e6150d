"""Forms of the plugin's pages (WTForms: validation and messages in one place)."""

from __future__ import annotations

from wtforms import DateField, Form, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..models import WritebackStatus

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
