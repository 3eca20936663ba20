"""Sphinx extension for the book: bibliography labels that read like the citations.

sphinxcontrib-bibtex cites author–year in the text (``bibtex_reference_style:
author_year``: "Granziol et al. [2022]", "[Granziol et al., 2022]"), but pybtex's styles label
the bibliography itself [1], [2], … or [GZR22]. This registers a pybtex label style and a
formatting style, both named ``author_year`` (pybtex's ``plain`` entries), so that the entry a
citation links to is labelled the way it was cited: [Granziol et al., 2022]. Entries are
sorted as a reader scans the labels: by the authors' surnames as printed (Götze beside Goyal,
not after Granziol as pybtex's sort of the LaTeX source puts it), then year and title. Two
entries that would share a label get 2019a, 2019b.

Loaded by ``_config.yml`` (``sphinx.local_extensions``), selected by
``bibtex_default_style: author_year``.
"""

import unicodedata
from collections import Counter
from string import ascii_lowercase

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle

NAME = "author_year"


def _surname(person) -> str:
    # Names are stored in LaTeX (P{\'e}ch{\'e}); a label is plain text (Péché).
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def _people(entry) -> list:
    return entry.persons.get("author") or entry.persons.get("editor") or []


def _fold(text: str) -> str:
    """Plain text for sorting: accents dropped, lower case (Péché -> peche)."""
    decomposed = unicodedata.normalize("NFKD", Text.from_latex(text).render_as("text"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _who(entry) -> str:
    people = _people(entry)
    if not people:
        return entry.fields.get("organization") or entry.fields.get("institution") or entry.key
    names = [_surname(p) for p in people]
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


def author_year_label(entry) -> str:
    """The label of one entry: "Surname, 2022", "A and B, 2011" or "A et al., 2022"."""
    return f"{_who(entry)}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Author–year labels, with a, b, … where two entries would otherwise share one."""

    def format_labels(self, sorted_entries):
        labels = [author_year_label(e) for e in sorted_entries]
        total, seen = Counter(labels), Counter()
        for label in labels:
            if total[label] > 1:
                seen[label] += 1
                label += ascii_lowercase[seen[label] - 1]
            yield label


class AuthorYearSortingStyle(BaseSortingStyle):
    """Sort by surnames as printed, then year, then title."""

    def sorting_key(self, entry):
        surnames = " ".join(_fold(" ".join(p.prelast_names + p.last_names))
                            for p in _people(entry))
        return (surnames, entry.fields.get("year", ""), _fold(entry.fields.get("title", "")))


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` entries with author–year labels, in author–year order."""

    default_label_style = NAME
    default_sorting_style = NAME


register_plugin("pybtex.style.labels", NAME, AuthorYearLabelStyle)
register_plugin("pybtex.style.sorting", NAME, AuthorYearSortingStyle)
register_plugin("pybtex.style.formatting", NAME, AuthorYearStyle)


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
