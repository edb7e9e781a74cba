#!/usr/bin/env python3
"""Accounts for every private page of a process (a keeper, a holder, a runsv): which
mapping, which page of it, and for the heap which glibc malloc chunks lie in each
page (U in use, f free; the last is the top chunk). A page is the process's own when
/proc/kpagecount says one mapping holds it; pages shared copy-on-write with the
launcher's other children are not listed. --dump adds the printable strings of each
page, which usually say whose it is. Run as root (page frame numbers).

    python3 benches/lifecycle/pages.py PID [--dump]

Issue 30 used it to find what each keeper page holds (BENCHMARKS.md)."""
import struct, sys, re, string

pid = int(sys.argv[1]); dump = '--dump' in sys.argv
PAGE = 4096
maps = []
for line in open(f'/proc/{pid}/maps'):
    parts = line.split(None, 5)
    lo, hi = (int(x, 16) for x in parts[0].split('-'))
    name = parts[5].strip() if len(parts) > 5 else '[anon]'
    maps.append((lo, hi, parts[1], name))
pm = open(f'/proc/{pid}/pagemap', 'rb')
kc = open('/proc/kpagecount', 'rb')
mem = open(f'/proc/{pid}/mem', 'rb')
def entry(addr):
    try:
        pm.seek(addr // PAGE * 8); b = pm.read(8)
    except OSError:
        return 0
    return struct.unpack('<Q', b)[0] if len(b) == 8 else 0
def count(pfn):
    kc.seek(pfn * 8); return struct.unpack('<Q', kc.read(8))[0]
def read(addr, n):
    mem.seek(addr); return mem.read(n)
total = 0
heap = None
for lo, hi, perms, name in maps:
    priv = []
    for a in range(lo, hi, PAGE):
        e = entry(a)
        if not e >> 63 & 1: continue
        pfn = e & ((1 << 55) - 1)
        c = count(pfn) if pfn else 0
        if c == 1 or (e >> 56 & 1):
            priv.append(a)
    if not priv: continue
    total += len(priv)
    short = name.rsplit('/', 1)[-1]
    print(f'{len(priv)*4:4d} KB private  {short} ({perms}) {lo:x}-{hi:x}: pages ' +
          ' '.join(f'+{(a-lo)//PAGE}' for a in priv))
    if name == '[heap]': heap = (heap[0] if heap else lo, hi, (heap[2] if heap else []) + priv)
    if dump and name != '[heap]':
        for a in priv:
            data = read(a, PAGE)
            nz = sum(1 for b in data if b)
            strs = re.findall(rb'[ -~]{6,}', data)[:8]
            print(f'      page {a:x}: {nz} non-zero bytes; strings {strs}')
print(f'{total*4} KB private in all')
if heap:
    lo, hi, priv = heap
    # walk glibc chunks from the heap start
    a = lo; chunks = []
    while a + 16 <= hi:
        size = struct.unpack('<Q', read(a + 8, 8))[0]
        sz = size & ~7
        if sz < 16 or a + sz > hi: break
        chunks.append((a, sz))
        a += sz
    inuse = {}
    for i, (a, sz) in enumerate(chunks):
        nxt = a + sz
        u = True
        if i + 1 < len(chunks):
            u = bool(struct.unpack('<Q', read(nxt + 8, 8))[0] & 1)
        inuse[a] = u
    live = sum(sz for a, sz in chunks if inuse[a])
    print(f'heap: {len(chunks)} chunks, {live} bytes in use (incl. tcache/fastbin chunks), top at {chunks[-1][0]-lo if chunks else 0:x}')
    for p in priv:
        cs = [(a, sz, inuse[a]) for a, sz in chunks if a < p + PAGE and a + sz > p]
        used = sum(min(a+sz, p+PAGE) - max(a, p) for a, sz, u in cs if u)
        desc = ' '.join(f"{'U' if u else 'f'}{sz}" for a, sz, u in cs[:14])
        print(f'  heap +{(p-lo)//PAGE:3d}: {used:5d} B live; chunks {desc}{" ..." if len(cs) > 14 else ""}')
        if dump:
            strs = re.findall(rb'[ -~]{6,}', read(p, PAGE))[:10]
            print(f'        strings {strs}')
