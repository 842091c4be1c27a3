from pinworks_escalation.queue import priority_for


def test_people_at_risk_come_before_routine_uncertainty() -> None:
    routine = priority_for(["routed to a person by rule unsure-to-person"], {})
    threatened = priority_for(["customer state: legal threat ('lawyer')"], {})
    vip = priority_for(["routed to a person by rule unsure-to-person"], {"tier": "VIP"})
    assert threatened > vip > routine
    assert priority_for(["fraud", "vulnerability", "negative sentiment"], {"tier": "vip"}) == 100
