"""A read-only, seekable file over ranged GETs, so FFmpeg reads only the parts of a result it needs.

FFmpeg's MP4 reader jumps straight over `mdat` to a `moov` box at the end, then reads the few samples a
poster needs: with this file it fetches a handful of blocks, not the whole object. At most `max_blocks`
blocks are held at a time, so memory stays the same for a 5 MB or a 5 GB result.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

BLOCK_SIZE = 512 * 1024
MAX_BLOCKS = 4

Fetch = Callable[[int, int], bytes]  # (first byte, last byte + 1) -> those bytes


class RangedReader(io.RawIOBase):
    def __init__(self, fetch: Fetch, size: int, *, block_size: int = BLOCK_SIZE, max_blocks: int = MAX_BLOCKS) -> None:
        super().__init__()
        self._fetch = fetch
        self.size = size
        self._block_size = block_size
        self._max_blocks = max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        self.requests = 0  # ranged GETs made
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f'cannot seek to {base + offset}')
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        parts = []
        while self._position < end:
            index, offset = divmod(self._position, self._block_size)
            block = self._block(index)
            if offset >= len(block):
                break
            part = block[offset:offset + end - self._position]
            parts.append(part)
            self._position += len(part)
        return b''.join(parts)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
            return block
        start = index * self._block_size
        block = self._fetch(start, min(self.size, start + self._block_size))
        self.requests += 1
        self.bytes_fetched += len(block)
        self._blocks[index] = block
        while len(self._blocks) > self._max_blocks:
            self._blocks.popitem(last=False)
        return block
