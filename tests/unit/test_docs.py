"""Every document the code cites is in the repository, and no comment cites one that is not."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ('layers', 'functions', 'local', 'tests', 'statemachine') for p in (ROOT / d).rglob('*')
           if p.suffix in ('.py', '.json', '.yaml', '.md') and '.aws-sam' not in p.parts]
CITED = re.compile(r'\b(docs/[\w/.-]+\.md)')
# The team's workspace beside the repository (its design card and research notes), which a cloner does not
# have. Spelled in pieces so that a scan for such citations does not find one in this test itself.
_OUTSIDE_NAMES = ('DESIGN' '.md', 'DESIGN' ' §', 'research' '/', 'research' ' §', 'local-stack' '.md',
                  'providers' '.md', '..' '/shared')
OUTSIDE = re.compile('|'.join(map(re.escape, _OUTSIDE_NAMES)))


def test_every_cited_doc_exists():
    cited = {(path.relative_to(ROOT), match) for path in SOURCES for match in CITED.findall(path.read_text())}
    assert cited, 'the code cites its docs'
    assert [(str(path), doc) for path, doc in cited if not (ROOT / doc).is_file()] == []


def test_nothing_cites_a_document_outside_the_repository():
    assert [str(p.relative_to(ROOT)) for p in SOURCES if OUTSIDE.search(p.read_text())
            and p != Path(__file__).resolve()] == []


def test_the_docs_index_lists_every_doc():
    index = (ROOT / 'docs' / 'README.md').read_text()
    docs = {str(p.relative_to(ROOT / 'docs')) for p in (ROOT / 'docs').rglob('*.md')} - {'README.md'}
    assert {doc for doc in docs if f']({doc})' not in index} == set()
