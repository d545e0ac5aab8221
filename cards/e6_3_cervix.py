"""E6.3 - Second-trimester loss and suspected cervical insufficiency.

NVOG 2022 part E, module 6.3: after a second-trimester loss with suspected
cervical insufficiency, follow the cervix with serial ultrasound; consider a
cerclage in a singleton pregnancy after recurrent second-trimester loss (no
proven survival benefit).
When: a second-trimester loss or cervical insufficiency on record (any
clinical status: it is history) and a current pregnancy that is not ectopic.
Then: counsel.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import PatientFacts

from .common import when
from .i18n import Text, _
from .model import CardDraft, Indicator, RuleContext


def e6_3(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.pregnancy.ongoing:
        return
    history = [c for c in facts.conditions if c.concept == "second-trimester-loss"]
    if not history:
        return
    yield CardDraft(
        rec_id="E6.3",
        indicator=Indicator.INFO,
        summary=Text(_("Pregnant after a second-trimester loss: follow the cervix with serial ultrasound")),
        facts=(
            *(Text(_("Second-trimester loss or cervical insufficiency on %(date)s (%(source)s)"),
                   {"date": when(c.onset or c.recorded), "source": c.source}) for c in history),
            Text(_("Current pregnancy (%(sources)s)"), {"sources": ", ".join(facts.pregnancy.sources)}),
        ),
        advice=(
            Text(_("With suspected cervical insufficiency after a second-trimester loss, measure the cervix with serial ultrasound.")),
            Text(_("Consider a cerclage in a singleton pregnancy after recurrent second-trimester loss; a survival benefit is not proven.")),
        ),
    )
