#!/usr/bin/python3
"""Oracle: read a kdump-compressed file with libkdumpfile and digest every stored page.

usage: /usr/bin/python3 kdumpfile_digest.py DUMP
       /usr/bin/python3 kdumpfile_digest.py DUMP --phys-page ADDR   (prints that page in hex)
prints: 'release R', 'pages N', 'digest HEX' where the digest is SHA-256 over (pfn, bytes) of every
page in the file's page map. Two files holding the same pages with the same content give the same
digest whatever their compression, so ours can be compared with makedumpfile's through a reader
that is not ours. libkdumpfile 0.5.1 (Debian 12) needs the paging mode and the root page table
given explicitly; both come from the file's own VMCOREINFO.
"""
import hashlib
import struct
import sys

import kdumpfile

path = sys.argv[1]
k = kdumpfile.kdumpfile(path)
a = k.attr
vi = a['linux.vmcoreinfo']
l5 = int(vi['NUMBER']['pgtable_l5_enabled']) if 'pgtable_l5_enabled' in vi['NUMBER'] else 0
a['addrxlat.default.virt_bits'] = 57 if l5 else 48
pb = int(vi['NUMBER']['phys_base']) & (2**64 - 1)
a['addrxlat.default.rootpgt.as'] = kdumpfile.KDUMP_KPHYSADDR
a['addrxlat.default.rootpgt.addr'] = (int(vi['SYMBOL']['init_top_pgt']) - 0xffffffff80000000 + pb) & (2**64 - 1)
if len(sys.argv) > 3 and sys.argv[2] == '--phys-page':
    # A cut dump may lack the pages behind kernel virtual addresses: read physical memory only.
    print(k.read(kdumpfile.KDUMP_KPHYSADDR, int(sys.argv[3], 0), 4096).hex())
    sys.exit(0)
uts = int(vi['SYMBOL']['init_uts_ns'])
off = int(vi['OFFSET']['uts_namespace']['name'])
release = k.read(kdumpfile.KDUMP_KVADDR, uts + off + 65 * 2, 65).split(b'\0')[0].decode()
print('release', release)

maxpfn = int(a['max_pfn'])
bits = a['file.pagemap'].get_bits(0, maxpfn - 1)
h = hashlib.sha256()
n = 0
for byte_index, byte in enumerate(bits):
    if not byte:
        continue
    for bit in range(8):
        if byte >> bit & 1:
            pfn = byte_index * 8 + bit
            if pfn >= maxpfn:
                break
            data = k.read(kdumpfile.KDUMP_KPHYSADDR, pfn << 12, 4096)
            h.update(struct.pack('<Q', pfn))
            h.update(data)
            n += 1
print('pages', n)
print('digest', h.hexdigest())
