"""C lifestyle card: personalised lines (age band, smoking, BMI) come first."""

from __future__ import annotations

import pytest

from tests.builders import SNOMED, hook_request, losses, observation, prefetch


def c_card(cds, *resources, birth="1990-05-01"):
    body = hook_request("patient-view", data=prefetch(losses(2), *resources, birth=birth))
    return next(c for c in cds.cards("patient-view", body) if c["source"]["topic"]["code"] == "C")


@pytest.mark.parametrize(
    "birth,band",
    [("2008-01-01", "below the age band"), ("1996-01-01", "in the age band with the lowest risk"),
     ("1989-01-01", "past the age band"), ("1984-01-01", "rises quickly from 40")],
)
def test_age_band(cds, birth, band):
    detail = c_card(cds, birth=birth)["detail"]
    assert band in detail.split("C1.1 Age:")[0]  # personal line before the general points


def test_current_smoker_gets_the_stronger_wording_first(cds):
    card = c_card(cds, observation("72166-2", concept=(SNOMED, "449868002")))
    assert "stop smoking" in card["summary"]
    assert card["detail"].index("She smokes") < card["detail"].index("C2.2 Aim")


def test_bmi_outside_the_healthy_range_is_named(cds):
    assert "BMI 31.2 is outside" in c_card(cds, observation("39156-5", value=31.2, unit="kg/m2"))["detail"]
    assert "is outside" not in c_card(cds, observation("39156-5", value=22.0, unit="kg/m2"))["detail"]


def test_old_smoking_status_and_bmi_are_not_personal_lines(cds):
    card = c_card(cds, observation("72166-2", concept=(SNOMED, "449868002"), date="2020-01-01"),
                  observation("39156-5", value=31.2, unit="kg/m2", date="2020-01-01"))
    assert "She smokes" not in card["detail"] and "is outside" not in card["detail"]
