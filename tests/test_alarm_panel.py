"""The wall's alarm panel (dashboard/alarm_panel.py) as each role sees it, worded in the page's language."""
from datetime import datetime

from flask import Flask, g

from core.settings import load_config
from dashboard import alarm_panel
from dashboard.shell import duration
from query import store
from query.alarms import Alarm

AS_OF = datetime.fromisoformat("2026-11-20T15:00:00+08:00")


def test_only_a_role_that_may_acknowledge_gets_the_acknowledge_button(loaded_city):
    settings, _, _ = loaded_city
    config = load_config(settings)
    store.init(config, None)
    alarm = Alarm("t:1", "urgent_incident", "critical", "x", "D01", 30.0, 120.0, AS_OF, {"category": "noise"})

    def buttons(username):
        with Flask(__name__).test_request_context("/wall"):
            g.cityops_user = config.users.user(username)
            row = alarm_panel.panel("en", AS_OF, [(alarm, None)])[0]
        return [c for c in row.children if c is not None and getattr(c, "className", "") == "alarm-ack"]

    assert len(buttons("operator")) == 1 and len(buttons("admin")) == 1
    assert buttons("analyst") == [] and buttons("reports") == []


def test_ages_are_worded_in_the_pages_language(loaded_city):
    settings, _, _ = loaded_city
    store.init(load_config(settings), None)
    assert [duration("en", s) for s in (59, 61 * 60, 3 * 86400)] == ["0 min", "1 h 01 min", "3 d"]
    assert [duration("zh", s, compact=True) for s in (90 * 60, 150 * 60)] == ["90 分钟", "2 小时"]
    alarm = Alarm("t:2", "urgent_incident", "critical", "x", "D01", 30.0, 120.0, AS_OF, {"category": "noise"})
    with Flask(__name__).test_request_context("/wall"):
        row = alarm_panel.panel("zh", AS_OF.replace(minute=7), [(alarm, None)])[0]
    assert row.children[0].children[1].children == "7 分钟"
