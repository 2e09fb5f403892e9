# Oracle for makedumpfile's -d 8 rule on kernels Debian's makedumpfile does not know (6.12): for
# each pfn listed in PFNS_FILE, decide from the kernel's DWARF (not from VMCOREINFO) whether the page
# is user data (an anonymous non-slab folio, or a hugetlb folio), hwpoisoned or offline.
#   drgn -c VMCORE -s VMLINUX drgn_user_pages.py PFNS_FILE      prints "pfn 0|1" lines
import sys
from drgn import Object, cast

pfns = [int(x) for x in open(sys.argv[1]).read().split()]
vmemmap = prog["vmemmap_base"].value_()
page_t = prog.type("struct page")
size = page_t.size
PG_head = prog["PG_head"].value_()
PG_hwpoison = prog["PG_hwpoison"].value_()
PGTY = {n: prog[n].value_() << 24 for n in ("PGTY_slab", "PGTY_hugetlb", "PGTY_offline")}

def page(pfn):
    return Object(prog, page_t, address=vmemmap + pfn * size)

def head_pfn(pfn):
    ch = page(pfn).compound_head.value_()
    return (ch - 1 - vmemmap) // size if ch & 1 else pfn

def page_type(p):
    return p.page_type.value_() & 0xffffffff

for pfn in pfns:
    h = head_pfn(pfn)
    hp = page(h)
    flags = hp.flags.value_()
    mapping = cast("unsigned long", hp.mapping).value_()
    slab = page_type(hp) == PGTY["PGTY_slab"]
    hugetlb = bool(flags & (1 << PG_head)) and page_type(hp) == PGTY["PGTY_hugetlb"]
    anon = bool(mapping & 1) and not slab
    poison = bool(page(pfn).flags.value_() & (1 << PG_hwpoison))
    offline = page_type(page(pfn)) == PGTY["PGTY_offline"]
    print(pfn, 1 if (anon or hugetlb or poison or offline) else 0)
