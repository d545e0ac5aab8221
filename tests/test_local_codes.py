"""Recognising what hospitals record (issue 16 item 5): uterine imaging (D6) under SNOMED CT
ultrasound and MRI codes, local codes through RPL_EXTRA_VALUESETS_DIR, and non-visualised
pregnancy losses (biochemical, resolved PUL) counted as losses once the hospital names its codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service import create_app
from tests.builders import LOINC, SNOMED, carried_ids, condition, hook_request, losses, miscarriage, prefetch
from tests.conftest import TODAY, make_settings

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
LOCAL = "http://hospital.example.org/fhir/CodeSystem/radiology"


def procedure(system: str, code: str, status: str = "completed", rtype: str = "Procedure") -> dict:
    resource = {"resourceType": rtype, "id": f"{rtype.lower()}-{code}", "status": status if rtype == "Procedure" else "final",
                "code": {"coding": [{"system": system, "code": code}]}, "subject": {"reference": "Patient/pat-1"}}
    resource["performedDateTime" if rtype == "Procedure" else "effectiveDateTime"] = "2026-05-01"
    return resource


def topics(cds, *resources):
    return cds.topics("patient-view", hook_request("patient-view", data=prefetch(losses(2), *resources)))


@pytest.mark.parametrize("system,code", [
    (SNOMED, "429915000"),  # transvaginal ultrasonography of pelvis
    (SNOMED, "24848001"),  # pelvic echography
    (SNOMED, "1381843006"),  # transabdominal ultrasonography of pelvis
    (SNOMED, "396161000119106"),  # MRI pelvis without contrast
    (SNOMED, "433138001"),  # MRI pelvis with contrast
    (SNOMED, "233545006"),  # hysteroscopy
    (LOINC, "24677-7"),  # US pelvis transvaginal
])
def test_recorded_uterine_imaging_silences_d6(cds, system, code):
    assert "D6" in topics(cds)
    assert "D6" not in topics(cds, procedure(system, code))


def test_an_imaging_report_counts_too(cds):
    assert "D6" not in topics(cds, procedure(SNOMED, "429915000", rtype="DiagnosticReport"))


def test_an_obstetric_scan_is_no_assessment_of_the_uterine_anatomy(cds):
    assert "D6" in topics(cds, procedure(SNOMED, "55052008"))  # diagnostic ultrasound of gravid uterus


def test_a_procedure_not_done_does_not_count(cds):
    assert "D6" in topics(cds, procedure(SNOMED, "429915000", status="not-done"))


def readme_local_codes_example() -> dict:
    section = README.split("### Local codes", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))


def call(tmp_path, extra_dir, *resources):
    app = create_app(make_settings(tmp_path, extra_valuesets_dir=extra_dir), today=lambda: TODAY)
    body = hook_request("patient-view", data=prefetch(*resources))
    cards = app.test_client().post("/cds-services/rpl-patient-view", json=body).get_json()["cards"]
    app.extensions["rpl"].close()
    return [rec_id for c in cards for rec_id in carried_ids(c)]


def test_a_local_3d_ultrasound_code_silences_d6_through_the_readme_example(tmp_path):
    local_3d = procedure(LOCAL, "ECHO-3D-UT")
    assert "D6" in call(tmp_path, None, losses(2), local_3d)
    folder = tmp_path / "valuesets"
    folder.mkdir()
    (folder / "uterine-imaging-local.json").write_text(json.dumps(readme_local_codes_example()))
    assert "D6" not in call(tmp_path, folder, losses(2), local_3d)


def test_a_biochemical_loss_counts_once_the_hospital_names_its_code(tmp_path):
    biochemical = condition("http://hospital.example.org/fhir/CodeSystem/diagnoses", "BIOCHEM-LOSS",
                            onset="2026-03-01", clinical="resolved", display="Biochemische zwangerschap")
    record = (miscarriage("2026-07-01"), biochemical)
    assert "E1" not in call(tmp_path, None, *record)  # one loss: no RPL
    folder = tmp_path / "valuesets"
    folder.mkdir()
    (folder / "losses.json").write_text(json.dumps({
        "resourceType": "ValueSet", "url": "http://rpl-cds.org/fhir/ValueSet/non-visualised-pregnancy-loss",
        "status": "active", "compose": {"include": [{"system": "http://hospital.example.org/fhir/CodeSystem/diagnoses",
                                                     "concept": [{"code": "BIOCHEM-LOSS"}]}]}}))
    assert "E1" in call(tmp_path, folder, *record)  # two losses: RPL


def test_a_non_visualised_loss_and_a_miscarriage_of_the_same_event_count_once(tmp_path):
    folder = tmp_path / "valuesets"
    folder.mkdir()
    (folder / "losses.json").write_text(json.dumps({
        "resourceType": "ValueSet", "url": "http://rpl-cds.org/fhir/ValueSet/non-visualised-pregnancy-loss",
        "status": "active", "compose": {"include": [{"system": "http://hospital.example.org/x", "concept": [{"code": "PUL-R"}]}]}}))
    same_event = condition("http://hospital.example.org/x", "PUL-R", onset="2026-07-05", clinical="resolved")
    assert "E1" not in call(tmp_path, folder, miscarriage("2026-07-01"), same_event)
