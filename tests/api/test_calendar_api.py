"""The holiday schedule and working-day answers through the HTTP API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import chinese_calendar

from tests.factories import token_for
from zhengshu.core import clock

D = dt.date


def library_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(D(year, 6, 1))
    except NotImplementedError:
        return False
    return True


# The first year the library does not know: 2027 when these tests were written.
FUTURE = next(y for y in range(2027, 2100) if not library_knows(y))


def spring_festival(year: int) -> D:
    return min(d for d, n in clock.provisional_schedule(year).holidays.items() if n == "春节")


def official_csv(year: int = FUTURE) -> tuple[str, list[D], D]:
    """A notice for ``year``: 8 days of Spring Festival from 除夕 and a swapped Saturday after it."""
    start = spring_festival(year)
    days = [start + dt.timedelta(days=i) for i in range(8)]
    later = days[-1] + dt.timedelta(days=1)
    saturday = later + dt.timedelta(days=(5 - later.weekday()) % 7)
    lines = ["date,kind,name", f"{year}-01-01,holiday,元旦"]
    lines += [f"{d.isoformat()},休,春节" for d in days]
    lines.append(f"{saturday.isoformat()},班,春节")
    return "\n".join(lines) + "\n", days, saturday


def fields(response: Any) -> set[str]:
    return {e["field"] for e in response.json().get("errors", [])}


def test_anonymous_is_401(client, world) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/calendar/years").status_code == 401
    assert client.get("/api/v1/calendar/working-days", params={"start": "2026-01-05", "n": 3}).status_code == 401


def test_years_list_shows_sources(client, world) -> None:  # type: ignore[no-untyped-def]
    headers = token_for(client, "market_user")
    r = client.get("/api/v1/calendar/years", params={"count": "true"}, headers=headers)
    assert r.status_code == 200
    years = {y["year"]: y for y in r.json()["items"]}
    this_year = clock.today().year
    assert {this_year, this_year + 1} <= set(years)
    assert r.json()["total"] == len(years)
    for year, summary in years.items():
        assert summary["status"] == ("library" if library_knows(year) else "provisional")
    detail = client.get(f"/api/v1/calendar/years/{FUTURE}", headers=headers).json()
    assert detail["status"] == "provisional"
    assert {d["kind"] for d in detail["days"]} == {"holiday"}  # no swapped workdays before the notice


def test_2027_import_changes_working_days_and_provisional_flag(client, world) -> None:  # type: ignore[no-untyped-def]
    user = token_for(client, "market_officer")
    admin = token_for(client, "admin")
    text, days, saturday = official_csv()
    eve = days[0] - dt.timedelta(days=1)
    params = {"start": eve.isoformat(), "n": 5}

    before = client.get("/api/v1/calendar/working-days", params=params, headers=user)
    assert before.status_code == 200
    before_body = before.json()
    assert before_body["provisional"] is True
    expected_before = clock.add_working_days(eve, 5)
    assert before_body["due_on"] == expected_before.isoformat()

    refused = client.post(
        f"/api/v1/calendar/years/{FUTURE}/import",
        headers=user,
        files={"file": ("holidays.csv", text.encode(), "text/csv")},
    )
    assert refused.status_code == 403
    assert client.get("/api/v1/calendar/working-days", params=params, headers=user).json() == before_body

    imported = client.post(
        f"/api/v1/calendar/years/{FUTURE}/import",
        headers=admin,
        data={"source": "国办发明电〔2026〕7号"},
        files={"file": ("holidays.csv", text.encode(), "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["status"] == "official" and body["source"] == "国办发明电〔2026〕7号"
    assert len(body["days"]) == 10 and body["imported_by"] == "admin"

    after = client.get("/api/v1/calendar/working-days", params=params, headers=user).json()
    assert after["provisional"] is False
    # Every festival day is off now, and the swapped Saturday counts: walk the days by hand.
    off, extra = set(days) | {D(FUTURE, 1, 1)}, {saturday}
    d, left = eve, 5
    while left:
        d += dt.timedelta(days=1)
        if d in extra or (d.weekday() < 5 and d not in off):
            left -= 1
    assert after["due_on"] == d.isoformat()
    assert after["due_on"] != before_body["due_on"]

    years = {y["year"]: y for y in client.get("/api/v1/calendar/years", headers=user).json()["items"]}
    assert years[FUTURE]["status"] == "official"
    assert years[FUTURE]["holiday_count"] == 9 and years[FUTURE]["workday_count"] == 1

    between = client.get(
        "/api/v1/calendar/working-days/between",
        params={"start": eve.isoformat(), "end": saturday.isoformat()},
        headers=user,
    ).json()
    assert between["provisional"] is False
    assert between["working_days"] == clock.working_days_between(eve, saturday)
    assert between["working_days"] >= 1


def test_import_errors_name_the_line_and_change_nothing(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    text = f"date,kind,name\n{FUTURE}-01-01,holiday,元旦\n{FUTURE}-13-01,holiday,春节\n{FUTURE}-02-03,maybe,春节\n"
    r = client.post(
        f"/api/v1/calendar/years/{FUTURE}/import",
        headers=admin,
        files={"file": ("h.csv", text.encode(), "text/csv")},
    )
    assert r.status_code == 422
    assert fields(r) == {"line[3].date", "line[4].kind"}
    assert client.get(f"/api/v1/calendar/years/{FUTURE}", headers=admin).json()["status"] == "provisional"

    wrong_year = f"date,kind,name\n{FUTURE + 1}-01-01,holiday,元旦\n"
    r = client.post(
        f"/api/v1/calendar/years/{FUTURE}/import",
        headers=admin,
        files={"file": ("h.csv", wrong_year.encode(), "text/csv")},
    )
    assert r.status_code == 422 and fields(r) == {"days[0].date"}

    gbk = f"日期,类型,名称\n{FUTURE}-01-01,休,元旦\n".encode("gbk")
    r = client.post(
        f"/api/v1/calendar/years/{FUTURE}/import", headers=admin, files={"file": ("h.csv", gbk, "text/csv")}
    )
    assert r.status_code == 200 and r.json()["days"] == [{"date": f"{FUTURE}-01-01", "kind": "holiday", "name": "元旦"}]


def test_put_year_export_and_round_trip(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    body = {
        "year": FUTURE,
        "source": "测试",
        "days": [
            {"date": f"{FUTURE}-01-01", "kind": "holiday", "name": "元旦"},
            {"date": f"{FUTURE}-10-01", "kind": "holiday", "name": "国庆节"},
        ],
    }
    mismatch = client.put(f"/api/v1/calendar/years/{FUTURE + 1}", json=body, headers=admin)
    assert mismatch.status_code == 422 and fields(mismatch) == {"year"}
    weekday_workday = {**body, "days": [{"date": f"{FUTURE}-03-03", "kind": "workday", "name": "x"}]}
    if D(FUTURE, 3, 3).weekday() < 5:
        r = client.put(f"/api/v1/calendar/years/{FUTURE}", json=weekday_workday, headers=admin)
        assert r.status_code == 422 and fields(r) == {"days[0].kind"}
    r = client.put(f"/api/v1/calendar/years/{FUTURE}", json=body, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "official"

    exported = client.get(f"/api/v1/calendar/years/{FUTURE}/export", headers=token_for(client, "market_user"))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert f"holidays-{FUTURE}.csv" in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows == [
        ["date", "kind", "name"],
        [f"{FUTURE}-01-01", "holiday", "元旦"],
        [f"{FUTURE}-10-01", "holiday", "国庆节"],
    ]
    # What was exported imports back unchanged.
    again = client.post(
        f"/api/v1/calendar/years/{FUTURE}/import",
        headers=admin,
        files={"file": ("h.csv", exported.content, "text/csv")},
    )
    assert [d["date"] for d in again.json()["days"]] == [f"{FUTURE}-01-01", f"{FUTURE}-10-01"]


def test_put_and_delete_one_day(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    officer = token_for(client, "market_officer")
    day = D(FUTURE, 3, 8)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    assert (
        client.put(
            f"/api/v1/calendar/days/{day}", json={"kind": "holiday", "name": "测试"}, headers=officer
        ).status_code
        == 403
    )
    r = client.put(f"/api/v1/calendar/days/{day}", json={"kind": "holiday", "name": "测试"}, headers=admin)
    assert r.status_code == 200 and r.json() == {"date": day.isoformat(), "kind": "holiday", "name": "测试"}
    answer = client.get(
        "/api/v1/calendar/working-days", params={"start": day.isoformat(), "n": 0}, headers=officer
    ).json()
    assert answer["due_on"] != day.isoformat()  # no longer a working day
    # Editing one day of a provisional year makes it official, seeded with the provisional days.
    year = client.get(f"/api/v1/calendar/years/{FUTURE}", headers=officer).json()
    assert year["status"] == "official" and len(year["days"]) == len(clock.provisional_schedule(FUTURE).holidays) + 1

    assert client.delete(f"/api/v1/calendar/days/{day}", headers=officer).status_code == 403
    assert client.delete(f"/api/v1/calendar/days/{day}", headers=admin).status_code == 204
    answer = client.get(
        "/api/v1/calendar/working-days", params={"start": day.isoformat(), "n": 0}, headers=officer
    ).json()
    assert answer["due_on"] == day.isoformat()
    missing = client.delete(f"/api/v1/calendar/days/{day}", headers=admin)
    assert missing.status_code == 404 and missing.json()["code"] == "calendar.day_not_found"

    bad = client.put(f"/api/v1/calendar/days/{day}", json={"kind": "vacation", "name": ""}, headers=admin)
    assert bad.status_code == 422 and "kind" in fields(bad)


def test_working_days_validation(client, world) -> None:  # type: ignore[no-untyped-def]
    headers = token_for(client, "market_user")
    r = client.get("/api/v1/calendar/working-days", params={"start": "2026-02-30", "n": 1}, headers=headers)
    assert r.status_code == 422 and fields(r) == {"start"}
    r = client.get("/api/v1/calendar/working-days", params={"start": "2026-01-05", "n": -1}, headers=headers)
    assert r.status_code == 422 and fields(r) == {"n"}
    r = client.get("/api/v1/calendar/working-days", params={"start": "1800-01-05", "n": 1}, headers=headers)
    assert r.status_code == 422 and fields(r) == {"start"}
    r = client.get("/api/v1/calendar/working-days/between", params={"start": "2026-01-05"}, headers=headers)
    assert r.status_code == 422 and fields(r) == {"end"}
    assert client.get("/api/v1/calendar/years/1999", headers=headers).status_code == 422
    # 2026 is known to the library: 2026-09-30 (Wed) + 1 working day skips the National Day holiday.
    r = client.get("/api/v1/calendar/working-days", params={"start": "2026-09-30", "n": 1}, headers=headers)
    assert r.json()["provisional"] is False
    assert r.json()["due_on"] == clock.add_working_days(D(2026, 9, 30), 1).isoformat()
    assert D.fromisoformat(r.json()["due_on"]) > D(2026, 10, 7)
