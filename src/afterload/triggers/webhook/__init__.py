"""Estuary's Materialization Triggers: webhooks with a Handlebars payload, after commits.

Config (:mod:`.config`), rendering (:mod:`.template`), what one delivery covers
(:mod:`.window`), when to deliver (:mod:`.schedule`, pure) and how (:mod:`.delivery`).
"""
