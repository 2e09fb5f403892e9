# Oracle for kernels whose debug vmlinux is not at hand: drgn opens the dump without symbols and
# reads kernel memory through the dump's own page tables at the addresses VMCOREINFO gives.
#   drgn -q -c DUMP --no-default-symbols drgn_nodebug.py VMCOREINFO.txt
# Prints "release R" when init_uts_ns holds VMCOREINFO's OSRELEASE, and each line of the printk
# ring's text (lockless ring of 5.10+) that holds the fixture marker or the sysrq panic.
import sys

info = {}
for line in open(sys.argv[1], encoding="ascii", errors="replace"):
    key, sep, value = line.rstrip("\n").partition("=")
    if sep:
        info[key] = value


def symbol(name):
    return int(info[f"SYMBOL({name})"], 16)


def offset(name):
    return int(info[f"OFFSET({name})"])


def u64(address):
    return int.from_bytes(prog.read(address, 8), "little")


release = info["OSRELEASE"]
uts = prog.read(symbol("init_uts_ns"), 1024).split(b"\0")
print("release", release if release.encode() in uts else "absent from init_uts_ns")

ring = u64(symbol("prb")) + offset("printk_ringbuffer.text_data_ring")
bits = int.from_bytes(prog.read(ring + offset("prb_data_ring.size_bits"), 4), "little")
if not 10 <= bits <= 26:
    sys.exit(f"text ring of 2^{bits} bytes: not a printk ring")
text = prog.read(u64(ring + offset("prb_data_ring.data")), 1 << bits)
print("text ring bytes", len(text))
for needle in (b"CAPTURE-FIXTURE-MARKER", b"sysrq triggered crash"):
    at = text.find(needle)
    while at >= 0:
        end = min(i for i in (text.find(b"\n", at), text.find(b"\0", at), len(text)) if i >= 0)
        print("log", text[at:end].decode(errors="replace"))
        at = text.find(needle, end)
