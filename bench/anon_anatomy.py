#!/usr/bin/python3
"""Where a live process's anonymous memory is, by cause, in KB of resident
pages (/proc/PID/pagemap; run as root):

  anon_anatomy.py PID [LIB]

LIB: the btmalloc library the process runs on (its file name finds its
mappings, its symbol table the start-up arena); without it the process is
read as a glibc one.  Prints one line, "anatomy PID COMM key=KB ...":
  heap      glibc's brk heap
  tables    btmalloc's process-wide tables (below the first chunk)
  header    the first chunk's header pages (up to its first data page)
  slabs     the first chunk's data pages
  chunks    resident pages of further chunks
  arena     btmalloc's start-up arena (in the library's .lbss)
  lbss      the rest of btmalloc's .lbss and .bss
  stacks    [stack] and thread stacks (8 MiB or btmalloc's 64 KiB + guard)
  other     every other anonymous mapping's pages (TLS, mmaps); the
            copied-on-write pages of file mappings (.data) are not counted
"""
import os
import re
import struct
import subprocess
import sys

PAGE = 4096
CHUNK = 2 << 20
CHUNK_MAGIC = 0x6274_6d61_6c6c_6f63  # src/core/chunk.h: kChunkMagic


def present_pages(pagemap, start, end):
    pagemap.seek(start // PAGE * 8)
    data = pagemap.read((end - start) // PAGE * 8)
    return [start + i // 8 * PAGE for i in range(0, len(data), 8)
            if struct.unpack_from('<Q', data, i)[0] >> 63]


def arena_range(lib, base):
    out = subprocess.run(['nm', '-S', '--defined-only', '-C', lib], capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split(None, 3)
        if len(f) == 4 and f[3] == 'btm::boot::(anonymous namespace)::arena':
            return base + int(f[0], 16), base + int(f[0], 16) + int(f[1], 16)
    return None


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write('usage: anon_anatomy.py PID [LIB]\n')
        sys.exit(2)
    pid = int(sys.argv[1])
    lib = sys.argv[2] if len(sys.argv) == 3 and sys.argv[2] else None
    name = os.path.basename(lib) if lib else None
    maps = []
    for line in open(f'/proc/{pid}/maps'):
        f = line.split(None, 5)
        a, b = (int(x, 16) for x in f[0].split('-'))
        maps.append((a, b, f[1], f[5].strip() if len(f) > 5 else ''))
    base = next((a for a, b, perm, path in maps if name and path.endswith(name)), None)
    arena = arena_range(lib, base) if base is not None else None
    sums = dict.fromkeys(['heap', 'tables', 'header', 'slabs', 'chunks', 'arena', 'lbss', 'stacks', 'other'], 0)
    pagemap = open(f'/proc/{pid}/pagemap', 'rb')
    mem = open(f'/proc/{pid}/mem', 'rb')
    prev_path = ''
    for i, (a, b, perm, path) in enumerate(maps):
        if path not in ('', '[heap]', '[stack]') or not perm.startswith('rw'):
            prev_path = path
            continue
        pages = present_pages(pagemap, a, b)
        neighbours = [maps[j] for j in (i - 1, i + 1) if 0 <= j < len(maps)]
        reservation = name and path == '' and any(
            m[3] == '' and m[2].startswith('---') and m[1] - m[0] >= 1 << 30 for m in neighbours)
        if path == '[heap]':
            sums['heap'] += len(pages)
        elif path == '[stack]' or b - a in (8 << 20, (8 << 20) + PAGE, 64 << 10):
            sums['stacks'] += len(pages)
        elif reservation and b - a > CHUNK:
            # The tables end where the first chunk begins: the first 2 MiB
            # boundary holding a chunk header's magic.
            first = (a + CHUNK - 1) // CHUNK * CHUNK
            while first < b:
                mem.seek(first)
                magic, _, first_page = struct.unpack('<QII', mem.read(16))
                if magic == CHUNK_MAGIC:
                    break
                first += CHUNK
            for p in pages:
                if p < first:
                    sums['tables'] += 1
                elif p < first + CHUNK:
                    sums['header' if p < first + first_page * PAGE else 'slabs'] += 1
                else:
                    sums['chunks'] += 1
        elif reservation:
            sums['chunks'] += len(pages)
        elif name and (prev_path.endswith(name) or path.endswith(name)):
            for p in pages:
                sums['arena' if arena and arena[0] <= p < arena[1] else 'lbss'] += 1
        else:
            sums['other'] += len(pages)
        prev_path = path
    comm = open(f'/proc/{pid}/comm').read().strip()
    total = sum(sums.values())
    print(f'anatomy {pid} {comm} total={total * 4} ' +
          ' '.join(f'{k}={v * 4}' for k, v in sums.items() if v or k in ('heap', 'other')))


main()
