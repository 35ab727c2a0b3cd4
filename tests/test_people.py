"""People's names and colours, stored per canvas (server/store/sql.py `PeopleStore`, server/people.py): cleaned,
bounded per canvas and per token, and rate-limited, so that a hostile client cannot grow the table or flood the
others with renames. On SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from server.core.events import CanvasCreated, Event
from server.people import PeopleBook, PeopleLimits, clean_colour, clean_name
from server.store.base import AppendRequest
from server.store.sql import PEOPLE_PER_CANVAS, PEOPLE_PER_TOKEN, PeopleStore, Person, SQLEventStore


def make_canvas(store: SQLEventStore, canvas_id: str = "c1") -> str:
    store.append([AppendRequest(canvas_id, 0, [Event(canvas_id, 1, f"{canvas_id}-1", CanvasCreated("P"), "a", None,
                                                     1.0)])])  # fmt: skip
    return canvas_id


@pytest.fixture
def people(store: SQLEventStore) -> PeopleStore:
    make_canvas(store)
    return PeopleStore.beside(store)


def test_a_person_is_new_once_then_news_only_when_renamed(people):
    ada = Person("tA.u-1", "Ada", "#e4572e", 100.0)
    assert people.record("c1", ada, "A") is True
    assert people.record("c1", ada, "A") is False  # seen again, nothing to tell
    assert people.record("c1", Person("tA.u-1", "Ada L", "#e4572e", 101.0), "A") is True
    assert people.record("c1", Person("tA.u-1", "Ada L", "#17bebb", 102.0), "A") is True  # a colour is news too
    assert people.people("c1") == [Person("tA.u-1", "Ada L", "#17bebb", 102.0)]
    assert people.person("c1", "tA.u-1") == Person("tA.u-1", "Ada L", "#17bebb", 102.0)
    assert people.people("elsewhere") == []


def test_a_rate_limited_change_moves_only_last_seen(people):
    people.record("c1", Person("tA.u-1", "Ada", "#e4572e", 100.0), "A")
    assert people.record("c1", Person("tA.u-1", "Mallory", "#000000", 500.0), "A", change=False) is False
    assert people.people("c1") == [Person("tA.u-1", "Ada", "#e4572e", 500.0)]
    assert people.record("c1", Person("tB.x", "New", "#000000", 1.0), "B", change=False) is False
    assert [p.user for p in people.people("c1")] == ["tA.u-1"]  # a limited newcomer is not stored


def test_people_come_most_recently_seen_first(people):
    for i, seen in enumerate([5.0, 9.0, 1.0]):
        people.record("c1", Person(f"tA.u-{i}", f"P{i}", "#111111", seen), "A")
    assert [p.name for p in people.people("c1")] == ["P1", "P0", "P2"]


def test_a_canvas_keeps_its_most_recently_seen_people_and_one_link_cannot_push_the_others_out(people):
    people.record("c1", Person("tOwner.ada", "Ada", "#e4572e", 0.5), "Owner")  # seen long ago
    for i in range(PEOPLE_PER_TOKEN * 3):  # a flood through one share link
        people.record("c1", Person(f"tLink.u-{i}", f"Spam {i}", "#000000", 10.0 + i), "Link")
    stored = people.people("c1")
    assert len([p for p in stored if p.user.startswith("tLink.")]) == PEOPLE_PER_TOKEN
    assert "tOwner.ada" in {p.user for p in stored}  # the flood took its own link's places, not Ada's
    assert {p.name for p in stored if p.user.startswith("tLink.")} == {f"Spam {i}" for i in range(100, 150)}
    for token in range(PEOPLE_PER_CANVAS // PEOPLE_PER_TOKEN + 2):  # many links: the canvas's own bound
        for i in range(PEOPLE_PER_TOKEN):
            people.record("c1", Person(f"t{token}.u-{i}", "x", "#000000", 1000.0 + token * 100 + i), str(token))
    assert len(people.people("c1", limit=10_000)) == PEOPLE_PER_CANVAS


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Ada", "Ada"),
        ("  Ada \t Lovelace\n", "Ada Lovelace"),
        ("Ada\x00\x1b[31mRed", "Ada [31mRed"),  # control characters are no part of a name
        ("\u202eevil\u202c", "evil"),  # a right-to-left override would turn the rest of a line around
        ("zero\u200bwidth", "zerowidth"),
        ("x" * 500, "x" * 64),
        ("\x00\x01", ""),
        ("Émile", "Émile"),
        ("E\u0301mile", "Émile"),  # one form of the same name (NFC)
    ],
)
def test_a_name_is_cleaned(raw, shown):
    assert clean_name(raw) == shown


@pytest.mark.parametrize(("raw", "shown"), [("#E4572E", "#e4572e"), ("red", "#888888"), ("#fff", "#888888"),
                                            ("#e4572e;background:url(x)", "#888888"), ("", "#888888")])  # fmt: skip
def test_a_colour_is_rrggbb_or_grey(raw, shown):
    assert clean_colour(raw) == shown


@pytest.mark.anyio
async def test_ten_thousand_hellos_with_different_names_leave_a_bounded_table_and_few_writes(store):
    """The attack of the brief: a hostile client says hello 10,000 times, each time as someone else. The canvas's
    change budget stores its burst and then one a second; the table never passes its bound either way."""
    make_canvas(store)
    book = PeopleBook(PeopleStore.beside(store), PeopleLimits(changes_per_s=1.0, changes_burst=60.0))
    news = 0
    started = time.monotonic()
    for i in range(10_000 if store.is_sqlite else 2_000):
        told, _ = await book.arrive("c1", Person(f"tLink.u-{i}", f"Person {i}", "#000000", float(i)), "Link")
        news += told
    elapsed = time.monotonic() - started
    stored = book.store.people("c1", limit=100_000)
    assert len(stored) <= PEOPLE_PER_TOKEN
    assert news <= 60 + elapsed * 1.0 + 1, (news, elapsed)  # the burst, and one change a second after it
    assert news >= 60


@pytest.mark.anyio
async def test_renames_of_one_user_are_rate_limited_and_the_latest_allowed_one_stands(store):
    make_canvas(store)
    book = PeopleBook(PeopleStore.beside(store), PeopleLimits(renames_burst=3.0, renames_per_s=1 / 60))
    told = [(await book.arrive("c1", Person("tA.u-1", f"Name {i}", "#000000", float(i)), "A"))[0] for i in range(10)]
    assert told == [True, True, True, True] + [False] * 6  # new, then three renames, then the limit
    assert book.store.people("c1")[0].name == "Name 3"
    again, listed = await book.arrive("c1", Person("tA.u-1", "Name 3", "#000000", 100.0), "A")
    assert not again and listed[0].name == "Name 3"  # saying the stored name again costs nothing


@pytest.mark.anyio
async def test_a_hello_without_a_name_is_not_stored(store):
    make_canvas(store)
    book = PeopleBook(PeopleStore.beside(store))
    told, listed = await book.arrive("c1", Person("tA", "", "#888888", 1.0), "A")
    assert (told, listed) == (False, [])
