"""FHIR R4 resources and terminology -> clinical facts (no Flask, no HTTP)."""
