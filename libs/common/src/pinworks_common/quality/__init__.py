"""The live estimate of automation's wrong-answer rate and the tightening it drives.

`estimate`: pure functions (tallies -> estimates with a confidence bound -> tighten or not).
`store`: the Postgres side (quality reviews, tightened scopes, their events).
"""
