"""The administrator-maintained holiday table and how it drives the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import chinese_calendar
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from zhengshu.calendar import service
from zhengshu.calendar.models import HolidayDay, HolidayYear
from zhengshu.calendar.schemas import HolidayDayIn, HolidayYearIn
from zhengshu.core import clock
from zhengshu.core.db import Base, make_engine
from zhengshu.core.errors import Forbidden, NotFound, ValidationFailed
from zhengshu.core.events import OutboxEvent
from zhengshu.security.actor import Actor, Role

D = dt.date


def library_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(D(year, 6, 1))
    except NotImplementedError:
        return False
    return True


FUTURE = next(y for y in range(2027, 2100) if not library_knows(y))

ADMIN = Actor(user_id="u1", username="admin1", display_name="管理员", org_id=None, roles=frozenset({Role.ADMIN}))
OFFICER = Actor(user_id="u2", username="zhuanyuan", display_name="专员", org_id="o1", roles=frozenset({Role.OFFICER}))


@pytest.fixture(autouse=True)
def _clean_clock() -> Iterator[None]:
    clock.clear_schedules()
    yield
    clock.clear_schedules()


@pytest.fixture
def factory() -> Iterator[sessionmaker[Session]]:
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s


def future_schedule(year: int = FUTURE) -> HolidayYearIn:
    """An 'official' notice for the provisional year: a 7-day Spring Festival with a swapped Saturday."""
    new_year = sorted(d for d, n in clock.provisional_schedule(year).holidays.items() if n == "春节")[0]
    days = [HolidayDayIn(date=new_year + dt.timedelta(days=i), kind="holiday", name="春节") for i in range(7)]
    later = new_year + dt.timedelta(days=10)
    saturday = later + dt.timedelta(days=(5 - later.weekday()) % 7)
    days.append(HolidayDayIn(date=saturday, kind="workday", name="春节"))
    days.append(HolidayDayIn(date=D(year, 1, 1), kind="holiday", name="元旦"))
    return HolidayYearIn(year=year, source="国办发明电〔2026〕1号", note="测试", days=days)


def events(session: Session) -> list[OutboxEvent]:
    return list(session.scalars(select(OutboxEvent).where(OutboxEvent.name == "calendar.schedule_changed")))


def fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[str]:
    return {e.field for e in exc.value.errors}


# --- import -----------------------------------------------------------------------------------------------


def test_import_official_schedule_changes_the_clock(session: Session) -> None:
    year_in = future_schedule()
    eve = year_in.days[0].date
    swapped = year_in.days[7].date
    assert clock.year_status(FUTURE) == "provisional"
    before = clock.add_working_days(eve, 5)
    assert not clock.is_working_day(swapped)

    row = service.import_schedule(session, actor=ADMIN, year_in=year_in)

    assert row.imported_by == "admin1" and row.source == "国办发明电〔2026〕1号"
    assert len(session.scalars(select(HolidayDay).where(HolidayDay.year == FUTURE)).all()) == 9
    assert clock.year_status(FUTURE) == "official"
    assert not clock.is_provisional(eve)
    assert clock.is_working_day(swapped)
    assert not clock.is_working_day(eve + dt.timedelta(days=6))
    after = clock.add_working_days(eve, 5)
    assert after > before
    assert clock.working_days_between(eve, after) == 5
    # Statutory days the notice leaves out are ordinary days now (1 Oct unless it falls on a weekend).
    assert clock.holiday_name(D(FUTURE, 10, 1)) is None
    assert [e.payload for e in events(session)] == [{"year": FUTURE}]
    read = service.get_year(session, year=FUTURE)
    assert read.status == "official" and len(read.days) == 9 and read.imported_by == "admin1"


def test_reimport_replaces_days_entirely(session: Session) -> None:
    service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
    replacement = HolidayYearIn(
        year=FUTURE,
        source="更正",
        days=[
            HolidayDayIn(date=D(FUTURE, 1, 1), kind="holiday", name="元旦"),
            HolidayDayIn(date=D(FUTURE, 3, 3), kind="holiday", name="测试"),
        ],
    )
    service.import_schedule(session, actor=ADMIN, year_in=replacement)
    stored = session.scalars(select(HolidayDay.date).where(HolidayDay.year == FUTURE)).all()
    assert sorted(stored) == [D(FUTURE, 1, 1), D(FUTURE, 3, 3)]
    assert clock.holiday_name(D(FUTURE, 3, 3)) == "测试"
    assert clock.installed_schedule(FUTURE) is not None
    assert D(FUTURE, 1, 2) not in clock.installed_schedule(FUTURE).holidays
    assert len(events(session)) == 2


def test_validation_errors_name_fields_and_change_nothing(session: Session) -> None:
    weekday = D(FUTURE, 3, 3)
    while weekday.weekday() >= 5:
        weekday += dt.timedelta(days=1)
    bad = HolidayYearIn(
        year=FUTURE,
        days=[
            HolidayDayIn(date=D(FUTURE, 1, 1), kind="holiday", name="元旦"),
            HolidayDayIn(date=D(FUTURE + 1, 1, 1), kind="holiday", name="元旦"),
            HolidayDayIn(date=D(FUTURE, 1, 1), kind="holiday", name="元旦"),
            HolidayDayIn(date=weekday, kind="workday", name="春节"),
            HolidayDayIn(date=D(FUTURE, 5, 1), kind="holiday", name="  "),
        ],
    )
    with pytest.raises(ValidationFailed) as exc:
        service.import_schedule(session, actor=ADMIN, year_in=bad)
    assert fields(exc) == {"days[1].date", "days[2].date", "days[3].kind", "days[4].name"}
    assert all(e.message for e in exc.value.errors)
    assert session.get(HolidayYear, FUTURE) is None
    assert clock.year_status(FUTURE) == "provisional"
    assert events(session) == []

    with pytest.raises(ValidationFailed) as exc:
        service.import_schedule(session, actor=ADMIN, year_in=HolidayYearIn(year=1800, days=[]))
    assert fields(exc) == {"year", "days"}


def test_non_admin_is_refused(session: Session) -> None:
    with pytest.raises(Forbidden) as exc:
        service.import_schedule(session, actor=OFFICER, year_in=future_schedule())
    assert exc.value.code == "calendar.forbidden"
    day = HolidayDayIn(date=D(FUTURE, 3, 3), kind="holiday", name="x")
    with pytest.raises(Forbidden):
        service.upsert_day(session, actor=OFFICER, year=FUTURE, day_in=day)
    with pytest.raises(Forbidden):
        service.delete_day(session, actor=OFFICER, day=D(FUTURE, 1, 1))
    with pytest.raises(Forbidden):
        service.delete_year(session, actor=OFFICER, year=FUTURE)
    assert session.get(HolidayYear, FUTURE) is None
    assert clock.year_status(FUTURE) == "provisional"


# --- single days and whole years --------------------------------------------------------------------------


def test_upsert_day_on_unstored_year_starts_from_provisional_days(session: Session) -> None:
    extra = D(FUTURE, 3, 3)
    while extra.weekday() >= 5:
        extra += dt.timedelta(days=1)
    provisional = clock.provisional_schedule(FUTURE)
    assert clock.is_working_day(extra)

    service.upsert_day(session, actor=ADMIN, year=FUTURE, day_in=HolidayDayIn(date=extra, kind="holiday", name="调整"))

    assert clock.year_status(FUTURE) == "official"
    assert clock.holiday_name(extra) == "调整"
    for day, name in provisional.holidays.items():  # the computed days were kept
        assert clock.holiday_name(day) == name
    read = service.get_year(session, year=FUTURE)
    assert read.status == "official" and len(read.days) == len(provisional.holidays) + 1

    # Change it into a different name, then delete it.
    service.upsert_day(session, actor=ADMIN, year=FUTURE, day_in=HolidayDayIn(date=extra, kind="holiday", name="改名"))
    assert clock.holiday_name(extra) == "改名"
    service.delete_day(session, actor=ADMIN, day=extra)
    assert clock.is_working_day(extra)
    assert session.get(HolidayDay, extra) is None
    assert len(events(session)) == 3
    with pytest.raises(NotFound):
        service.delete_day(session, actor=ADMIN, day=extra)


def test_upsert_day_validates(session: Session) -> None:
    monday = D(FUTURE, 3, 1)
    while monday.weekday() != 0:
        monday += dt.timedelta(days=1)
    with pytest.raises(ValidationFailed) as exc:
        service.upsert_day(
            session, actor=ADMIN, year=FUTURE, day_in=HolidayDayIn(date=monday, kind="workday", name="x")
        )
    assert fields(exc) == {"kind"}
    with pytest.raises(ValidationFailed) as exc:
        service.upsert_day(
            session,
            actor=ADMIN,
            year=FUTURE,
            day_in=HolidayDayIn(date=D(FUTURE + 1, 1, 1), kind="holiday", name=""),
        )
    assert fields(exc) == {"date", "name"}


def test_delete_year_restores_provisional(session: Session) -> None:
    service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
    service.delete_year(session, actor=ADMIN, year=FUTURE)
    assert clock.year_status(FUTURE) == "provisional"
    assert session.scalars(select(HolidayDay)).all() == []
    assert [e.payload["year"] for e in events(session)] == [FUTURE, FUTURE]
    with pytest.raises(NotFound):
        service.delete_year(session, actor=ADMIN, year=FUTURE)


def test_rollback_puts_the_clock_back(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
        assert clock.year_status(FUTURE) == "official"
        session.rollback()
    assert clock.year_status(FUTURE) == "provisional"


def test_only_a_real_rollback_puts_the_clock_back(factory: sessionmaker[Session]) -> None:
    """A savepoint released inside a transaction that commits keeps its change; one rolled back undoes only its
    own; two changes of a year rolled back together end at the state before both."""
    with factory() as session:
        with session.begin_nested():
            service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
        session.commit()
    assert clock.year_status(FUTURE) == "official"
    with factory() as session:
        service.delete_year(session, actor=ADMIN, year=FUTURE)
        assert clock.year_status(FUTURE) == "provisional"
        nested = session.begin_nested()
        service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
        nested.rollback()
        assert clock.year_status(FUTURE) == "provisional"  # back to the outer transaction's state
        service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
        session.rollback()
    assert clock.year_status(FUTURE) == "official"  # before the whole transaction


def test_load_schedules_installs_stored_years(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
        session.commit()
    clock.clear_schedules()
    assert clock.year_status(FUTURE) == "provisional"
    with factory() as session:
        assert service.load_schedules(session) == 1
    assert clock.year_status(FUTURE) == "official"
    assert clock.is_working_day(future_schedule().days[7].date)


# --- reading ----------------------------------------------------------------------------------------------


def test_get_year_shows_library_and_provisional_days(session: Session) -> None:
    lib = service.get_year(session, year=2026)
    assert lib.status == "library"
    by_date = {d.date: d for d in lib.days}
    assert by_date[D(2026, 10, 10)].kind == "workday"
    assert by_date[D(2026, 10, 1)].kind == "holiday" and by_date[D(2026, 10, 1)].name == "国庆节"
    assert {d for d in by_date if by_date[d].kind == "holiday"} == {
        d for d in chinese_calendar.holidays if d.year == 2026
    }

    prov = service.get_year(session, year=FUTURE)
    assert prov.status == "provisional" and prov.imported_at is None
    assert [d.date for d in prov.days] == sorted(clock.provisional_schedule(FUTURE).holidays)
    assert all(d.kind == "holiday" for d in prov.days)


def test_list_years_covers_stored_current_and_next(session: Session) -> None:
    service.import_schedule(session, actor=ADMIN, year_in=future_schedule(FUTURE + 5))
    summaries = {s.year: s for s in service.list_years(session)}
    this_year = clock.today().year
    assert {this_year, this_year + 1, FUTURE + 5} <= set(summaries)
    stored = summaries[FUTURE + 5]
    assert (stored.status, stored.holiday_count, stored.workday_count) == ("official", 8, 1)
    assert summaries[this_year].status == clock.year_status(this_year)


# --- CSV --------------------------------------------------------------------------------------------------


def test_parse_csv_good() -> None:
    text = "\ufeffdate,kind,name\r\n2027-02-05,休,春节\r\n\r\n2027/2/20,班,春节\r\n20271001,holiday,国庆节\r\n"
    days = service.parse_schedule_csv(text)
    assert [(d.date, d.kind, d.name) for d in days] == [
        (D(2027, 2, 5), "holiday", "春节"),
        (D(2027, 2, 20), "workday", "春节"),
        (D(2027, 10, 1), "holiday", "国庆节"),
    ]
    assert service.parse_schedule_csv("日期,类型,名称\n2027-01-01,休,元旦\n")[0].name == "元旦"


def test_parse_csv_bad_rows_name_lines() -> None:
    text = (
        "date,kind,name\n"
        "2027-01-01,holiday,元旦\n"
        "2027-02-30,holiday,春节\n"  # line 3: no such date
        "2027-02-06,rest,春节\n"  # line 4: unknown kind
        "2027-02-07,休,\n"  # line 5: no name
        "2027-02-08,休\n"  # line 6: two columns
        "2027-01-01,休,元旦\n"  # line 7: duplicate of line 2
    )
    with pytest.raises(ValidationFailed) as exc:
        service.parse_schedule_csv(text)
    assert fields(exc) == {"line[3].date", "line[4].kind", "line[5].name", "line[6]", "line[7].date"}
    messages = {e.field: e.message for e in exc.value.errors}
    assert "第7行" in messages["line[7].date"] and "第2行" in messages["line[7].date"]

    with pytest.raises(ValidationFailed) as exc:
        service.parse_schedule_csv("day,type\n2027-01-01,休\n")
    assert fields(exc) == {"line[1]"}
    with pytest.raises(ValidationFailed):
        service.parse_schedule_csv("")
    with pytest.raises(ValidationFailed):
        service.parse_schedule_csv("date,kind,name\n")


def test_csv_round_trip_through_import(session: Session) -> None:
    service.import_schedule(session, actor=ADMIN, year_in=future_schedule())
    text = service.export_csv(session, year=FUTURE)
    assert text.splitlines()[0] == "date,kind,name"
    days = service.parse_schedule_csv(text)
    assert sorted((d.date, d.kind, d.name) for d in days) == sorted(
        (d.date, d.kind, d.name) for d in future_schedule().days
    )
    # The library's 2026 data exports and re-imports as an official year with the same answers.
    days_2026 = service.parse_schedule_csv(service.export_csv(session, year=2026))
    service.import_schedule(session, actor=ADMIN, year_in=HolidayYearIn(year=2026, days=days_2026))
    assert clock.year_status(2026) == "official"
    assert clock.add_working_days(D(2026, 9, 30), 5) == D(2026, 10, 13)
