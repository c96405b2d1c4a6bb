"""A provider's own reason for a refusal, made fit to show the job's owner.

Providers say exactly what was wrong ("image must be at least 300px on each side, got 64x64") and the
user needs that. Their text can also echo what we sent: signed URLs, tokens, keys, base64 payloads or a
whole JSON reply. `clean_reason` keeps the sentence and drops those; `explain` puts it into our own
actionable sentence. Both are pure functions, tested on the documented refusals of every provider
(docs/providers/kling.md §2 and §7, docs/providers/kie.md §1 and §7).
"""

from __future__ import annotations

import re

MAX_REASON_CHARS = 200

_URL = re.compile(r'\b(?:https?|s3|ftp)://([^\s/?#"\'<>]+)[^\s"\'<>]*', re.IGNORECASE)
_DATA_URI = re.compile(r'data:[\w/+.-]+;base64,[A-Za-z0-9+/=]*', re.IGNORECASE)
_BEARER = re.compile(r'\b(?:Bearer|Basic)\s+(?:<hidden>|[A-Za-z0-9._~+/=-]+)', re.IGNORECASE)
_JWT = re.compile(r'\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?')
_SECRET_PAIR = re.compile(
    r'\b((?:(?:api|access|secret)[_-]?)?key|secret|token|signature|password|authorization|sig)'
    r'(["\']?\s*[:=]\s*["\']?)(?!<hidden>)[^\s,;&"\'}<]+', re.IGNORECASE)
# Long unbroken runs of token characters: keys, hashes, base64. Real words and ids stay (task ids are < 32).
_OPAQUE = re.compile(r'[A-Za-z0-9+/=_-]{32,}')
_DUMP = re.compile(r'[{\[].*[}\]]', re.DOTALL)
_MARKUP = re.compile(r'<[^>]{1,200}>')


def clean_reason(text: object, secrets: tuple[str, ...] = ()) -> str:
    """The provider's reason as one short plain sentence, or '' when nothing usable is left.

    `secrets` are the caller's own credentials: a provider that echoes one back loses it first.
    """
    if not isinstance(text, str):
        return ''
    for secret in secrets:
        if secret:
            text = text.replace(secret, '\x00')
    reason = _MARKUP.sub(' ', text)  # an HTML error page: keep its words (before our own <placeholders>)
    reason = _DATA_URI.sub('<image data>', reason)
    reason = _URL.sub(lambda m: f'<a URL on {m.group(1).rsplit("@", 1)[-1]}>', reason)
    reason = _JWT.sub('<hidden>', reason)
    reason = _BEARER.sub('<hidden>', reason)
    reason = _SECRET_PAIR.sub(r'\1\2<hidden>', reason)
    reason = _DUMP.sub(' ', reason) if _looks_like_dump(reason) else reason
    reason = _OPAQUE.sub('<hidden>', reason).replace('\x00', '<hidden>')
    reason = ' '.join(reason.split()).strip(' .;:,')
    if not any(ch.isalpha() for ch in reason.replace('<hidden>', '')):
        return ''
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS - 1].rstrip() + '…'
    return reason


def explain(lead: str, reason: str, advice: str, *, generic: tuple[str, ...] = ()) -> str:
    """`lead: reason. advice` — the reason left out when empty or when it only restates a generic table text."""
    shown = reason if reason and reason.lower() not in {g.lower() for g in generic} else ''
    sentence = f'{lead}: {shown}.' if shown else f'{lead}.'
    return f'{sentence} {advice}'.strip() if advice else sentence


def _looks_like_dump(text: str) -> bool:
    # A reason that carries a JSON object or list (a whole reply echoed back) loses the dump, keeps the words.
    match = _DUMP.search(text)
    if match is None:
        return False
    dump = match.group(0)
    return (':' in dump or '"' in dump) and len(dump) > 20
