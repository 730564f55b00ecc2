"""Forms (Flask-WTF): validation and a CSRF token for each."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from scenery.subscriptions import LISTINGS, TIME_FILTERS


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ActionForm(FlaskForm):
    """A state-changing button or set of buttons: only the CSRF token is validated here."""


class TitleForm(FlaskForm):
    title = StringField("Title", validators=[Optional(), Length(max=300)])


class SubscriptionForm(FlaskForm):
    subreddit = StringField(
        "Subreddit",
        validators=[DataRequired(), Regexp(r"^(r/)?[A-Za-z0-9_]{2,21}$", message="not a name")],
    )
    listing = SelectField("Listing", choices=[SelectChoice(x) for x in LISTINGS], default="new")
    time_filter = SelectField(
        "Time window (top)",
        choices=[SelectChoice("", "-"), *(SelectChoice(x) for x in TIME_FILTERS)],
        default="",
    )
    post_limit = IntegerField("Posts", default=100, validators=[NumberRange(1, 1000)])
    interval_minutes = IntegerField(
        "Every (minutes, 0 = every scheduler tick)",
        default=60,
        validators=[NumberRange(0, 60 * 24 * 28)],  # up to four weeks, as the CLI allows
    )
    paused = BooleanField("Paused")
