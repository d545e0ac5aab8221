"""Cards printed readably in a terminal (for `rpl-cds demo` and `rpl-cds call`)."""

from __future__ import annotations

import textwrap
from typing import Any

COLORS = {"critical": "\033[1;31m", "warning": "\033[1;33m", "info": "\033[1;36m"}
RESET = "\033[0m"


def print_cards(response: dict[str, Any], color: bool = True, out=print) -> None:
    cards = response.get("cards", [])
    if not cards:
        out("(no cards)")
    for card in cards:
        indicator = card.get("indicator", "info")
        topic = card.get("source", {}).get("topic", {}).get("code", "?")
        head = f"[{indicator.upper()}] {topic}: {card.get('summary', '')}"
        out(f"{COLORS.get(indicator, '')}{head}{RESET}" if color else head)
        for line in (card.get("detail") or "").splitlines():
            # ids and URLs (rpl-demo-pregnant-bleeding, urn:uuid:...) stay whole, to be copied
            for wrapped in textwrap.wrap(line.replace("\\", ""), width=100, break_on_hyphens=False,
                                         break_long_words=False) or [""]:
                out(f"    {wrapped}")
        for suggestion in card.get("suggestions", []):
            out(f"  -> suggestion: {suggestion.get('label')}")
            for action in suggestion.get("actions", []):
                target = action.get("resourceId") or action.get("resource", {}).get("resourceType", "")
                out(f"       {action.get('type')} {target}: {action.get('description')}")
        reasons = [r.get("display") for r in card.get("overrideReasons", [])]
        if reasons:
            out(f"  override reasons: {'; '.join(reasons)}")
        out("")
