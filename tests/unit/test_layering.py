"""The layer package's structure: every import points down, and only `vidgen.store` speaks DynamoDB.

Read from the source (ast), so a new module is checked the day it is added.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import vidgen

PACKAGE = Path(vidgen.__file__).parent

# Lower rank = lower layer. A module may import a module of a lower rank, or one in its own package; the
# base modules (rank 0) may import each other. `api` -> `jobs` (the use cases) -> store / providers / catalog.
RANKS = {
    'api': 3,
    'jobs': 2,
    'store': 1, 'providers': 1, 'catalog': 1, 'executions': 1, 'callback_tokens': 1,
    'errors': 0, 'config': 0, 'ids': 0, 'models': 0, 'aws': 0, 'observability': 0, 'netguard': 0, 'secrets': 0,
    'media': 0,  # reading media with FFmpeg: knows files, not jobs; `store.media` hands it S3 ranges
    'images': 0,  # an input image's header against a model's rules (imagesize, no decoding)
    'version': 0,
}


def layer_modules() -> dict[str, Path]:
    return {'.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts): path
            for path in PACKAGE.rglob('*.py')}


def imported(path: Path) -> set[str]:
    """Every vidgen module a file imports (`from vidgen import x` counts as importing vidgen.x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith('vidgen.'))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('vidgen'):
            if node.module == 'vidgen':
                names.update(f'vidgen.{alias.name}' for alias in node.names)
            else:
                names.add(node.module)
    return names


def unit(module: str) -> str:
    """The layer a module belongs to: its package under vidgen, or the top-level module itself."""
    return module.split('.')[1]


def test_every_module_has_a_rank():
    assert {unit(m) for m in layer_modules() if m != 'vidgen.__init__'} <= set(RANKS)


def test_every_import_points_down():
    upward = []
    for module, path in layer_modules().items():
        if module == 'vidgen.__init__':
            continue
        source = unit(module)
        for target in imported(path):
            other = unit(target)
            same_package = other == source
            if same_package or RANKS[other] < RANKS[source] or RANKS[other] == RANKS[source] == 0:
                continue
            upward.append(f'{module} -> {target}')
    assert upward == []


def test_the_api_reaches_the_store_and_providers_only_through_use_cases():
    for module, path in layer_modules().items():
        if unit(module) == 'api':
            assert {unit(t) for t in imported(path)} <= {'api', 'jobs', 'models', 'errors', 'config', 'observability',
                                                        'secrets', 'ids', 'version'}, module


# What only `vidgen.store` may contain: DynamoDB calls, key prefixes, positional cancellation reads.
DYNAMODB_ONLY_IN_STORE = re.compile(
    r"boto3\.dynamodb|'dynamodb'|\.get_item\(|\.put_item\(|\.update_item\(|\.query\(|transact_write_items|"
    r"TransactionCanceled|\.failed\(\d|(USER|JOB|LEDGER|GRANT|APIKEY|IDEMPOTENCY)#|vidgen\.store\.table")


def test_only_the_store_speaks_dynamodb():
    leaks = [f'{module}: {match.group(0)}'
             for module, path in layer_modules().items() if unit(module) not in ('store', 'errors')
             for match in DYNAMODB_ONLY_IN_STORE.finditer(path.read_text())]
    assert leaks == []


def test_no_transaction_outcome_is_read_by_position():
    for module, path in layer_modules().items():
        assert not re.search(r'\.failed\(|reasons\[\d|items\[\d', path.read_text()), module


def test_every_error_class_lives_in_errors():
    for module, path in layer_modules().items():
        if module == 'vidgen.errors':
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, 'id', getattr(b, 'attr', '')) for b in node.bases}
                assert not any(b.endswith(('Error', 'Exception')) or b in ('StoreOutcome', 'TransactionCanceled')
                               for b in bases), f'{module}.{node.name}'


def imported_at_import_time(path: Path) -> set[str]:
    """Every module a file imports when it is itself imported: its top-level statements, not the bodies of its
    functions and not `if TYPE_CHECKING:` blocks (`from x import y` counts as importing x)."""
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == 'TYPE_CHECKING'):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, (ast.Try, ast.With, ast.ClassDef)):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return names


# What the state machine's steps import at cold start: none of it may bring pydantic (or the API models that
# are made of it) along, so the poller and media functions start without it (tests/unit/test_cold_start.py).
WITHOUT_PYDANTIC = ('store', 'providers', 'catalog', 'config', 'executions', 'callback_tokens', 'ids', 'errors',
                    'aws', 'observability', 'netguard', 'secrets', 'images', 'media', 'version')


def test_the_lower_layers_import_no_pydantic_at_import_time():
    found = [f'{module} -> {name}' for module, path in layer_modules().items()
             if module != 'vidgen.__init__' and unit(module) in WITHOUT_PYDANTIC
             for name in imported_at_import_time(path)
             if name.split('.')[0] == 'pydantic' or name == 'vidgen.models']
    assert found == []
